//! Reading a verb's arguments: words with shell-like quoting, and options whose free-text values
//! run to the next option.
//!
//! The OpenSSH client joins its arguments with spaces and drops the user's quotes, so
//! `--reason primary is down` arrives as four words. A free-text option therefore takes every
//! following word up to the next option or `--`; quoting (`'…'`, `"…"`) still works for text
//! that itself looks like an option. Control, format and odd whitespace characters are refused
//! outright, as everywhere else.

use std::collections::HashMap;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No value (`--all`).
    Nothing,
    /// Exactly one word (`--role web-ops`).
    Word,
    /// Every word up to the next option or `--` (`--reason primary is down`).
    Text,
}

/// Parsed arguments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// Words that are not options, in order.
    pub positional: Vec<String>,
    /// Option values by name (flags map to an empty string).
    pub options: HashMap<&'static str, String>,
    /// Words after `--`, untouched.
    pub rest: Vec<String>,
}

impl Args {
    /// An option's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// Whether a flag was given.
    pub fn has(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }
}

/// A word with whether any part of it was quoted (a quoted word is never an option).
struct Word {
    text: String,
    quoted: bool,
}

/// Splits `raw` into words: spaces and tabs separate, `'…'` and `"…"` quote, `\\` escapes.
fn split(raw: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut chars = raw.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((offset, ch)) = chars.next() {
        if ch != ' ' && ch != '\t' {
            crate::policy::rules::check_char(offset, ch).map_err(|e| e.to_string())?;
        }
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    quoted: true,
                })
                .text
                .push(c),
            (None, ' ' | '\t') => words.extend(current.take()),
            (None, '\'' | '"') => {
                quote = Some(ch);
                let word = current.get_or_insert_with(|| Word {
                    text: String::new(),
                    quoted: true,
                });
                word.quoted = true;
            }
            (None, '\\') => {
                let (_, next) = chars.next().ok_or("a backslash ends the line")?;
                current
                    .get_or_insert_with(|| Word {
                        text: String::new(),
                        quoted: true,
                    })
                    .text
                    .push(next);
            }
            (None, c) => current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    quoted: false,
                })
                .text
                .push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    words.extend(current);
    Ok(words)
}

/// Parses `raw` against `spec` (option name without dashes, and what it takes).
pub fn parse(raw: &str, spec: &[(&'static str, Takes)]) -> Result<Args, String> {
    if raw.len() > 8192 {
        return Err("the arguments are longer than 8 KiB".into());
    }
    let words = split(raw)?;
    let mut args = Args::default();
    let mut i = 0;
    let is_option = |w: &Word| !w.quoted && w.text.starts_with("--") && w.text.len() > 2;
    // A word that ends an option's value: another option, or an unquoted `--`.
    let ends_value = |w: &Word| is_option(w) || (!w.quoted && w.text == "--");
    while i < words.len() {
        let word = &words[i];
        if !word.quoted && word.text == "--" {
            args.rest = words[i + 1..].iter().map(|w| w.text.clone()).collect();
            break;
        }
        if !is_option(word) {
            args.positional.push(word.text.clone());
            i += 1;
            continue;
        }
        let name = &word.text[2..];
        let Some(&(key, takes)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "unknown option --{}",
                name.chars().take(40).collect::<String>()
            ));
        };
        if args.options.contains_key(key) {
            return Err(format!("--{key} is given twice"));
        }
        i += 1;
        let value = match takes {
            Takes::Nothing => String::new(),
            Takes::Word => {
                let value = words
                    .get(i)
                    .filter(|w| !ends_value(w))
                    .ok_or_else(|| format!("--{key} needs a value"))?;
                i += 1;
                value.text.clone()
            }
            Takes::Text => {
                let mut parts = Vec::new();
                while let Some(w) = words.get(i) {
                    if ends_value(w) {
                        break;
                    }
                    parts.push(w.text.as_str());
                    i += 1;
                }
                if parts.is_empty() {
                    return Err(format!("--{key} needs a value"));
                }
                parts.join(" ")
            }
        };
        args.options.insert(key, value);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, Takes)] = &[
        ("role", Takes::Word),
        ("for", Takes::Word),
        ("reason", Takes::Text),
        ("all", Takes::Nothing),
    ];

    #[test]
    fn free_text_runs_to_the_next_option() {
        let a = parse(
            "web-01 --reason primary is down --role web-ops --for 1h",
            SPEC,
        )
        .unwrap();
        assert_eq!(a.positional, ["web-01"]);
        assert_eq!(a.get("reason"), Some("primary is down"));
        assert_eq!(a.get("role"), Some("web-ops"));
        assert_eq!(a.get("for"), Some("1h"));
    }

    #[test]
    fn quoting_keeps_text_together_and_option_like_text_literal() {
        let a = parse("x --reason \"'--role is odd; (really)'\"", SPEC).unwrap();
        assert_eq!(a.get("reason"), Some("'--role is odd; (really)'"));
        let a = parse("x --reason 'a  b' c", SPEC).unwrap();
        assert_eq!(a.get("reason"), Some("a  b c"));
    }

    #[test]
    fn dashdash_ends_options() {
        let a = parse("db-01 --reason down hard -- systemctl restart pg", SPEC).unwrap();
        assert_eq!(a.get("reason"), Some("down hard"));
        assert_eq!(a.rest, ["systemctl", "restart", "pg"]);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(parse("x --reason", SPEC).is_err());
        assert!(parse("x --role", SPEC).is_err());
        assert!(parse("x --bogus 1", SPEC).is_err());
        assert!(parse("x --all --all", SPEC).is_err());
        assert!(parse("x --reason 'open", SPEC).is_err());
        assert!(parse("x --reason bell\u{7}", SPEC).is_err());
        assert!(parse("x --reason a\u{202e}b", SPEC).is_err());
        assert!(parse(&"x".repeat(9000), SPEC).is_err());
    }
}
