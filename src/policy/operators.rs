//! `[[operator]]`: which Unix account on the bastion host acts as which policy user at the
//! `gatehouse` command line.
//!
//! ```toml
//! [[operator]]
//! unix = "erin"   # the account, exactly as the operating system names it
//! user = "erin"   # a [[user]] of the policy
//! ```
//!
//! A mapped operator is that user for every separation-of-duties rule: they cannot approve a
//! request they made, and count once towards a quorum whether they approve over SSH or at the
//! command line. Each account is mapped at most once; two accounts may map to one person.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Policy, PolicyError};
use crate::config::line_of;

/// One `[[operator]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    unix: Spanned<String>,
    user: Spanned<String>,
}

/// An `[[operator]]` entry with the lines of its fields, for cross-reference errors.
pub(super) struct OperatorEntry {
    file: PathBuf,
    unix: String,
    unix_line: usize,
    user: String,
    user_line: usize,
}

/// Checks one entry's names; `None` (with errors pushed) if either is not valid.
pub(super) fn build(
    file: &Path,
    text: &str,
    raw: RawOperator,
    errors: &mut Vec<PolicyError>,
) -> Option<OperatorEntry> {
    let before = errors.len();
    let unix_line = line_of(text, raw.unix.span().start);
    let user_line = line_of(text, raw.user.span().start);
    let err = |line, message| PolicyError {
        file: file.to_owned(),
        line,
        message,
    };
    if !super::valid_unix_account(raw.unix.get_ref()) {
        errors.push(err(
            unix_line,
            format!(
                "unix account {:?} is not valid (it must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,31}})",
                raw.unix.get_ref()
            ),
        ));
    }
    if !super::valid_user_name(raw.user.get_ref()) {
        errors.push(err(
            user_line,
            format!(
                "user name {:?} is not valid (it must match [a-z_][a-z0-9_.-]{{0,31}})",
                raw.user.get_ref()
            ),
        ));
    }
    (errors.len() == before).then(|| OperatorEntry {
        file: file.to_owned(),
        unix: raw.unix.into_inner(),
        unix_line,
        user: raw.user.into_inner(),
        user_line,
    })
}

/// Checks entries against the users and each other (each account mapped once, to a user that
/// exists) and adds them to the policy.
pub(super) fn link(
    policy: &mut Policy,
    entries: Vec<OperatorEntry>,
    errors: &mut Vec<PolicyError>,
) {
    let mut seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
    for e in entries {
        if let Some((file, line)) = seen.get(&e.unix) {
            errors.push(PolicyError {
                file: e.file.clone(),
                line: e.unix_line,
                message: format!(
                    "duplicate operator {:?} (first mapped at {}:{line})",
                    e.unix,
                    file.display()
                ),
            });
            continue;
        }
        seen.insert(e.unix.clone(), (e.file.clone(), e.unix_line));
        if policy.user(&e.user).is_none() {
            errors.push(PolicyError {
                file: e.file.clone(),
                line: e.user_line,
                message: format!(
                    "operator {:?} is mapped to user {:?}, which is not defined",
                    e.unix, e.user
                ),
            });
            continue;
        }
        policy.operators.insert(e.unix, e.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::LoadError;

    /// The errors of loading one file, as `line: message`.
    fn errors_of(text: &str) -> Vec<String> {
        match crate::policy::load_sources(&[(Path::new("p.toml"), text)]) {
            Ok(_) => Vec::new(),
            Err(LoadError(errors)) => errors
                .iter()
                .map(|e| format!("{}: {}", e.line, e.message))
                .collect(),
        }
    }

    const USERS: &str = "[[user]]\nname = \"erin\"\ngroups = [\"leads\"]\n\n[[user]]\nname = \"bob\"\ngroups = [\"leads\"]\n\n";

    #[test]
    fn an_operator_maps_an_account_to_a_user() {
        let text = format!(
            "{USERS}[[operator]]\nunix = \"erin\"\nuser = \"erin\"\n\n[[operator]]\nunix = \"Ops_1\"\nuser = \"bob\"\n"
        );
        let policy = crate::policy::load_sources(&[(Path::new("p.toml"), &text)]).unwrap();
        assert_eq!(policy.operator("erin").unwrap().name, "erin");
        assert_eq!(policy.operator("Ops_1").unwrap().name, "bob");
        assert!(
            policy.operator("ops_1").is_none(),
            "accounts compare exactly"
        );
        assert!(policy.operator("Erin").is_none());
        assert!(policy.operator("root").is_none());
    }

    #[test]
    fn unknown_users_duplicates_and_bad_names_are_named_by_line() {
        let text = format!(
            "{USERS}[[operator]]\nunix = \"erin\"\nuser = \"nobody\"\n\n\
             [[operator]]\nunix = \"bob\"\nuser = \"bob\"\n\n\
             [[operator]]\nunix = \"bob\"\nuser = \"erin\"\n\n\
             [[operator]]\nunix = \"a b\"\nuser = \"Erin\"\n"
        );
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with(
                "11: operator \"erin\" is mapped to user \"nobody\", which is not defined"
            ),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with("18: duplicate operator \"bob\" (first mapped at p.toml:14)"),
            "{errors:#?}"
        );
        assert!(
            errors[2].starts_with("22: unix account \"a b\" is not valid"),
            "{errors:#?}"
        );
        assert!(
            errors[3].starts_with("23: user name \"Erin\" is not valid"),
            "{errors:#?}"
        );
        let unknown = errors_of(&format!(
            "{USERS}[[operator]]\nunix = \"erin\"\nuser = \"erin\"\ngroup = \"x\"\n"
        ));
        assert_eq!(
            unknown.len(),
            1,
            "an unknown field is an error: {unknown:?}"
        );
    }
}
