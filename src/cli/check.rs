//! `gatehouse check`: validate the config and policies before a deploy or a reload.

use std::process::ExitCode;

use crate::config::Config;
use crate::policy;

/// Loads the policies named by `config` and reports errors (exit 1) or warnings (exit 0).
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    match policy::load_dir(&config.policies) {
        Ok(policy) => {
            for warning in policy.warnings() {
                eprintln!("warning: {warning}");
            }
            for note in policy.notes() {
                eprintln!("note: {note}");
            }
            println!(
                "ok: {} users, {} targets, {} roles in {}",
                policy.users().count(),
                policy.targets().count(),
                policy.roles().count(),
                config.policies.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); the policy was not accepted", errors.0.len());
            Ok(ExitCode::FAILURE)
        }
    }
}
