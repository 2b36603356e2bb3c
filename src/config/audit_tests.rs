//! Tests of `[audit]`: the default and the values read.

use std::path::Path;

use super::{Config, OnFailure};

#[test]
fn audit_on_failure_defaults_to_deny_and_reads_allow() {
    assert_eq!(
        Config::defaults_in(Path::new("/srv/gh")).audit.on_failure,
        OnFailure::Deny
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, "[audit]\non_failure = \"allow\"\n").unwrap();
    assert_eq!(
        Config::load(&path).unwrap().audit.on_failure,
        OnFailure::Allow
    );
    std::fs::write(&path, "[audit]\non_failure = \"ignore\"\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("gatehouse.toml:2:"), "{err}");
}
