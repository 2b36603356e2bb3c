//! Evidence end to end: `explain` against the real denials, and the access report over a real
//! history (real `ssh` sessions through a real `sshd`, requests, approvals, refusals, denials,
//! break-glass, a revocation, an expiry), checked number by number in JSON, on SQLite and on
//! PostgreSQL.

#[path = "common/chromium.rs"]
mod chromium;
mod common;

/// What the history is checked against: the store as the test reads it.
#[path = "evidence/expect.rs"]
mod expect;
/// `explain` in the words of the real denial.
#[path = "evidence/explain.rs"]
mod explain;
/// The report over a history made with real sessions.
#[path = "evidence/history.rs"]
mod history;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs `gatehouse ARGS… --config … [-- COMMAND…]` on `gh`'s deployment.
pub fn gatehouse(gh: &Gatehouse, args: &[&str], command: &[&str]) -> Output {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(args)
        .arg("--config")
        .arg(gh.dir.join("gatehouse.toml"))
        .env("RUST_LOG", "warn");
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    run(cmd, b"", Duration::from_secs(120))
}

/// The `gatehouse: denied: …` line of a refusal, without the prefix, and its hint.
pub fn denial(out: &Output) -> (String, Option<String>) {
    assert_eq!(out.code(), 126, "not a denial: {}{}", out.out(), out.err());
    let err = out.err();
    let mut lines = err.lines();
    let reason = lines
        .next()
        .and_then(|l| l.strip_prefix("gatehouse: denied: "))
        .unwrap_or_else(|| panic!("no denial line in {err:?}"))
        .to_owned();
    let hint = lines
        .next()
        .and_then(|l| l.strip_prefix("gatehouse: hint: "))
        .map(str::to_owned);
    (reason, hint)
}

/// Parses JSON printed by a command.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.out())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", out.out(), out.err()))
}
