//! The threads that do recording I/O, apart from the threads that serve connections.
//!
//! A write to a frozen or failing disk can block in the kernel for as long as the disk stays
//! that way, and no timeout can cut it short. If such a write ran on a thread of the async
//! runtime, one recording could stall every login and every revocation on the bastion. So every
//! create, write, sync and hash runs here instead, and the async side only ever waits for a
//! result, with a bound.
//!
//! The pool grows a thread when every thread is busy (a thread stuck on a frozen disk holds one
//! thread and nothing else) up to [`MAX_THREADS`], and threads that have had nothing to do for
//! [`KEEP_ALIVE`] end, so idle sessions cost no thread. It also knows how long the oldest I/O
//! operation in progress has been going ([`IoPool::stalled_for`]), which lets new sessions be
//! refused at once while the recordings disk does not respond.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Most threads the pool runs at once. Past it, jobs wait for a thread; a recording whose job
/// waits too long is then closed by its stall timeout like any other stalled recording.
pub const MAX_THREADS: usize = 1024;

/// How long a thread with nothing to do stays before it ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Stack of each I/O thread: encoding and hashing need little, and a thousand threads stuck on a
/// frozen disk should not reserve gigabytes.
const STACK_SIZE: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of threads for blocking recording I/O.
#[derive(Clone)]
pub struct IoPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    busy: Mutex<Busy>,
}

struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

/// The I/O operations in progress, by start order.
#[derive(Default)]
struct Busy {
    next: u64,
    started: BTreeMap<u64, Instant>,
}

/// Marks one blocking I/O operation in progress until it is dropped.
#[must_use = "the operation counts as in progress only while the guard lives"]
pub struct BusyGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl IoPool {
    /// A pool of at most `max_threads` threads that end after `keep_alive` without work.
    pub fn new(max_threads: usize, keep_alive: Duration) -> IoPool {
        IoPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                }),
                work: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                busy: Mutex::new(Busy::default()),
            }),
        }
    }

    /// The process's pool for recordings: one disk, one view of whether it responds.
    pub fn global() -> &'static IoPool {
        static POOL: OnceLock<IoPool> = OnceLock::new();
        POOL.get_or_init(|| IoPool::new(MAX_THREADS, KEEP_ALIVE))
    }

    /// Runs `job` on a pool thread, starting a thread if none is free. Never blocks on I/O.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = lock(&self.shared.state);
        state.jobs.push_back(Box::new(job));
        if state.idle >= state.jobs.len() || state.threads >= self.shared.max_threads {
            drop(state);
            self.shared.work.notify_one();
            return;
        }
        state.threads += 1;
        drop(state);
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("gatehouse-rec-io".to_owned())
            .stack_size(STACK_SIZE)
            .spawn(move || run(&shared));
        if let Err(e) = started {
            // The job stays queued for a thread that exists or comes later; if none ever does,
            // the recording stalls and its session is closed.
            lock(&self.shared.state).threads -= 1;
            self.shared.work.notify_one();
            tracing::error!(error = %e, "could not start a recording I/O thread");
        }
    }

    /// Marks a blocking I/O operation as in progress; [`IoPool::stalled_for`] sees it until the
    /// guard is dropped.
    pub fn busy(&self) -> BusyGuard {
        let mut busy = lock(&self.shared.busy);
        let id = busy.next;
        busy.next += 1;
        busy.started.insert(id, Instant::now());
        BusyGuard {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// How long the oldest I/O operation still in progress has been going, if there is one.
    pub fn stalled_for(&self) -> Option<Duration> {
        lock(&self.shared.busy)
            .started
            .first_key_value()
            .map(|(_, started)| started.elapsed())
    }

    /// Threads alive now (busy or idle), for tests and diagnostics.
    pub fn threads(&self) -> usize {
        lock(&self.shared.state).threads
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        lock(&self.shared.busy).started.remove(&self.id);
    }
}

/// A thread's life: take jobs until none has come for `keep_alive`.
fn run(shared: &Shared) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break Some(job);
                }
                state.idle += 1;
                let (next, waited) = shared
                    .work
                    .wait_timeout(state, shared.keep_alive)
                    .unwrap_or_else(PoisonError::into_inner);
                state = next;
                state.idle -= 1;
                if waited.timed_out() && state.jobs.is_empty() {
                    state.threads -= 1;
                    break None;
                }
            }
        };
        let Some(job) = job else { return };
        // A panicking job loses its own recording (its channels close, so its session sees the
        // writer gone), not the thread.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a recording I/O job panicked");
        }
    }
}

/// The pool's locks guard plain data that every operation leaves consistent, so a poisoned lock
/// is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_blocked_job_does_not_hold_up_the_others() {
        let pool = IoPool::new(8, Duration::from_secs(5));
        let (release, blocked) = mpsc::channel::<()>();
        pool.spawn(move || {
            let _ = blocked.recv();
        });
        let (done, finished) = mpsc::channel();
        for n in 0..5 {
            let done = done.clone();
            pool.spawn(move || done.send(n).unwrap());
        }
        let mut got: Vec<i32> = (0..5)
            .map(|_| finished.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        release.send(()).unwrap();
    }

    #[test]
    fn at_the_thread_limit_jobs_wait_for_a_thread() {
        let pool = IoPool::new(1, Duration::from_secs(5));
        let (release, blocked) = mpsc::channel::<()>();
        pool.spawn(move || {
            let _ = blocked.recv();
        });
        let (done, finished) = mpsc::channel();
        pool.spawn(move || done.send(()).unwrap());
        assert!(finished.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(pool.threads(), 1);
        release.send(()).unwrap();
        finished.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn idle_threads_end_after_the_keep_alive() {
        let pool = IoPool::new(4, Duration::from_millis(50));
        let (done, finished) = mpsc::channel();
        pool.spawn(move || done.send(()).unwrap());
        finished.recv_timeout(Duration::from_secs(5)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.threads() > 0 {
            assert!(Instant::now() < deadline, "the thread stayed");
            std::thread::sleep(Duration::from_millis(10));
        }
        // And a new job still runs.
        let (done, finished) = mpsc::channel();
        pool.spawn(move || done.send(()).unwrap());
        finished.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_panicking_job_leaves_the_pool_working() {
        let pool = IoPool::new(1, Duration::from_secs(5));
        pool.spawn(|| panic!("job failed"));
        let (done, finished) = mpsc::channel();
        pool.spawn(move || done.send(()).unwrap());
        finished.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn the_oldest_operation_in_progress_is_seen_until_it_ends() {
        let pool = IoPool::new(1, Duration::from_secs(5));
        assert!(pool.stalled_for().is_none());
        let first = pool.busy();
        std::thread::sleep(Duration::from_millis(30));
        let second = pool.busy();
        assert!(pool.stalled_for().unwrap() >= Duration::from_millis(30));
        drop(first);
        assert!(pool.stalled_for().unwrap() < Duration::from_millis(30));
        drop(second);
        assert!(pool.stalled_for().is_none());
    }
}
