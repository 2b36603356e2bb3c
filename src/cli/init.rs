//! `gatehouse init [DIR]`: a ready-to-edit deployment in one step.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::keys;

/// The config written by `init`: every key with its default, commented.
const CONFIG_TEMPLATE: &str = include_str!("../../deploy/gatehouse.toml");

/// Sample policies written by `init` when the directory has none.
const SAMPLE_POLICIES: &[(&str, &str)] = &[
    ("users.toml", include_str!("../../policies/users.toml")),
    ("targets.toml", include_str!("../../policies/targets.toml")),
    ("roles.toml", include_str!("../../policies/roles.toml")),
];

/// Creates the config, directories, keys and sample policies in `dir`; never overwrites a file.
pub fn run(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    let config_path = dir.join(DEFAULT_CONFIG_FILE);
    write_new(&config_path, CONFIG_TEMPLATE)?;
    let config = Config::load(&config_path)?;
    for sub in [&config.policies, &config.data_dir, &config.recordings.dir] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(sub)?;
    }
    let has_policies = std::fs::read_dir(&config.policies)?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "toml"));
    if !has_policies {
        for (name, text) in SAMPLE_POLICIES {
            write_new(&config.policies.join(name), text)?;
        }
    }
    let (ca, _) = keys::load_or_create(&config.ca.key, "gatehouse-user-ca")?;
    keys::load_or_create(&config.host_key, "gatehouse-host")?;
    // The web console's certificate, so turning on `[http] listen` needs no other step; the
    // fingerprint is what a browser's warning about a self-signed certificate should show.
    let web_certificate = match &config.http.tls {
        Some(files) => Some(crate::http::tls::load_or_create(files)?.0.fingerprint()),
        None => None,
    };
    println!("Gatehouse is set up in {}.", dir.display());
    println!();
    println!("Next:");
    println!(
        "  1. edit {}/*.toml (users and their keys, targets and their host keys, roles)",
        config.policies.display()
    );
    println!("  2. gatehouse check --config {}", config_path.display());
    println!(
        "  3. on each target, trust this CA (TrustedUserCAKeys; see deploy/sshd_config.d/gatehouse.conf):"
    );
    println!("     {}", ca.public_key().to_openssh()?);
    println!("  4. gatehouse serve --config {}", config_path.display());
    if let Some(fingerprint) = web_certificate {
        println!();
        println!(
            "The web console ([http] listen, off until set) serves a certificate with SHA-256 fingerprint"
        );
        println!("  {fingerprint}");
    }
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            println!("created {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            println!("kept    {} (already there)", path.display());
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}
