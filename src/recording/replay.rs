//! Playing a recording back to a reviewer's terminal.
//!
//! The playback loop takes its keys from a channel and writes to any
//! `AsyncWrite`, so the CLI wires the real terminal ([`RawMode`],
//! [`spawn_key_reader`], stdout) while tests drive it with a paused clock.

use std::io::{self, Read};
use std::os::fd::RawFd;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::cast::{Cast, EventKind};
use super::sanitize::Sanitizer;

/// What a reviewer can do during playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayKey {
    /// Pause, or resume if paused (space).
    TogglePause,
    /// Stop playback (`q`, or Ctrl-C in raw mode).
    Quit,
}

impl ReplayKey {
    /// Maps a byte read from a raw-mode terminal to a key, so the CLI and
    /// [`spawn_key_reader`] agree on the bindings.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b' ' => Some(Self::TogglePause),
            b'q' | b'Q' | 0x03 => Some(Self::Quit),
            _ => None,
        }
    }
}

/// How to play a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// Playback speed factor; 2.0 plays twice as fast. Must be positive.
    pub speed: f64,
    /// Longest pause between two outputs, in recorded seconds, so idle
    /// sessions do not waste the reviewer's time.
    pub idle_limit: Option<f64>,
    /// Write the exact recorded bytes without sanitising. Only for trusted
    /// recordings or non-terminal output, since it lets the recording drive
    /// the reviewer's terminal.
    pub raw: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            speed: 1.0,
            idle_limit: None,
            raw: false,
        }
    }
}

/// Why playback stopped, so the CLI can tell the reviewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Every event was played.
    Finished,
    /// The reviewer quit.
    Quit,
}

/// Sequences that undo terminal state a recording commonly leaves behind
/// (attributes, hidden cursor, bracketed paste, mouse reporting, keypad and
/// character set); the CLI writes this after playback.
pub const TERMINAL_RESET: &str = "\u{1b}[0m\u{1b}[?25h\u{1b}[?2004l\u{1b}[?1000l\u{1b}[?1002l\u{1b}[?1003l\u{1b}[?1006l\u{1b}>\u{1b}(B";

/// Plays the output events of `cast` to `out` in real time.
///
/// Timing follows the recording divided by `speed`, with gaps capped at
/// `idle_limit`. Keys pause, resume or quit; a closed key channel simply
/// means no more keys (playback continues, and a pause ends). Unless `raw`
/// is set, output passes through the [`Sanitizer`].
pub async fn replay(
    cast: &Cast,
    opts: ReplayOptions,
    mut keys: mpsc::Receiver<ReplayKey>,
    mut out: impl AsyncWrite + Unpin,
) -> io::Result<ReplayEnd> {
    if !opts.speed.is_finite() || opts.speed <= 0.0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("replay speed must be positive, not {}", opts.speed),
        ));
    }
    if opts
        .idle_limit
        .is_some_and(|limit| limit.is_nan() || limit < 0.0)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "idle limit must not be negative",
        ));
    }
    let mut sanitizer = Sanitizer::new();
    let mut text = String::new();
    let mut keys_open = true;
    let mut base = Instant::now();
    let mut played_secs = 0.0;
    let mut previous_time = 0.0;
    for event in cast.events.iter().filter(|e| e.kind == EventKind::Output) {
        let gap = (event.time - previous_time).max(0.0);
        previous_time = event.time.max(previous_time);
        played_secs += opts.idle_limit.map_or(gap, |limit| gap.min(limit));
        let offset = secs_to_duration(played_secs / opts.speed);
        loop {
            tokio::select! {
                biased;
                key = keys.recv(), if keys_open => match key {
                    None => keys_open = false,
                    Some(ReplayKey::Quit) => return Ok(ReplayEnd::Quit),
                    Some(ReplayKey::TogglePause) => {
                        let paused_at = Instant::now();
                        if wait_while_paused(&mut keys, &mut keys_open).await == ReplayEnd::Quit {
                            return Ok(ReplayEnd::Quit);
                        }
                        base += paused_at.elapsed();
                    }
                },
                () = sleep_until(base + offset) => break,
            }
        }
        if opts.raw {
            out.write_all(&event.bytes()).await?;
        } else {
            sanitizer.push(&event.data, &mut text);
            out.write_all(text.as_bytes()).await?;
            text.clear();
        }
        out.flush().await?;
    }
    sanitizer.finish();
    Ok(ReplayEnd::Finished)
}

/// Waits for the key that resumes playback; `Finished` means resume.
async fn wait_while_paused(
    keys: &mut mpsc::Receiver<ReplayKey>,
    keys_open: &mut bool,
) -> ReplayEnd {
    while *keys_open {
        match keys.recv().await {
            Some(ReplayKey::TogglePause) => break,
            Some(ReplayKey::Quit) => return ReplayEnd::Quit,
            None => *keys_open = false,
        }
    }
    ReplayEnd::Finished
}

fn secs_to_duration(secs: f64) -> Duration {
    // Offsets beyond any real recording are clamped instead of panicking.
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
}

/// Turns keystrokes from `reader` (the terminal, in raw mode) into replay
/// keys on a channel, using a thread because terminal reads block.
///
/// Reads containing ESC are ignored: they are escape-key sequences or
/// terminal reports, not the reviewer pressing space or `q`. The thread ends
/// when the reader does, or at its next read after the receiver is dropped.
pub fn spawn_key_reader(mut reader: impl Read + Send + 'static) -> mpsc::Receiver<ReplayKey> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 64];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let read = &chunk[..n];
            if read.contains(&0x1b) {
                continue;
            }
            for key in read.iter().copied().filter_map(ReplayKey::from_byte) {
                if tx.blocking_send(key).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Puts a terminal in raw mode for as long as the guard lives, so single key
/// presses reach [`spawn_key_reader`] unechoed and unbuffered; dropping the
/// guard restores the previous settings.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Switches the terminal on `fd` (usually stdin) to raw mode.
    pub fn enable(fd: RawFd) -> io::Result<Self> {
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a termios through a valid pointer; it is
        // only read after tcgetattr reported success.
        let saved = unsafe {
            if libc::tcgetattr(fd, saved.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            saved.assume_init()
        };
        let mut raw = saved;
        // SAFETY: cfmakeraw only modifies the termios it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: raw is a fully initialised termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode {
    /// Restores the terminal even if playback failed or panicked.
    fn drop(&mut self) {
        // SAFETY: saved is the termios read from this fd in `enable`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::cast::{CastHeader, Event};
    use super::*;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use tokio::time::sleep;

    type Writes = Arc<Mutex<Vec<(Duration, Vec<u8>)>>>;

    /// Records what was written and when (on the paused clock).
    #[derive(Clone)]
    struct Capture {
        start: Instant,
        writes: Writes,
    }

    impl Capture {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                writes: Arc::default(),
            }
        }

        fn writes(&self) -> Vec<(f64, String)> {
            self.writes
                .lock()
                .unwrap()
                .iter()
                .map(|(at, data)| (at.as_secs_f64(), String::from_utf8_lossy(data).into_owned()))
                .collect()
        }

        fn bytes(&self) -> Vec<u8> {
            self.writes
                .lock()
                .unwrap()
                .iter()
                .flat_map(|(_, data)| data.clone())
                .collect()
        }
    }

    impl AsyncWrite for Capture {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let at = self.start.elapsed();
            self.writes.lock().unwrap().push((at, buf.to_vec()));
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn output(time: f64, data: &str) -> Event {
        Event {
            time,
            kind: EventKind::Output,
            data: data.to_owned(),
            raw: None,
            nul_runs: Vec::new(),
        }
    }

    fn cast(events: Vec<Event>) -> Cast {
        Cast {
            header: CastHeader::default(),
            events,
            truncated: false,
        }
    }

    fn times(capture: &Capture) -> Vec<f64> {
        capture.writes().into_iter().map(|(t, _)| t).collect()
    }

    fn assert_times(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-3, "{actual:?} vs {expected:?}");
        }
    }

    fn sample() -> Cast {
        cast(vec![
            output(1.0, "a"),
            Event {
                time: 2.0,
                kind: EventKind::Marker,
                data: "m".to_owned(),
                raw: None,
                nul_runs: Vec::new(),
            },
            output(3.0, "b"),
            output(10.0, "c"),
        ])
    }

    #[tokio::test(start_paused = true)]
    async fn plays_in_real_time() {
        let (_tx, rx) = mpsc::channel(1);
        let capture = Capture::new();
        let end = replay(&sample(), ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(end, ReplayEnd::Finished);
        assert_times(&times(&capture), &[1.0, 3.0, 10.0]);
        assert_eq!(capture.bytes(), b"abc");
    }

    #[tokio::test(start_paused = true)]
    async fn speed_scales_time() {
        let (_tx, rx) = mpsc::channel(1);
        let capture = Capture::new();
        let opts = ReplayOptions {
            speed: 2.0,
            ..ReplayOptions::default()
        };
        replay(&sample(), opts, rx, capture.clone()).await.unwrap();
        assert_times(&times(&capture), &[0.5, 1.5, 5.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_limit_caps_gaps() {
        let (_tx, rx) = mpsc::channel(1);
        let capture = Capture::new();
        let opts = ReplayOptions {
            idle_limit: Some(0.5),
            speed: 0.5,
            ..ReplayOptions::default()
        };
        replay(&sample(), opts, rx, capture.clone()).await.unwrap();
        // Gaps 1, 2, 7 capped to 0.5 each, then halved speed.
        assert_times(&times(&capture), &[1.0, 2.0, 3.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_and_resume_shift_the_rest() {
        let (tx, rx) = mpsc::channel(4);
        let capture = Capture::new();
        tokio::spawn(async move {
            sleep(Duration::from_millis(1500)).await;
            tx.send(ReplayKey::TogglePause).await.unwrap();
            sleep(Duration::from_secs(4)).await;
            tx.send(ReplayKey::TogglePause).await.unwrap();
        });
        let end = replay(&sample(), ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(end, ReplayEnd::Finished);
        assert_times(&times(&capture), &[1.0, 7.0, 14.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn quit_stops_playback_even_while_paused() {
        let (tx, rx) = mpsc::channel(4);
        let capture = Capture::new();
        tokio::spawn(async move {
            sleep(Duration::from_millis(1500)).await;
            tx.send(ReplayKey::Quit).await.unwrap();
        });
        let end = replay(&sample(), ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(end, ReplayEnd::Quit);
        assert_eq!(capture.bytes(), b"a");

        let (tx, rx) = mpsc::channel(4);
        let capture = Capture::new();
        tokio::spawn(async move {
            sleep(Duration::from_millis(1500)).await;
            tx.send(ReplayKey::TogglePause).await.unwrap();
            sleep(Duration::from_secs(100)).await;
            tx.send(ReplayKey::Quit).await.unwrap();
        });
        let started = Instant::now();
        let end = replay(&sample(), ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(end, ReplayEnd::Quit);
        assert_eq!(capture.bytes(), b"a");
        assert!(started.elapsed() >= Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_key_channel_ends_a_pause() {
        let (tx, rx) = mpsc::channel(4);
        let capture = Capture::new();
        tokio::spawn(async move {
            sleep(Duration::from_millis(1500)).await;
            tx.send(ReplayKey::TogglePause).await.unwrap();
            sleep(Duration::from_secs(1)).await;
            drop(tx);
        });
        let end = replay(&sample(), ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(end, ReplayEnd::Finished);
        assert_times(&times(&capture), &[1.0, 4.0, 11.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn sanitises_unless_raw() {
        let mut events = vec![
            output(0.1, "\u{1b}]52;c;ZXZpbA=="),
            output(0.2, "\u{7}\u{1b}[31mred\u{1b}[0m\u{1b}[6n"),
            output(0.3, "bin \u{FFFD}"),
        ];
        events[2].raw = Some(b"bin \xff".to_vec());
        let cast = cast(events);

        let (_tx, rx) = mpsc::channel(1);
        let capture = Capture::new();
        replay(&cast, ReplayOptions::default(), rx, capture.clone())
            .await
            .unwrap();
        assert_eq!(
            capture.bytes(),
            "\u{1b}[31mred\u{1b}[0mbin \u{FFFD}".as_bytes()
        );

        let (_tx, rx) = mpsc::channel(1);
        let capture = Capture::new();
        let opts = ReplayOptions {
            raw: true,
            ..ReplayOptions::default()
        };
        replay(&cast, opts, rx, capture.clone()).await.unwrap();
        assert_eq!(
            capture.bytes(),
            b"\x1b]52;c;ZXZpbA==\x07\x1b[31mred\x1b[0m\x1b[6nbin \xff"
        );
    }

    #[tokio::test]
    async fn rejects_bad_options() {
        for opts in [
            ReplayOptions {
                speed: 0.0,
                ..ReplayOptions::default()
            },
            ReplayOptions {
                speed: f64::NAN,
                ..ReplayOptions::default()
            },
            ReplayOptions {
                idle_limit: Some(-1.0),
                ..ReplayOptions::default()
            },
        ] {
            let (_tx, rx) = mpsc::channel(1);
            let err = replay(&sample(), opts, rx, tokio::io::sink())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[tokio::test]
    async fn key_reader_maps_bytes_and_skips_escape_sequences() {
        let mut rx = spawn_key_reader(io::Cursor::new(b"x q".to_vec()));
        assert_eq!(rx.recv().await, Some(ReplayKey::TogglePause));
        assert_eq!(rx.recv().await, Some(ReplayKey::Quit));
        assert_eq!(rx.recv().await, None);

        // Each read of a chain of readers arrives separately.
        let reader = io::Cursor::new(b"\x1b[M q".to_vec()).chain(io::Cursor::new(b" ".to_vec()));
        let mut rx = spawn_key_reader(reader);
        assert_eq!(rx.recv().await, Some(ReplayKey::TogglePause));
        assert_eq!(rx.recv().await, None);
        assert_eq!(ReplayKey::from_byte(3), Some(ReplayKey::Quit));
    }
}
