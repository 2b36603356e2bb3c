use super::*;

#[test]
fn defaults_need_no_file() {
    let c = Config::defaults_in(Path::new("/srv/gh"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:2222");
    assert_eq!(c.data_dir, Path::new("/srv/gh/data"));
    assert_eq!(c.ca.key, Path::new("/srv/gh/data/keys/user_ca"));
    assert_eq!(c.store, "sqlite:///srv/gh/data/gatehouse.db");
    assert_eq!(c.ca.cert_ttl, Duration::from_secs(120));
    assert_eq!(c.recordings.on_failure, OnFailure::Deny);
    assert_eq!(c.upstream.max_startups, 8);
    assert_eq!(c.upstream.startup_wait, Duration::from_secs(30));
}

#[test]
fn upstream_start_up_slots_are_read_and_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        "[upstream]\nmax_startups = 3\nstartup_wait = \"5s\"\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.upstream.max_startups, 3);
    assert_eq!(c.upstream.startup_wait, Duration::from_secs(5));
    for bad in ["0", "10001", "9223372036854775807"] {
        std::fs::write(&path, format!("[upstream]\nmax_startups = {bad}\n")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("max_startups"), "{bad}: {err}");
    }
}

#[test]
fn unknown_keys_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:1\"\n\n[ca]\nkye = \"x\"\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("gatehouse.toml:4:"), "{err}");
    assert!(err.contains("kye"), "{err}");
}

#[test]
fn relative_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        "data_dir = \"state\"\nstore = \"sqlite://db/g.db\"\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.data_dir, dir.path().join("state"));
    assert_eq!(
        c.store,
        format!("sqlite://{}", dir.path().join("db/g.db").display())
    );
}
