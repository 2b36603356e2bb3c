//! The policy files as written: what serde reads before anything is checked.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::commands;
use crate::policy::ShellMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) user: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub(super) target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    pub(super) role: Vec<Spanned<RawRole>>,
    #[serde(default)]
    pub(super) operator: Vec<Spanned<crate::policy::operators::RawOperator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) groups: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    #[serde(default = "default_port")]
    pub(super) port: u16,
    #[serde(default)]
    pub(super) host_keys: Vec<Spanned<String>>,
    pub(super) host_ca: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
}

fn default_port() -> u16 {
    22
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) members: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) target_labels: BTreeMap<String, String>,
    pub(super) login: Spanned<String>,
    pub(super) max_duration: Option<Spanned<String>>,
    pub(super) approvals: Option<u32>,
    #[serde(default)]
    pub(super) approvers: Vec<Spanned<String>>,
    pub(super) shell: Option<ShellMode>,
    #[serde(default)]
    pub(super) record_input: bool,
    #[serde(default)]
    pub(super) commands: Vec<Spanned<commands::RawCommand>>,
    #[serde(default)]
    pub(super) deny_options: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(super) exec_pty: bool,
    #[serde(default)]
    pub(super) break_glass: bool,
    pub(super) files: Option<Spanned<RawFiles>>,
    #[serde(default)]
    pub(super) forward: Vec<Spanned<String>>,
}

/// `files = { read = […], write = […], hash = … }` on a role.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFiles {
    #[serde(default)]
    pub(super) read: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) write: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) hash: bool,
}
