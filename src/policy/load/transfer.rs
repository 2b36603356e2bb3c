//! A role's `files` and `forward` keys as written, checked and built, with an error at the line
//! of each bad pattern or destination.

use std::path::Path;

use toml::Spanned;

use super::raw::RawFiles;
use super::{At, PolicyError};
use crate::files::FileRules;
use crate::forward::{Destination, Host};
use crate::policy::{Policy, Role};

/// Builds `files = { read = […], write = […], hash = … }`.
pub(super) fn files(
    at: At,
    raw: Option<&Spanned<RawFiles>>,
    errors: &mut Vec<PolicyError>,
) -> Option<FileRules> {
    let raw = raw?;
    let files = raw.get_ref();
    if files.read.is_empty() && files.write.is_empty() {
        errors.push(at.err(
            raw.span().start,
            "files allows nothing: give read and/or write path patterns",
        ));
    }
    let mut list = |key: &str, patterns: &[Spanned<String>]| {
        let sources: Vec<String> = patterns.iter().map(|p| p.get_ref().clone()).collect();
        let (parsed, bad) = FileRules::parse_list(&sources);
        for (i, e) in bad {
            errors.push(at.err(patterns[i].span().start, format!("files.{key}: {e}")));
        }
        parsed
    };
    let read = list("read", &files.read);
    let write = list("write", &files.write);
    Some(FileRules {
        read,
        write,
        hash: files.hash,
    })
}

/// Builds `forward = ["HOST:PORT", …]`.
pub(super) fn forward(
    at: At,
    raw: &[Spanned<String>],
    errors: &mut Vec<PolicyError>,
) -> Vec<Destination> {
    let mut out: Vec<Destination> = Vec::new();
    for entry in raw {
        match Destination::parse(entry.get_ref()) {
            Ok(d) if out.contains(&d) => errors.push(at.err(
                entry.span().start,
                format!("forward destination {:?} is listed twice", entry.get_ref()),
            )),
            Ok(d) => out.push(d),
            Err(e) => errors.push(at.err(entry.span().start, e.to_string())),
        }
    }
    out
}

/// The checks of `files` and `forward` that need the whole policy: a bare name in `forward`
/// must be a target, and rules that open everything are worth a warning.
pub(super) fn link(
    policy: &mut Policy,
    role: &Role,
    file: &Path,
    line: usize,
    forward_lines: &[usize],
    errors: &mut Vec<PolicyError>,
) {
    for (dest, &at) in role.forward.iter().zip(forward_lines) {
        if let Host::Name(name) = &dest.host
            && dest.host.must_be_target()
            && policy.target(name).is_none()
        {
            errors.push(PolicyError {
                file: file.to_owned(),
                line: at,
                message: format!(
                    "role {:?}: forward destination \"{dest}\" names no target (a host name needs a dot; or use an IP address)",
                    role.name
                ),
            });
        }
    }
    let Some(files) = &role.files else {
        return;
    };
    for (key, list) in [("read", &files.read), ("write", &files.write)] {
        if list.iter().any(|p| p.is_everything()) {
            policy.warnings.push(format!(
                "{}:{line}: role {:?}: files.{key} = \"/**\" covers the whole file system of its targets",
                file.display(),
                role.name
            ));
        }
    }
}
