//! Glob patterns over names (`web-*`, `db-0?`), as used by a role's `targets`.
//!
//! Names never contain `/`, so this matcher is simpler than the per-word command globs: `*` is
//! any run of characters and `?` is exactly one.

/// True when `pattern` contains a wildcard, i.e. it names a set rather than one target.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// One piece of a glob pattern. Patterns are tokens rather than text so that a quoted `*` in a
/// command rule can be a literal character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// This character exactly.
    Char(char),
    /// Any run of characters.
    Star,
    /// Exactly one character.
    One,
}

/// Reads a name pattern: `*` and `?` are wildcards, everything else is literal.
pub fn tokens(pattern: &str) -> Vec<Token> {
    pattern
        .chars()
        .map(|c| match c {
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Char(c),
        })
        .collect()
}

/// Matches `name` against `pattern` (`*` any run, `?` one character, everything else literal).
pub fn matches(pattern: &str, name: &str) -> bool {
    matches_tokens(&tokens(pattern), name)
}

/// Matches `text` against a tokenised pattern.
///
/// Iterative with one backtrack point, so it runs in O(len(pattern) × len(text)) at worst and
/// cannot be made to explode by a hostile name or command word.
pub fn matches_tokens(pattern: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names() {
        assert!(matches("web-*", "web-01"));
        assert!(matches("web-*", "web-"));
        assert!(!matches("web-*", "db-01"));
        assert!(matches("db-0?", "db-01"));
        assert!(!matches("db-0?", "db-011"));
        assert!(matches("*", "anything"));
        assert!(matches("*-01", "web-01"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn hostile_names_stay_fast() {
        let name = "a".repeat(4000);
        assert!(!matches("*a*a*a*a*a*a*b", &name));
    }
}
