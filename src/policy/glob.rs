//! Glob patterns over names (`web-*`, `db-0?`), as used by a role's `targets`.
//!
//! Names never contain `/`, so this matcher is simpler than the per-word command globs: `*` is
//! any run of characters and `?` is exactly one.

/// True when `pattern` contains a wildcard, i.e. it names a set rather than one target.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Matches `name` against `pattern` (`*` any run, `?` one character, everything else literal).
///
/// Iterative with one backtrack point, so it runs in O(len(pattern) × len(name)) at worst and
/// cannot be made to explode by a hostile name.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
