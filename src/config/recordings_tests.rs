//! Tests of `[recordings]`: the stall timeout's default, the values read and its bounds.

use std::path::Path;
use std::time::Duration;

use super::Config;

#[test]
fn recordings_stall_timeout_defaults_to_five_seconds() {
    let c = Config::defaults_in(Path::new("/srv/gh"));
    assert_eq!(c.recordings.stall_timeout, Duration::from_secs(5));
}

#[test]
fn recordings_stall_timeout_is_read_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, "[recordings]\nstall_timeout = \"2s\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.recordings.stall_timeout, Duration::from_secs(2));
    for bad in ["0s", "11m", "1h", "soon"] {
        std::fs::write(&path, format!("[recordings]\nstall_timeout = \"{bad}\"\n")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("recordings.stall_timeout"), "{bad}: {err}");
    }
}
