//! The restricted shell's line editor: bytes from the user's terminal in, echo and finished
//! lines out.
//!
//! It is deliberately small and literal. Editing happens at the end of the line (backspace,
//! Ctrl-U), history is on the up and down arrows, Ctrl-C abandons the line and Ctrl-D on an empty
//! line leaves. Every other byte, control bytes included, goes into the line exactly as it came,
//! so that what the command rules check is exactly what was typed or pasted: a control byte
//! makes the line fail the check rather than being silently dropped. Escape sequences other than
//! the arrows and bracketed-paste markers are consumed and ignored, never put in the line.

/// Longest line accepted, in bytes (the command limit of the rules).
pub const MAX_LINE: usize = crate::policy::rules::MAX_COMMAND_BYTES;

/// Lines of history kept.
const HISTORY: usize = 100;

/// What a byte completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// Enter: this line is to be checked and run.
    Submit(Vec<u8>),
    /// Ctrl-C: the line was abandoned.
    Cancel,
    /// Ctrl-D on an empty line: the user leaves.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// Inside `ESC [` … collecting parameter bytes.
    Csi,
}

/// The editor's state for one session.
#[derive(Debug)]
pub struct LineEditor {
    prompt: String,
    line: Vec<u8>,
    history: Vec<Vec<u8>>,
    /// Position while browsing history (`history.len()` = the line being typed).
    browsing: usize,
    escape: Escape,
    csi: Vec<u8>,
    after_cr: bool,
}

impl LineEditor {
    /// An editor that redraws with `prompt`.
    pub fn new(prompt: impl Into<String>) -> LineEditor {
        LineEditor {
            prompt: prompt.into(),
            line: Vec::new(),
            history: Vec::new(),
            browsing: 0,
            escape: Escape::None,
            csi: Vec::new(),
            after_cr: false,
        }
    }

    /// The prompt.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// The prompt followed by the line as typed so far, for redrawing after a message.
    pub fn redraw(&self) -> Vec<u8> {
        let mut out = format!("\r\x1b[K{}", self.prompt).into_bytes();
        echo_bytes(&self.line, &mut out);
        out
    }

    /// Feeds one byte; appends what to echo to `echo`. Returns an event when the byte ends a line.
    pub fn push(&mut self, byte: u8, echo: &mut Vec<u8>) -> Option<LineEvent> {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::Started => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                self.csi.clear();
                return None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                    self.csi_final(byte, echo);
                } else if self.csi.len() < 16 {
                    self.csi.push(byte);
                } else {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::None => {}
        }
        match byte {
            0x1b => self.escape = Escape::Started,
            b'\r' => {
                self.after_cr = true;
                return Some(self.submit(echo));
            }
            // A LF right after a CR is the second half of one line end.
            b'\n' if after_cr => {}
            b'\n' => return Some(self.submit(echo)),
            0x03 => {
                echo.extend_from_slice(b"^C\r\n");
                self.line.clear();
                self.browsing = self.history.len();
                return Some(LineEvent::Cancel);
            }
            0x04 if self.line.is_empty() => {
                echo.extend_from_slice(b"\r\n");
                return Some(LineEvent::Eof);
            }
            0x04 => {}
            0x7f | 0x08 => {
                if let Some(width) = self.pop_char() {
                    for _ in 0..width {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
            }
            0x15 => {
                self.line.clear();
                echo.extend_from_slice(&self.redraw());
            }
            _ if self.line.len() >= MAX_LINE => echo.push(0x07),
            _ => {
                self.line.push(byte);
                echo_bytes(&[byte], echo);
            }
        }
        None
    }

    fn csi_final(&mut self, byte: u8, echo: &mut Vec<u8>) {
        if !self.csi.is_empty() {
            // Parameters (bracketed paste markers 200~/201~, modified keys): nothing to do.
            return;
        }
        match byte {
            b'A' if self.browsing > 0 => {
                self.browsing -= 1;
                self.line = self.history[self.browsing].clone();
                echo.extend_from_slice(&self.redraw());
            }
            b'B' if self.browsing < self.history.len() => {
                self.browsing += 1;
                self.line = self.history.get(self.browsing).cloned().unwrap_or_default();
                echo.extend_from_slice(&self.redraw());
            }
            _ => {}
        }
    }

    fn submit(&mut self, echo: &mut Vec<u8>) -> LineEvent {
        echo.extend_from_slice(b"\r\n");
        let line = std::mem::take(&mut self.line);
        if !line.iter().all(|&b| b == b' ' || b == b'\t') && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        self.browsing = self.history.len();
        LineEvent::Submit(line)
    }

    /// Removes the last character (a whole UTF-8 sequence); returns how many columns its echo took.
    fn pop_char(&mut self) -> Option<usize> {
        let mut last = self.line.pop()?;
        // Continuation bytes (0b10xxxxxx) belong to the lead byte before them.
        while last & 0xc0 == 0x80 {
            match self.line.pop() {
                Some(b) => last = b,
                None => break,
            }
        }
        Some(if last < 0x20 || last == 0x7f { 2 } else { 1 })
    }
}

/// Echoes bytes: printable ones as they are, control bytes in caret notation (`^[`), so the
/// user sees them and no control byte reaches their terminal from their own typing.
fn echo_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\t' => out.push(b' '),
            0x00..=0x1f => out.extend_from_slice(&[b'^', b + 0x40]),
            0x7f => out.extend_from_slice(b"^?"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(editor: &mut LineEditor, bytes: &[u8]) -> (Vec<LineEvent>, Vec<u8>) {
        let mut echo = Vec::new();
        let events = bytes
            .iter()
            .filter_map(|&b| editor.push(b, &mut echo))
            .collect();
        (events, echo)
    }

    #[test]
    fn typed_lines_are_submitted_as_typed() {
        let mut e = LineEditor::new("$ ");
        let (events, echo) = feed(&mut e, b"systemctl status nginx\r");
        assert_eq!(
            events,
            [LineEvent::Submit(b"systemctl status nginx".to_vec())]
        );
        assert_eq!(echo, b"systemctl status nginx\r\n");
    }

    #[test]
    fn backspace_ctrl_u_and_ctrl_c_edit_the_line() {
        let mut e = LineEditor::new("$ ");
        let (events, _) = feed(&mut e, b"lsx\x7f -l\r");
        assert_eq!(events, [LineEvent::Submit(b"ls -l".to_vec())]);
        let (events, _) = feed(&mut e, b"rm -rf /\x15ls\r");
        assert_eq!(events, [LineEvent::Submit(b"ls".to_vec())]);
        let (events, echo) = feed(&mut e, b"reboot\x03");
        assert_eq!(events, [LineEvent::Cancel]);
        assert!(echo.ends_with(b"^C\r\n"));
        let (events, _) = feed(&mut e, b"\r");
        assert_eq!(
            events,
            [LineEvent::Submit(vec![])],
            "nothing left of the cancelled line"
        );
    }

    #[test]
    fn backspace_removes_whole_utf8_characters() {
        let mut e = LineEditor::new("$ ");
        let (events, _) = feed(&mut e, "grep é€😀".as_bytes());
        assert!(events.is_empty());
        let (events, _) = feed(&mut e, b"\x7f\x7f\r");
        assert_eq!(events, [LineEvent::Submit("grep é".as_bytes().to_vec())]);
    }

    #[test]
    fn control_bytes_stay_in_the_line_so_the_check_sees_them() {
        let mut e = LineEditor::new("$ ");
        let (events, echo) = feed(&mut e, b"ls\x07 /\x00x\r");
        assert_eq!(events, [LineEvent::Submit(b"ls\x07 /\x00x".to_vec())]);
        assert!(!echo.contains(&0x07), "never echoed raw");
    }

    #[test]
    fn pasted_lines_come_out_one_by_one() {
        let mut e = LineEditor::new("$ ");
        let (events, _) = feed(&mut e, b"uptime\r\nrm -rf /\nls\r\n");
        assert_eq!(
            events,
            [
                LineEvent::Submit(b"uptime".to_vec()),
                LineEvent::Submit(b"rm -rf /".to_vec()),
                LineEvent::Submit(b"ls".to_vec())
            ]
        );
    }

    #[test]
    fn escape_sequences_never_enter_the_line_and_arrows_browse_history() {
        let mut e = LineEditor::new("$ ");
        feed(&mut e, b"one\rtwo\r");
        let (events, _) = feed(&mut e, b"\x1b[A\x1b[A\r");
        assert_eq!(events, [LineEvent::Submit(b"one".to_vec())]);
        let (events, _) = feed(&mut e, b"\x1b[200~ls\x1b[201~\x1b[1;5C\x1bx\r");
        assert_eq!(events, [LineEvent::Submit(b"ls".to_vec())]);
        let (events, _) = feed(&mut e, b"\x1b[A\x1b[B\r");
        assert_eq!(events, [LineEvent::Submit(vec![])]);
    }

    #[test]
    fn ctrl_d_leaves_only_on_an_empty_line_and_lines_are_bounded() {
        let mut e = LineEditor::new("$ ");
        let (events, _) = feed(&mut e, b"ls\x04");
        assert!(events.is_empty());
        let (events, _) = feed(&mut e, b"\x15\x04");
        assert_eq!(events, [LineEvent::Eof]);
        let mut e = LineEditor::new("$ ");
        let long = vec![b'a'; MAX_LINE + 100];
        let (_, echo) = feed(&mut e, &long);
        assert!(echo.contains(&0x07));
        let (events, _) = feed(&mut e, b"\r");
        assert_eq!(events, [LineEvent::Submit(vec![b'a'; MAX_LINE])]);
    }
}
