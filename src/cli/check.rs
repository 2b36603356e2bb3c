//! `gatehouse check`: validate the config and policies before a deploy or a reload.

use std::process::ExitCode;

use crate::config::Config;
use crate::policy;

/// Loads the policies named by `config` and reports errors (exit 1) or warnings (exit 0).
/// With `[directory]` set, the directory's last good state is checked against the policy
/// files too: a user defined in both places is an error naming both.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    let outside = crate::directory::outside_groups(&config);
    let policy = match policy::load_dir_with_groups(&config.policies, &outside) {
        Ok(policy) => policy,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); the policy was not accepted", errors.0.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in policy.warnings() {
        eprintln!("warning: {warning}");
    }
    for note in policy.notes() {
        eprintln!("note: {note}");
    }
    let mut directory_users = 0;
    if config.directory.is_some() {
        match directory_conflicts(&config, &policy) {
            Ok((users, conflicts)) if conflicts.is_empty() => directory_users = users,
            Ok((_, conflicts)) => {
                for c in &conflicts {
                    eprintln!("error: {c}");
                }
                eprintln!(
                    "{} error(s) between the policy files and the directory",
                    conflicts.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => eprintln!("warning: the directory's last good state was not checked: {e}"),
        }
    }
    println!(
        "ok: {} users, {} targets, {} roles in {}{}",
        policy.users().count(),
        policy.targets().count(),
        policy.roles().count(),
        config.policies.display(),
        if directory_users > 0 {
            format!(", and {directory_users} users from the directory")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The directory's users in its last good state, and what they conflict on with `policy`.
fn directory_conflicts(
    config: &Config,
    policy: &policy::Policy,
) -> anyhow::Result<(usize, Vec<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = crate::store::open(&config.store).await?;
        let Some(snapshot) = crate::directory::stored_snapshot(config, &store).await? else {
            return Ok((0, Vec::new()));
        };
        let (_, conflicts) = policy.with_directory(&snapshot);
        Ok((
            snapshot.users.len(),
            conflicts.into_iter().map(|c| c.message).collect(),
        ))
    })
}
