//! Neutralising recorded output before it reaches a reviewer's terminal.
//!
//! A recording is attacker-controlled data: anyone with a session can print
//! escape sequences that, replayed later, would set the reviewer's clipboard
//! (OSC 52), retitle or hyperlink their terminal, or make the terminal answer
//! a query — and the answer arrives as if the reviewer had typed it. The
//! [`Sanitizer`] removes those while leaving everything needed to render the
//! session (colours, cursor movement, erasing, scroll regions, alternate
//! screen, bracketed paste) byte-identical.
//!
//! Rules, applied to 7-bit (`ESC x`) and C1 (U+0080–U+009F) forms alike:
//! * OSC, DCS, APC, PM and SOS strings, and screen's `ESC k` title string, are
//!   dropped whole, up to BEL, ST, CAN, SUB or the next ESC.
//! * CSI sequences that make the terminal reply, manipulate its window or
//!   drive a printer are dropped: final `c` (device attributes), `n` (status
//!   reports), `t` (window operations/reports), `x` (DECREQTPARM), `i` (media
//!   copy), `$p`/`$u`/`$w` (mode/state requests), `*y` (checksum), `#|`,
//!   `'|`/`'w`/`'z`/`'{` (locator), `?S`, `>q`, `?u`, `?m` (xterm queries).
//! * DECSET (`CSI ? … h`) loses modes that make the terminal send reports on
//!   mouse, focus, resize or palette changes; other modes in the same sequence
//!   are kept.
//! * `ESC Z`, SCI (U+009A), ENQ and stray string terminators are dropped.
//! * Anything malformed or over-long is dropped, never passed on partially:
//!   the terminal never sees an introducer whose end we did not check.

/// Longest escape or control sequence held while waiting for its end; longer
/// ones are dropped rather than buffered without bound.
const MAX_SEQUENCE: usize = 256;

/// DEC private modes that make the terminal send unsolicited reports.
const REPORTING_MODES: &[&str] = &["9", "1000", "1001", "1002", "1003", "1004", "2031", "2048"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    /// After ESC; `pending` holds it.
    Escape,
    /// After ESC and intermediate bytes; `pending` holds them.
    EscIntermediate,
    /// Inside a CSI sequence; `pending` holds it from the introducer on.
    Csi { intermediates: bool },
    /// Inside a sequence that will be dropped, until its final byte.
    Ignore { csi: bool },
    /// Inside an OSC/DCS/APC/PM/SOS string, dropping it.
    Str,
    /// ESC seen inside a string: either ST or the start of a new sequence.
    StrEsc,
}

/// Streaming escape-sequence filter; keeps state between chunks so sequences
/// split across events are still recognised.
#[derive(Debug, Clone, Default)]
pub struct Sanitizer {
    state: State,
    pending: String,
}

enum Verdict {
    Keep,
    Drop,
    Replace(String),
}

impl Sanitizer {
    /// Creates a sanitiser in the ground state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Filters `input`, appending what is safe to `out`. Part of a sequence at
    /// the end of `input` is held until a later call completes it.
    pub fn push(&mut self, input: &str, out: &mut String) {
        let mut run_start = 0;
        for (index, c) in input.char_indices() {
            if self.state == State::Ground && !is_ground_special(c) {
                continue;
            }
            if self.state == State::Ground {
                out.push_str(&input[run_start..index]);
            }
            self.step(c, out);
            run_start = index + c.len_utf8();
        }
        if self.state == State::Ground {
            out.push_str(&input[run_start..]);
        }
    }

    /// Discards an unfinished sequence at the end of the stream; it was never
    /// complete, so the terminal must not see it.
    pub fn finish(&mut self) {
        self.pending.clear();
        self.state = State::Ground;
    }

    fn step(&mut self, c: char, out: &mut String) {
        match self.state {
            State::Ground => self.ground(c, out),
            State::Escape => self.escape(c, out),
            State::EscIntermediate => self.esc_intermediate(c, out),
            State::Csi { intermediates } => self.csi(c, intermediates, out),
            State::Ignore { csi } => self.ignore(c, csi, out),
            State::Str => self.string(c),
            State::StrEsc => {
                if c == '\\' {
                    self.state = State::Ground;
                } else {
                    self.start_escape();
                    self.escape(c, out);
                }
            }
        }
    }

    fn ground(&mut self, c: char, out: &mut String) {
        match c {
            '\u{1b}' => self.start_escape(),
            '\u{9b}' => {
                self.pending.clear();
                self.pending.push(c);
                self.state = State::Csi {
                    intermediates: false,
                };
            }
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = State::Str,
            // ENQ (answerback), SCI (DECID), stray ST.
            '\u{05}' | '\u{9a}' | '\u{9c}' => {}
            _ => out.push(c),
        }
    }

    fn start_escape(&mut self) {
        self.pending.clear();
        self.pending.push('\u{1b}');
        self.state = State::Escape;
    }

    /// Handles what every non-string state does with control characters;
    /// returns false if `c` is not one of them.
    fn common_control(&mut self, c: char, out: &mut String) -> bool {
        match c {
            '\u{1b}' => self.start_escape(),
            '\u{18}' | '\u{1a}' => {
                // CAN and SUB abort the sequence.
                self.pending.clear();
                self.state = State::Ground;
                out.push(c);
            }
            '\u{05}' | '\u{7f}' => {}
            '\u{0}'..='\u{1f}' => out.push(c),
            c if !c.is_ascii() => {
                // Not part of any sequence we pass on: abandon the sequence.
                self.pending.clear();
                self.state = State::Ground;
                self.ground(c, out);
            }
            _ => return false,
        }
        true
    }

    fn escape(&mut self, c: char, out: &mut String) {
        if self.common_control(c, out) {
            return;
        }
        match c {
            '[' => {
                self.pending.push(c);
                self.state = State::Csi {
                    intermediates: false,
                };
            }
            ']' | 'P' | '_' | '^' | 'X' | 'k' => {
                self.pending.clear();
                self.state = State::Str;
            }
            // DECID and a stray ST.
            'Z' | '\\' => {
                self.pending.clear();
                self.state = State::Ground;
            }
            ' '..='/' => {
                self.pending.push(c);
                self.state = State::EscIntermediate;
            }
            _ => self.emit_pending(c, out),
        }
    }

    fn esc_intermediate(&mut self, c: char, out: &mut String) {
        if self.common_control(c, out) {
            return;
        }
        match c {
            ' '..='/' if self.pending.len() < MAX_SEQUENCE => self.pending.push(c),
            ' '..='/' => {
                self.pending.clear();
                self.state = State::Ignore { csi: false };
            }
            _ => self.emit_pending(c, out),
        }
    }

    fn emit_pending(&mut self, last: char, out: &mut String) {
        self.pending.push(last);
        out.push_str(&self.pending);
        self.pending.clear();
        self.state = State::Ground;
    }

    fn csi(&mut self, c: char, intermediates: bool, out: &mut String) {
        if self.common_control(c, out) {
            return;
        }
        if self.pending.len() >= MAX_SEQUENCE {
            self.pending.clear();
            self.state = State::Ignore { csi: true };
            self.ignore(c, true, out);
            return;
        }
        match c {
            '0'..='?' if !intermediates => self.pending.push(c),
            '0'..='?' => {
                self.pending.clear();
                self.state = State::Ignore { csi: true };
            }
            ' '..='/' => {
                self.pending.push(c);
                self.state = State::Csi {
                    intermediates: true,
                };
            }
            '@'..='~' => {
                self.pending.push(c);
                match csi_verdict(&self.pending) {
                    Verdict::Keep => out.push_str(&self.pending),
                    Verdict::Drop => {}
                    Verdict::Replace(replacement) => out.push_str(&replacement),
                }
                self.pending.clear();
                self.state = State::Ground;
            }
            // DEL is ignored inside sequences.
            _ => {}
        }
    }

    fn ignore(&mut self, c: char, csi: bool, out: &mut String) {
        if self.common_control(c, out) {
            return;
        }
        let is_final = if csi {
            ('@'..='~').contains(&c)
        } else {
            ('0'..='~').contains(&c)
        };
        if is_final {
            self.state = State::Ground;
        }
    }

    fn string(&mut self, c: char) {
        match c {
            '\u{7}' | '\u{9c}' | '\u{18}' | '\u{1a}' => self.state = State::Ground,
            '\u{1b}' => self.state = State::StrEsc,
            _ => {}
        }
    }
}

fn is_ground_special(c: char) -> bool {
    matches!(
        c,
        '\u{1b}' | '\u{05}' | '\u{90}' | '\u{98}' | '\u{9a}'..='\u{9f}'
    )
}

/// Decides what happens to a complete CSI sequence (introducer included).
fn csi_verdict(sequence: &str) -> Verdict {
    let introducer = if sequence.starts_with('\u{1b}') {
        "\u{1b}["
    } else {
        "\u{9b}"
    };
    let Some(body_and_final) = sequence.strip_prefix(introducer) else {
        return Verdict::Drop;
    };
    let Some(final_byte) = body_and_final.chars().last() else {
        return Verdict::Drop;
    };
    let body = &body_and_final[..body_and_final.len() - 1];
    let (private, rest) = match body.chars().next() {
        Some(p @ '<'..='?') => (Some(p), &body[1..]),
        _ => (None, body),
    };
    let split = rest
        .find(|c| (' '..='/').contains(&c))
        .unwrap_or(rest.len());
    let (params, intermediates) = rest.split_at(split);
    let denied = matches!(
        (private, intermediates, final_byte),
        (_, _, 'c' | 'n')
            | (_, "", 't' | 'x' | 'i')
            | (_, "$", 'p' | 'u' | 'w')
            | (_, "*", 'y')
            | (_, "#", '|')
            | (_, "'", '|' | 'w' | 'z' | '{')
            | (Some('?'), "", 'S' | 'u' | 'm')
            | (Some('>'), "", 'q')
    );
    if denied {
        return Verdict::Drop;
    }
    if private == Some('?') && intermediates.is_empty() && final_byte == 'h' {
        let kept: Vec<&str> = params
            .split(';')
            .filter(|mode| !REPORTING_MODES.contains(mode))
            .collect();
        let total = params.split(';').count();
        if kept.len() == total {
            return Verdict::Keep;
        }
        if kept.is_empty() {
            return Verdict::Drop;
        }
        return Verdict::Replace(format!("{introducer}?{}h", kept.join(";")));
    }
    Verdict::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(input: &str) -> String {
        let mut sanitizer = Sanitizer::new();
        let mut out = String::new();
        sanitizer.push(input, &mut out);
        out
    }

    /// Feeds `input` split at every char boundary into two pushes, and one
    /// char per push, checking all give the same result as one push.
    fn clean_all_splits(input: &str) -> String {
        let whole = clean(input);
        for (cut, _) in input.char_indices().skip(1) {
            let mut sanitizer = Sanitizer::new();
            let mut out = String::new();
            sanitizer.push(&input[..cut], &mut out);
            sanitizer.push(&input[cut..], &mut out);
            assert_eq!(out, whole, "split at {cut} of {input:?}");
        }
        let mut sanitizer = Sanitizer::new();
        let mut out = String::new();
        for c in input.chars() {
            sanitizer.push(c.encode_utf8(&mut [0; 4]), &mut out);
        }
        assert_eq!(out, whole, "char by char {input:?}");
        whole
    }

    #[test]
    fn ordinary_sequences_survive_byte_identical() {
        let samples = [
            "plain text\r\n",
            "\u{1b}[31mred\u{1b}[0m \u{1b}[1;38;5;208mbold\u{1b}[38:2::1:2:3m\u{1b}[m",
            "\u{1b}[H\u{1b}[2J\u{1b}[K\u{1b}[1;1H\u{1b}[10A\u{1b}[3C\u{1b}[5;20r",
            "\u{1b}[?1049h\u{1b}[?25l\u{1b}[?2004h\u{1b}[?1h\u{1b}=\u{1b}[?1049l\u{1b}[?2004l",
            "\u{1b}7\u{1b}8\u{1b}(0lqk\u{1b}(B\u{1b}M\u{1b}D\u{1b}c",
            "\u{1b}[2 q\u{1b}[S\u{1b}[T\u{1b}[4h\u{1b}[?1000l",
            "tab\tbell\u{7}backspace\u{8} unicode é 😀 \u{85}",
            "\u{9b}31mc1 colour\u{9b}0m",
        ];
        for sample in samples {
            assert_eq!(clean_all_splits(sample), sample);
        }
    }

    #[test]
    fn osc_strings_are_dropped() {
        let cases = [
            ("a\u{1b}]52;c;ZXZpbA==\u{7}b", "ab"),
            ("a\u{1b}]0;pwned\u{1b}\\b", "ab"),
            ("a\u{1b}]1;icon\u{7}b", "ab"),
            ("a\u{1b}]2;title\u{9c}b", "ab"),
            (
                "\u{1b}]8;;http://evil.example/\u{1b}\\link\u{1b}]8;;\u{1b}\\",
                "link",
            ),
            ("a\u{1b}]4;1;?\u{7}b\u{1b}]11;?\u{7}", "ab"),
            ("a\u{9d}52;c;ZXZpbA==\u{7}b", "ab"),
            ("a\u{1b}]7;file://host/tmp\u{18}b", "ab"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean_all_splits(input), expected, "{input:?}");
        }
    }

    #[test]
    fn dcs_apc_pm_sos_and_screen_titles_are_dropped() {
        let cases = [
            "a\u{1b}P$qm\u{1b}\\b",
            "a\u{1b}P+q544e\u{1b}\\b",
            "a\u{1b}Ptmux;\u{1b}\u{1b}]52;c;eA==\u{7}\u{1b}\\b",
            "a\u{1b}_Gf=100;AAAA\u{1b}\\b",
            "a\u{1b}^privacy\u{1b}\\b",
            "a\u{1b}Xsos\u{1b}\\b",
            "a\u{1b}ktitle\u{1b}\\b",
            "a\u{90}$qm\u{9c}b",
            "a\u{9f}apc\u{9c}b",
            "a\u{9e}pm\u{9c}b",
            "a\u{98}sos\u{9c}b",
        ];
        for input in cases {
            assert_eq!(clean_all_splits(input), "ab", "{input:?}");
        }
    }

    #[test]
    fn string_ended_by_a_new_sequence_keeps_that_sequence() {
        assert_eq!(
            clean_all_splits("a\u{1b}]0;t\u{1b}[31mred"),
            "a\u{1b}[31mred"
        );
    }

    #[test]
    fn queries_that_make_the_terminal_answer_are_dropped() {
        let cases = [
            "\u{1b}[c",
            "\u{1b}[0c",
            "\u{1b}[>c",
            "\u{1b}[>0c",
            "\u{1b}[=c",
            "\u{1b}[5n",
            "\u{1b}[6n",
            "\u{1b}[?6n",
            "\u{1b}[18t",
            "\u{1b}[21t",
            "\u{1b}[14t",
            "\u{1b}[8;100;100t",
            "\u{1b}[1x",
            "\u{1b}[?2004$p",
            "\u{1b}[1$w",
            "\u{1b}[1;1;1;1;1;1*y",
            "\u{1b}[>q",
            "\u{1b}[?u",
            "\u{1b}[?1;1S",
            "\u{1b}[?4m",
            "\u{1b}[1;1;2;2#|",
            "\u{1b}[1'|",
            "\u{1b}[5i",
            "\u{1b}Z",
            "\u{9a}",
            "\u{5}",
            "\u{9b}6n",
            "\u{9b}c",
        ];
        for query in cases {
            let input = format!("a{query}b");
            assert_eq!(clean_all_splits(&input), "ab", "{query:?}");
        }
    }

    #[test]
    fn reporting_modes_are_removed_from_decset() {
        assert_eq!(clean_all_splits("a\u{1b}[?1000hb"), "ab");
        assert_eq!(clean_all_splits("a\u{1b}[?1002;1006hb"), "a\u{1b}[?1006hb");
        assert_eq!(clean_all_splits("\u{1b}[?1049;1000;1004h"), "\u{1b}[?1049h");
        assert_eq!(clean_all_splits("\u{1b}[?1004l"), "\u{1b}[?1004l");
    }

    #[test]
    fn malformed_and_oversized_sequences_are_dropped() {
        assert_eq!(clean_all_splits("a\u{1b}[1 2mb"), "ab");
        let long = format!("a\u{1b}[{}mb", "1;".repeat(300));
        assert_eq!(clean(&long), "ab");
        // A non-ASCII character abandons the sequence and is kept.
        assert_eq!(clean_all_splits("a\u{1b}[1é"), "aé");
        // ESC restarts; the abandoned CSI is never emitted.
        assert_eq!(clean_all_splits("\u{1b}[12\u{1b}[31m"), "\u{1b}[31m");
    }

    #[test]
    fn controls_inside_sequences_are_executed_in_place() {
        assert_eq!(clean_all_splits("\u{1b}[3\r1m"), "\r\u{1b}[31m");
    }

    #[test]
    fn unfinished_sequence_is_held_then_discarded_by_finish() {
        let mut sanitizer = Sanitizer::new();
        let mut out = String::new();
        sanitizer.push("text\u{1b}[3", &mut out);
        assert_eq!(out, "text");
        sanitizer.finish();
        sanitizer.push("1m", &mut out);
        assert_eq!(out, "text1m");
    }

    /// Characters that make up escape sequences, plus some ordinary text.
    const ALPHABET: &[char] = &[
        '\u{1b}', '\u{1b}', '\u{1b}', '[', '[', ']', 'P', '_', '^', 'X', 'k', 'Z', '\\', '0', '1',
        '5', '6', '8', ';', '?', '>', '$', '*', ' ', 'c', 'n', 'm', 'h', 't', 'q', 'u', 'p', 'y',
        'a', '\u{7}', '\u{18}', '\u{5}', '\r', '\u{7f}', '\u{9b}', '\u{9d}', '\u{9c}', '\u{90}',
        '\u{9a}', '\u{85}', 'é', '😀',
    ];

    proptest::proptest! {
        #[test]
        fn output_is_stable_split_invariant_and_free_of_strings(
            chars in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..80),
            cut in 0usize..80,
        ) {
            let input: String = chars.iter().collect();
            let whole = clean(&input);
            // Sanitised output has nothing left to remove.
            proptest::prop_assert_eq!(clean(&whole), whole.clone());
            for introducer in ["\u{1b}]", "\u{1b}P", "\u{1b}_", "\u{1b}^", "\u{1b}X", "\u{1b}Z"] {
                proptest::prop_assert!(!whole.contains(introducer), "{:?} in {:?}", introducer, whole);
            }
            let forbidden = ['\u{5}', '\u{9d}', '\u{90}', '\u{9a}', '\u{9c}'];
            proptest::prop_assert!(!whole.contains(forbidden), "{:?}", whole);
            let cut = input
                .char_indices()
                .map(|(i, _)| i)
                .nth(cut)
                .unwrap_or(input.len());
            let mut sanitizer = Sanitizer::new();
            let mut split = String::new();
            sanitizer.push(&input[..cut], &mut split);
            sanitizer.push(&input[cut..], &mut split);
            proptest::prop_assert_eq!(split, whole);
        }
    }
}
