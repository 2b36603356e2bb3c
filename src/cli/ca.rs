//! `gatehouse ca public-key`: what a target needs to trust Gatehouse's certificates.

use std::process::ExitCode;

use crate::config::Config;
use crate::keys;

/// Prints the CA public key line, creating the CA key first if there is none yet.
pub fn public_key(config: Config) -> anyhow::Result<ExitCode> {
    let (key, origin) = keys::load_or_create(&config.ca.key, "gatehouse-user-ca")?;
    if origin == keys::Origin::Created {
        eprintln!("created CA key {}", config.ca.key.display());
    }
    println!("{}", key.public_key().to_openssh()?);
    Ok(ExitCode::SUCCESS)
}
