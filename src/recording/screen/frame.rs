//! One screen as the browser receives it: plain text in runs of equal style.
//!
//! The page builds the DOM from these with `textContent`, so nothing here is ever parsed as
//! markup, and the text holds only characters a terminal put in its cells. The emulator keeps
//! control characters out of cells; [`display_char`] also replaces the invisible characters
//! that would make the page show something other than the cells (bidi overrides, zero-width
//! and line-separator characters), so what a reviewer reads is what the grid holds.
//!
//! # Colours
//!
//! `fg` and `bg` are `null` for the terminal's default colours, `"c0"` … `"c15"` for the 16
//! standard colours (the page's palette names them: 0–7 normal, 8–15 bright), and `"#rrggbb"`
//! for the 256-colour cube and grey ramp (xterm's values) and for direct RGB colours.

use avt::{Cell, Color, Pen, Terminal};
use serde::Serialize;

/// The terminal screen at one moment of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Frame {
    /// Seconds since the start of the recording.
    pub time: f64,
    /// Terminal width in columns.
    pub cols: u16,
    /// Terminal height in rows.
    pub rows: u16,
    /// One entry per row, top to bottom; each row a list of runs of equal style. Trailing
    /// blank cells in the default style are left out (the page pads rows to `cols`).
    pub lines: Vec<Vec<Span>>,
    /// Where the cursor is.
    pub cursor: FrameCursor,
}

/// A run of adjacent cells of one row with the same style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Span {
    /// The characters, one per cell (a double-width character stands for two cells).
    pub text: String,
    /// Foreground colour; see the module documentation.
    pub fg: Option<String>,
    /// Background colour; see the module documentation.
    pub bg: Option<String>,
    /// Bold (increased intensity).
    pub bold: bool,
    /// Italic.
    pub italic: bool,
    /// Underlined.
    pub underline: bool,
    /// Foreground and background swapped.
    pub inverse: bool,
    /// Faint (decreased intensity).
    pub faint: bool,
}

/// The cursor of a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FrameCursor {
    /// Column, 0-based, within `0..cols`.
    pub col: u16,
    /// Row, 0-based, within `0..rows`.
    pub row: u16,
    /// Whether the application shows the cursor.
    pub visible: bool,
}

/// The style a span stands for, compared cell by cell to find where runs end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Style {
    fg: Option<Color>,
    bg: Option<Color>,
    bold: bool,
    italic: bool,
    underline: bool,
    inverse: bool,
    faint: bool,
}

impl Style {
    fn of(pen: &Pen) -> Self {
        Self {
            fg: pen.foreground(),
            bg: pen.background(),
            bold: pen.is_bold(),
            italic: pen.is_italic(),
            underline: pen.is_underline(),
            inverse: pen.is_inverse(),
            faint: pen.is_faint(),
        }
    }

    fn is_default(&self) -> bool {
        *self == Self::of(&Pen::default())
    }

    fn span(&self, text: String) -> Span {
        Span {
            text,
            fg: self.fg.map(css_color),
            bg: self.bg.map(css_color),
            bold: self.bold,
            italic: self.italic,
            underline: self.underline,
            inverse: self.inverse,
            faint: self.faint,
        }
    }
}

/// Renders the active screen of `terminal` as the frame for `time`.
pub(crate) fn render(terminal: &Terminal, time: f64) -> Frame {
    let (cols, rows) = terminal.size();
    let cols = u16::try_from(cols).unwrap_or(u16::MAX);
    let rows = u16::try_from(rows).unwrap_or(u16::MAX);
    let lines = terminal
        .screen()
        .visible_lines()
        .map(|line| spans(line.cells()))
        .collect();
    let cursor = terminal.cursor();
    let clamp = |value: usize, size: u16| {
        u16::try_from(value)
            .unwrap_or(u16::MAX)
            .min(size.saturating_sub(1))
    };
    Frame {
        time,
        cols,
        rows,
        lines,
        cursor: FrameCursor {
            col: clamp(cursor.col, cols),
            row: clamp(cursor.row, rows),
            visible: cursor.visible,
        },
    }
}

/// The runs of one row's cells, without the trailing default blanks.
fn spans(cells: &[Cell]) -> Vec<Span> {
    let shown = cells
        .iter()
        .rposition(|cell| !(cell.char() == ' ' && Style::of(cell.pen()).is_default()))
        .map_or(0, |last| last + 1);
    let mut spans = Vec::new();
    let mut current: Option<(Style, String)> = None;
    // A double-width character's second cell (width 0) holds nothing of its own.
    for cell in cells[..shown].iter().filter(|cell| cell.width() > 0) {
        let style = Style::of(cell.pen());
        match &mut current {
            Some((run_style, text)) if *run_style == style => text.push(display_char(cell.char())),
            _ => {
                if let Some((run_style, text)) = current.take() {
                    spans.push(run_style.span(text));
                }
                current = Some((style, display_char(cell.char()).to_string()));
            }
        }
    }
    if let Some((style, text)) = current {
        spans.push(style.span(text));
    }
    spans
}

/// The character a page shows for a cell: the cell's own, unless it is a control or an
/// invisible formatting character (which would reorder, join, hide or break the text around
/// it), shown as U+FFFD so the reviewer sees that something was there.
pub(crate) fn display_char(ch: char) -> char {
    let invisible = ch.is_control()
        || matches!(
            ch,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{115f}'..='\u{1160}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e0fff}'
        );
    if invisible { '\u{fffd}' } else { ch }
}

/// A colour as the page's CSS takes it.
fn css_color(color: Color) -> String {
    match color {
        Color::Indexed(index @ 0..=15) => format!("c{index}"),
        Color::Indexed(index @ 16..=231) => {
            const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
            let cube = index - 16;
            let level = |n: u8| LEVELS[usize::from(n)];
            hex(level(cube / 36), level(cube / 6 % 6), level(cube % 6))
        }
        Color::Indexed(index) => {
            let grey = 8 + (index - 232) * 10;
            hex(grey, grey, grey)
        }
        Color::RGB(rgb) => hex(rgb.r, rgb.g, rgb.b),
    }
}

fn hex(r: u8, g: u8, b: u8) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(cols: usize, rows: usize, output: &str) -> Frame {
        let mut terminal = Terminal::new(cols, rows).unwrap();
        terminal.feed(output);
        render(&terminal, 1.5)
    }

    fn plain(text: &str) -> Span {
        Style::of(&Pen::default()).span(text.to_owned())
    }

    #[test]
    fn colours_are_palette_names_or_css_hex() {
        assert_eq!(css_color(Color::Indexed(0)), "c0");
        assert_eq!(css_color(Color::Indexed(9)), "c9");
        assert_eq!(css_color(Color::Indexed(15)), "c15");
        assert_eq!(css_color(Color::Indexed(16)), "#000000");
        assert_eq!(css_color(Color::Indexed(196)), "#ff0000");
        assert_eq!(css_color(Color::Indexed(110)), "#87afd7");
        assert_eq!(css_color(Color::Indexed(231)), "#ffffff");
        assert_eq!(css_color(Color::Indexed(232)), "#080808");
        assert_eq!(css_color(Color::Indexed(255)), "#eeeeee");
        assert_eq!(css_color(Color::rgb(1, 0xab, 0xff)), "#01abff");
    }

    #[test]
    fn runs_split_where_the_style_changes() {
        let frame = frame_of(
            20,
            2,
            "ab\x1b[1;31mCD\x1b[0;4;38;5;196;48;2;1;2;3mef\x1b[0m g\x1b[3;7;2mh\x1b[0m",
        );
        assert_eq!((frame.cols, frame.rows, frame.time), (20, 2, 1.5));
        let row = &frame.lines[0];
        assert_eq!(row.len(), 5, "{row:?}");
        assert_eq!(row[0], plain("ab"));
        assert_eq!(row[1].text, "CD");
        assert_eq!(row[1].fg.as_deref(), Some("c1"));
        assert!(row[1].bold && !row[1].faint && !row[1].underline);
        assert_eq!(row[2].text, "ef");
        assert_eq!(row[2].fg.as_deref(), Some("#ff0000"));
        assert_eq!(row[2].bg.as_deref(), Some("#010203"));
        assert!(row[2].underline && !row[2].bold);
        assert_eq!(row[3], plain(" g"));
        assert_eq!(row[4].text, "h");
        assert!(row[4].italic && row[4].inverse && row[4].faint && !row[4].bold);
        assert!(frame.lines[1].is_empty());
    }

    #[test]
    fn trailing_default_blanks_are_left_out_but_styled_blanks_kept() {
        let frame = frame_of(10, 1, "a  \x1b[44m  \x1b[0m ");
        let row = &frame.lines[0];
        assert_eq!(row.len(), 2);
        assert_eq!(row[0], plain("a  "));
        assert_eq!(row[1].text, "  ");
        assert_eq!(row[1].bg.as_deref(), Some("c4"));
    }

    #[test]
    fn double_width_characters_take_one_character_of_text() {
        let frame = frame_of(10, 1, "a界b");
        assert_eq!(frame.lines[0], vec![plain("a界b")]);
        assert_eq!(frame.cursor.col, 4);
    }

    #[test]
    fn cursor_is_clamped_to_the_grid_and_can_be_hidden() {
        let frame = frame_of(4, 2, "abcd");
        assert_eq!(frame.cursor.row, 0);
        assert!(frame.cursor.col <= 3);
        let frame = frame_of(4, 2, "\x1b[2;3H\x1b[?25l");
        assert_eq!(
            frame.cursor,
            FrameCursor {
                col: 2,
                row: 1,
                visible: false
            }
        );
    }

    #[test]
    fn invisible_and_reordering_characters_are_shown_as_replacement() {
        let frame = frame_of(20, 1, "a\u{202e}b\u{200b}c\u{2028}d\u{feff}e\u{7f}f");
        let text: String = frame.lines[0].iter().map(|s| s.text.as_str()).collect();
        // The emulator prints DEL into a cell; it is shown as a replacement too.
        assert_eq!(text, "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}e\u{fffd}f");
        assert!(!text.chars().any(char::is_control));
        for ch in [
            '\u{1b}',
            '\u{7}',
            '\u{9b}',
            '\u{202d}',
            '\u{2066}',
            '\u{e0041}',
        ] {
            assert_eq!(display_char(ch), '\u{fffd}', "{ch:?}");
        }
        for ch in ['a', 'é', '界', '😀', '\u{2500}', '<'] {
            assert_eq!(display_char(ch), ch);
        }
    }

    #[test]
    fn serialises_to_the_shape_the_page_reads() {
        let frame = frame_of(3, 1, "\x1b[32mx");
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "time": 1.5, "cols": 3, "rows": 1,
                "lines": [[{"text": "x", "fg": "c2", "bg": null, "bold": false, "italic": false,
                            "underline": false, "inverse": false, "faint": false}]],
                "cursor": {"col": 1, "row": 0, "visible": true}
            })
        );
    }
}
