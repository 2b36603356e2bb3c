//! Paths as an SFTP client sends them, and what they name.
//!
//! Over SFTP the bastion shows one tree: its root lists the targets, and the first segment of
//! a path names the target (`/web-01/var/log/nginx/access.log` is `/var/log/nginx/access.log` on
//! `web-01`; `/web-01:web-ops/…` names the role too). A path is normalised here, before anything
//! else looks at it: relative paths start at the root, repeated slashes and `.` segments go,
//! `..` removes the segment before it, and a `..` that would climb above the root, a path that
//! is too long, or one with a control character is refused. What reaches the target is this
//! normalised path (and then what the target resolves it to), never the client's text.

/// Longest path accepted from a client, in bytes.
pub const MAX_PATH: usize = 4096;

/// What a client's path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The bastion's root, which lists the targets.
    Root,
    /// A path on a target.
    Target(TargetPath),
}

/// A normalised absolute path on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath {
    /// The target's name as the first segment gave it.
    pub target: String,
    /// The role named with `TARGET:ROLE`, if any.
    pub role: Option<String>,
    /// The absolute path on the target: `/` alone, or `/seg/…` with no empty, `.` or `..`
    /// segment.
    pub path: String,
}

impl TargetPath {
    /// The first segment as the client sees it (`web-01` or `web-01:web-ops`).
    pub fn prefix(&self) -> String {
        match &self.role {
            Some(role) => format!("{}:{role}", self.target),
            None => self.target.clone(),
        }
    }

    /// The path as the client sees it: the prefix, then the path on the target.
    pub fn visible(&self) -> String {
        visible(&self.prefix(), &self.path)
    }
}

/// The client-visible path for `path` on the target whose first segment is `prefix`.
pub fn visible(prefix: &str, path: &str) -> String {
    if path == "/" {
        format!("/{prefix}")
    } else {
        format!("/{prefix}{path}")
    }
}

/// Why a client's path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `..` above the root.
    #[error("the path climbs above the root with ..")]
    AboveRoot,
    /// Longer than [`MAX_PATH`].
    #[error("the path is longer than {MAX_PATH} bytes")]
    TooLong,
    /// A control character (C0, DEL or C1) anywhere in the path.
    #[error("the path contains a control character")]
    Control,
    /// The first segment is not a target name (or `TARGET:ROLE`).
    #[error("{0:?} is not a target; the root lists the targets you hold a file grant for")]
    NotATarget(String),
}

/// Normalises a client's path and says what it names.
pub fn locate(raw: &str) -> Result<Location, PathError> {
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if raw.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            p => parts.push(p),
        }
    }
    let Some((&first, rest)) = parts.split_first() else {
        return Ok(Location::Root);
    };
    let (target, role) = match first.split_once(':') {
        Some((t, r)) => (t, Some(r)),
        None => (first, None),
    };
    let role_ok = role.is_none_or(crate::policy::valid_role_name);
    if !crate::policy::valid_target_name(target) || !role_ok {
        return Err(PathError::NotATarget(first.to_owned()));
    }
    let path = if rest.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", rest.join("/"))
    };
    Ok(Location::Target(TargetPath {
        target: target.to_owned(),
        role: role.map(str::to_owned),
        path,
    }))
}

/// Whether `path`, as a target answered it, is absolute and normalised; anything else is not
/// trusted to mean what a rule would match.
pub fn is_normal(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some("") => true,
        Some(rest) => rest.split('/').all(|p| !matches!(p, "" | "." | "..")),
        None => false,
    }
}

/// The parent directory and the last segment of a normalised absolute path; `None` for `/`.
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let at = path.rfind('/')?;
    let name = &path[at + 1..];
    if name.is_empty() {
        return None;
    }
    Some((if at == 0 { "/" } else { &path[..at] }, name))
}

/// `name` inside the directory `dir` (both normalised).
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(target: &str, path: &str) -> Location {
        Location::Target(TargetPath {
            target: target.into(),
            role: None,
            path: path.into(),
        })
    }

    #[test]
    fn paths_are_normalised_before_anything_looks_at_them() {
        assert_eq!(locate("/").unwrap(), Location::Root);
        assert_eq!(locate("").unwrap(), Location::Root);
        assert_eq!(locate(".").unwrap(), Location::Root);
        assert_eq!(locate("//./").unwrap(), Location::Root);
        assert_eq!(locate("/web-01").unwrap(), on("web-01", "/"));
        assert_eq!(
            locate("/web-01/var/log/nginx/access.log").unwrap(),
            on("web-01", "/var/log/nginx/access.log")
        );
        assert_eq!(
            locate("web-01//var/./log///nginx/").unwrap(),
            on("web-01", "/var/log/nginx")
        );
        assert_eq!(
            locate("/web-01/var/log/nginx/../../../etc/passwd").unwrap(),
            on("web-01", "/etc/passwd")
        );
        assert_eq!(locate("/web-01/..").unwrap(), Location::Root);
        assert_eq!(
            locate("/web-01/../db-01/etc").unwrap(),
            on("db-01", "/etc"),
            "another target, checked as that target"
        );
        let Location::Target(t) = locate("/web-01:web-ops/var/log").unwrap() else {
            panic!()
        };
        assert_eq!(t.role.as_deref(), Some("web-ops"));
        assert_eq!(t.visible(), "/web-01:web-ops/var/log");
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(locate("/.."), Err(PathError::AboveRoot));
        assert_eq!(locate("/web-01/../.."), Err(PathError::AboveRoot));
        assert_eq!(
            locate("/web-01/../../etc/passwd"),
            Err(PathError::AboveRoot)
        );
        assert_eq!(locate("/web-01/a\0b"), Err(PathError::Control));
        assert_eq!(locate("/web-01/a\nb"), Err(PathError::Control));
        assert_eq!(locate("/web-01/a\u{85}b"), Err(PathError::Control));
        assert_eq!(locate("/web-01/a\u{7f}"), Err(PathError::Control));
        assert_eq!(
            locate(&format!("/web-01/{}", "a".repeat(MAX_PATH))),
            Err(PathError::TooLong)
        );
        for bad in [
            "/Web-01/x",
            "/web_01",
            "/*/etc",
            "/web-01:/x",
            "/web-01:Ops/x",
            "/~",
        ] {
            assert!(
                matches!(locate(bad), Err(PathError::NotATarget(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_normalised_answers_are_trusted() {
        assert!(is_normal("/"));
        assert!(is_normal("/var/log"));
        for bad in ["", "var", "/var/", "//var", "/var/../etc", "/./var"] {
            assert!(!is_normal(bad), "{bad:?}");
        }
        assert_eq!(split_last("/var/log"), Some(("/var", "log")));
        assert_eq!(split_last("/var"), Some(("/", "var")));
        assert_eq!(split_last("/"), None);
        assert_eq!(join("/", "var"), "/var");
        assert_eq!(join("/var", "log"), "/var/log");
        assert_eq!(visible("web-01", "/"), "/web-01");
        assert_eq!(visible("web-01", "/etc"), "/web-01/etc");
    }
}
