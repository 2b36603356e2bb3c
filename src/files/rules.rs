//! A role's file rules (`files = { read = […], write = […], hash = … }`): which paths on a
//! target may be read and which written over SFTP.
//!
//! A rule is an absolute path pattern matched segment by segment against a path that has
//! already been normalised and resolved on the target: `*` and `?` stay inside one segment
//! (they never match `/`), and a segment that is exactly `**` matches zero or more whole
//! segments, so `/var/log/nginx/**` covers the directory and everything under it while
//! `/srv/upload/*` covers only the entries directly in `/srv/upload`. Rules never contain `.`
//! or `..` segments and paths never do either, so no rule can be widened by a hostile path.

use crate::policy::glob::{self, Token};

/// The most patterns one list may hold, and the longest pattern, checked at load.
const MAX_PATTERNS: usize = 256;
const MAX_PATTERN_LEN: usize = 1024;

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnyDepth,
    /// A glob over one segment.
    Glob(Vec<Token>),
}

/// An absolute path pattern as written in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
}

/// Why a pattern in a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Patterns are absolute.
    #[error("path pattern {0:?} must start with /")]
    Relative(String),
    /// `.` and `..` are never part of a checked path, so a rule naming them matches nothing.
    #[error("path pattern {0:?} has a . or .. segment; write the path it means")]
    DotSegment(String),
    /// `//` or a trailing `/`.
    #[error("path pattern {0:?} has an empty segment (// or a trailing /)")]
    EmptySegment(String),
    /// `**` is a whole segment or nothing.
    #[error("path pattern {0:?}: ** must be a whole segment (/**/ or a trailing /**)")]
    PartialAnyDepth(String),
    /// Control characters have no place in a rule.
    #[error("path pattern {0:?} contains a control character")]
    Control(String),
    /// Longer than the limit.
    #[error("path pattern is longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
}

impl PathPattern {
    /// Reads a pattern as written in a policy.
    pub fn parse(source: &str) -> Result<PathPattern, PatternError> {
        let owned = || source.to_owned();
        if source.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if source.chars().any(char::is_control) {
            return Err(PatternError::Control(owned()));
        }
        let Some(rest) = source.strip_prefix('/') else {
            return Err(PatternError::Relative(owned()));
        };
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for part in rest.split('/') {
                segments.push(match part {
                    "" => return Err(PatternError::EmptySegment(owned())),
                    "." | ".." => return Err(PatternError::DotSegment(owned())),
                    "**" => Segment::AnyDepth,
                    p if p.contains("**") => return Err(PatternError::PartialAnyDepth(owned())),
                    p => Segment::Glob(glob::tokens(p)),
                });
            }
        }
        Ok(PathPattern {
            source: source.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the pattern covers every path (`/**`).
    pub fn is_everything(&self) -> bool {
        self.segments == [Segment::AnyDepth]
    }

    /// Whether the normalised absolute `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(parts) = segments_of(path) else {
            return false;
        };
        match_segments(&self.segments, &parts)
    }

    /// Whether `path` is a directory above something the pattern may match (or the pattern's
    /// own fixed part): its metadata may be read so that a client can walk down to the allowed
    /// tree, though its listing stays closed.
    pub fn leads_to(&self, path: &str) -> bool {
        let Some(parts) = segments_of(path) else {
            return false;
        };
        for (i, part) in parts.iter().enumerate() {
            match self.segments.get(i) {
                Some(Segment::AnyDepth) => return true,
                Some(Segment::Glob(tokens)) if glob::matches_tokens(tokens, part) => {}
                _ => return false,
            }
        }
        true
    }
}

/// The segments of a normalised absolute path, or `None` for anything else (a relative path,
/// an empty, `.` or `..` segment): such a path matches nothing.
fn segments_of(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return None;
    }
    Some(parts)
}

/// Matches path segments against pattern segments, `**` absorbing any run of whole segments.
/// Iterative with one backtrack point (the last `**`), like the name globs, so a hostile path
/// cannot make it explode.
fn match_segments(pattern: &[Segment], path: &[&str]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < path.len() {
        match pattern.get(p) {
            Some(Segment::AnyDepth) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Segment::Glob(tokens)) if glob::matches_tokens(tokens, path[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|s| *s == Segment::AnyDepth)
}

/// What an SFTP request does with a path, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open for reading, list a directory, read a link.
    Read,
    /// Open for writing, create, remove, rename, change attributes.
    Write,
    /// Read metadata only (stat): allowed on what may be read or written, and on the
    /// directories that lead there.
    Stat,
}

impl Access {
    /// The word used in denials and the transcript.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Stat => "stat",
        }
    }
}

/// A role's file rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRules {
    /// Paths that may be read and listed.
    pub read: Vec<PathPattern>,
    /// Paths that may be written, created, removed or renamed.
    pub write: Vec<PathPattern>,
    /// Whether each file transferred gets a SHA-256 in the transcript.
    pub hash: bool,
}

impl FileRules {
    /// Reads the patterns of one list (`read` or `write`), with an error for each bad one.
    pub fn parse_list(sources: &[String]) -> (Vec<PathPattern>, Vec<(usize, PatternError)>) {
        let mut patterns = Vec::new();
        let mut errors = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            match PathPattern::parse(source) {
                Ok(p) if i < MAX_PATTERNS => patterns.push(p),
                Ok(_) => errors.push((i, PatternError::TooLong)),
                Err(e) => errors.push((i, e)),
            }
        }
        (patterns, errors)
    }

    /// Whether `access` to the resolved `path` is allowed.
    pub fn allows(&self, access: Access, path: &str) -> bool {
        let any = |list: &[PathPattern]| list.iter().any(|p| p.matches(path));
        match access {
            Access::Read => any(&self.read),
            Access::Write => any(&self.write),
            Access::Stat => {
                any(&self.read)
                    || any(&self.write)
                    || self
                        .read
                        .iter()
                        .chain(&self.write)
                        .any(|p| p.leads_to(path))
            }
        }
    }

    /// Whether the rules allow anything at all.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(read: &[&str], write: &[&str]) -> FileRules {
        let list = |l: &[&str]| l.iter().map(|p| PathPattern::parse(p).unwrap()).collect();
        FileRules {
            read: list(read),
            write: list(write),
            hash: false,
        }
    }

    #[test]
    fn a_double_star_covers_a_tree_and_a_star_one_level() {
        let r = rules(&["/var/log/nginx/**"], &["/srv/upload/*"]);
        for ok in [
            "/var/log/nginx",
            "/var/log/nginx/access.log",
            "/var/log/nginx/old/2024/access.log.gz",
        ] {
            assert!(r.allows(Access::Read, ok), "{ok}");
        }
        for no in [
            "/var/log",
            "/var/log/nginxx/access.log",
            "/var/log/nginx-old/access.log",
            "/etc/passwd",
            "/",
        ] {
            assert!(!r.allows(Access::Read, no), "{no}");
        }
        assert!(r.allows(Access::Write, "/srv/upload/a.tar"));
        assert!(!r.allows(Access::Write, "/srv/upload"));
        assert!(!r.allows(Access::Write, "/srv/upload/sub/a.tar"));
        assert!(
            !r.allows(Access::Read, "/srv/upload/a.tar"),
            "write is not read"
        );
        assert!(
            !r.allows(Access::Write, "/var/log/nginx/a"),
            "read is not write"
        );
    }

    #[test]
    fn hostile_paths_match_nothing() {
        let r = rules(&["/var/log/nginx/**", "/home/*/logs/*"], &["/srv/upload/*"]);
        for hostile in [
            "/var/log/nginx/../../../etc/shadow",
            "/var/log/nginx/./x",
            "/var/log/nginx//x",
            "var/log/nginx/x",
            "",
            "/srv/upload/../../etc/cron.d/x",
            "/srv/upload/.",
            "/srv/upload/..",
            "/home/../etc/logs/x",
        ] {
            assert!(!r.allows(Access::Read, hostile), "{hostile:?}");
            assert!(!r.allows(Access::Write, hostile), "{hostile:?}");
            assert!(!r.allows(Access::Stat, hostile), "{hostile:?}");
        }
        // A star does not cross a slash.
        assert!(r.allows(Access::Read, "/home/bob/logs/a"));
        assert!(!r.allows(Access::Read, "/home/bob/x/logs/a"));
        // Dot files are ordinary names.
        assert!(r.allows(Access::Read, "/var/log/nginx/.hidden"));
    }

    #[test]
    fn directories_leading_to_a_rule_may_be_stat_ed_but_not_read() {
        let r = rules(&["/var/log/nginx/**"], &["/srv/upload/*", "/home/*/in/*"]);
        for up in [
            "/",
            "/var",
            "/var/log",
            "/srv",
            "/srv/upload",
            "/home/bob/in",
        ] {
            assert!(r.allows(Access::Stat, up), "{up}");
            assert!(!r.allows(Access::Read, up), "{up}");
        }
        assert!(r.allows(Access::Stat, "/srv/upload/new.txt"));
        assert!(!r.allows(Access::Stat, "/etc"));
        assert!(!r.allows(Access::Stat, "/var/lib"));
        assert!(!r.allows(Access::Stat, "/srv/other"));
        assert!(!r.allows(Access::Stat, "/srv/upload/a/b"));
    }

    #[test]
    fn patterns_are_checked_when_loaded() {
        assert!(PathPattern::parse("/").unwrap().matches("/"));
        assert!(PathPattern::parse("/**").unwrap().is_everything());
        for (bad, want) in [
            ("var/log", PatternError::Relative("var/log".into())),
            (
                "/var/../etc",
                PatternError::DotSegment("/var/../etc".into()),
            ),
            ("/var/./log", PatternError::DotSegment("/var/./log".into())),
            ("/var//log", PatternError::EmptySegment("/var//log".into())),
            ("/var/log/", PatternError::EmptySegment("/var/log/".into())),
            (
                "/var/log**",
                PatternError::PartialAnyDepth("/var/log**".into()),
            ),
            ("/var/\nlog", PatternError::Control("/var/\nlog".into())),
        ] {
            assert_eq!(PathPattern::parse(bad).unwrap_err(), want, "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN));
        assert_eq!(
            PathPattern::parse(&long).unwrap_err(),
            PatternError::TooLong
        );
    }

    #[test]
    fn many_double_stars_against_a_deep_path_stay_fast() {
        let pattern = PathPattern::parse(&format!("{}/x", "/**".repeat(40))).unwrap();
        let deep = format!("{}/y", "/a".repeat(2000));
        let started = std::time::Instant::now();
        assert!(!pattern.matches(&deep));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
