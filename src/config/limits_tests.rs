//! Tests of `[limits]` and `[penalties]`: defaults, values read, values refused, and the
//! deployment template.

use std::path::Path;
use std::time::Duration;

use super::Config;

#[test]
fn limits_and_penalties_have_defaults_and_are_checked() {
    let c = Config::defaults_in(Path::new("/srv/gh"));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.limits.connections_per_user, 100);
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(30));
    assert!(c.penalties.enabled);
    assert_eq!(c.penalties.min, Duration::from_secs(15));
    assert_eq!(c.penalties.noauth, Duration::from_secs(1));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        "[limits]\nidle_timeout = \"90s\"\nconnections_per_user = 3\nshutdown_grace = \"1s\"\n\n[penalties]\nenabled = false\nexempt = [\"10.0.0.0/8\", \"2001:db8::1\"]\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.limits.connections_per_user, 3);
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(1));
    assert!(!c.penalties.enabled);
    assert_eq!(c.penalties.exempt.len(), 2);
    for (bad, key) in [
        ("[limits]\nidle_timeout = \"0s\"\n", "idle_timeout"),
        (
            "[limits]\nconnections_per_user = 0\n",
            "connections_per_user",
        ),
        ("[penalties]\nmin = \"20m\"\n", "penalties.min"),
        (
            "[penalties]\nexempt = [\"10.0.0.0/40\"]\n",
            "penalties.exempt",
        ),
        ("[penalties]\nmax_sources = 0\n", "max_sources"),
        ("[penalties]\nnoauth = \"soon\"\n", "penalties.noauth"),
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains(key), "{bad}: {err}");
    }
}

#[test]
fn the_deployment_template_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, include_str!("../../deploy/gatehouse.toml")).unwrap();
    let c = Config::load(&path).unwrap();
    let defaults = Config::defaults_in(dir.path());
    assert_eq!(c.limits.idle_timeout, defaults.limits.idle_timeout);
    assert_eq!(
        c.limits.connections_per_user,
        defaults.limits.connections_per_user
    );
    assert_eq!(c.penalties.max, defaults.penalties.max);
}
