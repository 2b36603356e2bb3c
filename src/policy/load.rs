//! Reading `policies/*.toml` into a [`Policy`], with every error tied to a file and line.
//!
//! Loading is all-or-nothing: all files are read, every problem is collected (not just the first),
//! and only a policy without errors is returned.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Policy;
use crate::config::line_of;
use build::{build_role, build_target, build_user};
use link::link;
use raw::RawFile;

mod build;
mod commands;
mod link;
mod raw;
#[cfg(test)]
mod tests;
mod transfer;

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, for the operator.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why the policy did not load: every problem found, in file and line order.
#[derive(Debug)]
pub struct LoadError(pub Vec<PolicyError>);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Where a value was written, for messages.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
    text: &'a str,
}

impl At<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_owned(),
            line: line_of(self.text, offset),
            message: message.into(),
        }
    }
}

/// A user, target or role with the place it was defined.
struct Placed<T> {
    file: PathBuf,
    line: usize,
    value: T,
}

/// The lines on which a role names groups and targets, for cross-reference errors.
#[derive(Default)]
struct RoleRefs {
    groups: Vec<(String, usize)>,
    targets: Vec<(String, usize)>,
    /// The line of each command rule, in order.
    commands: Vec<usize>,
    /// The line of each `forward` entry, in order.
    forward: Vec<usize>,
}

/// Loads every `*.toml` file in `dir` (sorted by name) into one policy.
pub fn load_dir(dir: &Path) -> Result<Policy, LoadError> {
    load_dir_with_groups(dir, &BTreeSet::new())
}

/// [`load_dir`], where roles may also name `outside_groups`: groups whose members come from
/// elsewhere (the directory), so a role for them is not an error while no policy user is in them.
pub fn load_dir_with_groups(
    dir: &Path,
    outside_groups: &BTreeSet<String>,
) -> Result<Policy, LoadError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            return Err(LoadError(vec![PolicyError {
                file: dir.to_owned(),
                line: 0,
                message: format!("cannot read the policy directory: {e}"),
            }]));
        }
    };
    files.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push((file, text)),
            Err(e) => errors.push(PolicyError {
                file,
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError(errors));
    }
    let borrowed: Vec<(&Path, &str)> = sources
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    load_sources_with_groups(&borrowed, outside_groups)
}

/// Loads policy from in-memory (file name, text) pairs: the whole of [`load_dir`] but the reading.
pub fn load_sources(sources: &[(&Path, &str)]) -> Result<Policy, LoadError> {
    load_sources_with_groups(sources, &BTreeSet::new())
}

/// [`load_sources`] with groups from outside the policy (see [`load_dir_with_groups`]).
pub fn load_sources_with_groups(
    sources: &[(&Path, &str)],
    outside_groups: &BTreeSet<String>,
) -> Result<Policy, LoadError> {
    let mut errors = Vec::new();
    let mut users = Vec::new();
    let mut targets = Vec::new();
    let mut roles = Vec::new();
    let mut operators = Vec::new();
    for &(file, text) in sources {
        let at = At { file, text };
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(at.err(e.span().map(|s| s.start).unwrap_or(0), e.message().trim()));
                continue;
            }
        };
        for u in raw.user {
            let line = line_of(text, u.span().start);
            if let Some(user) = build_user(at, u.into_inner(), &mut errors) {
                users.push(Placed {
                    file: file.to_owned(),
                    line,
                    value: user,
                });
            }
        }
        for t in raw.target {
            let line = line_of(text, t.span().start);
            if let Some(target) = build_target(at, t.into_inner(), &mut errors) {
                targets.push(Placed {
                    file: file.to_owned(),
                    line,
                    value: target,
                });
            }
        }
        for r in raw.role {
            let line = line_of(text, r.span().start);
            let raw_role = r.into_inner();
            let refs = RoleRefs {
                groups: raw_role
                    .members
                    .iter()
                    .chain(&raw_role.approvers)
                    .map(|g| (g.get_ref().clone(), line_of(text, g.span().start)))
                    .collect(),
                targets: raw_role
                    .targets
                    .iter()
                    .map(|t| (t.get_ref().clone(), line_of(text, t.span().start)))
                    .collect(),
                commands: raw_role
                    .commands
                    .iter()
                    .map(|c| line_of(text, c.span().start))
                    .collect(),
                forward: raw_role
                    .forward
                    .iter()
                    .map(|f| line_of(text, f.span().start))
                    .collect(),
            };
            if let Some(role) = build_role(at, raw_role, &mut errors) {
                roles.push((
                    Placed {
                        file: file.to_owned(),
                        line,
                        value: role,
                    },
                    refs,
                ));
            }
        }
        for o in raw.operator {
            if let Some(op) = super::operators::build(file, text, o.into_inner(), &mut errors) {
                operators.push(op);
            }
        }
    }
    let mut policy = link(users, targets, roles, outside_groups, &mut errors);
    super::operators::link(&mut policy, operators, &mut errors);
    if errors.is_empty() {
        Ok(policy)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(LoadError(errors))
    }
}
