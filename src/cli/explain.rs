//! `gatehouse explain USER TARGET[:ROLE] [-- COMMAND…] [--policies DIR] [--json]`: what the
//! bastion would answer this person now, and why, role by role.
//!
//! The person's grants come from the store the config names; the policy is the one in force
//! (the policy files with the directory's people, as the server has them), or with
//! `--policies DIR` policy files that are not loaded yet, so that a change can be reviewed (and
//! checked in CI) against real grants and people before it ships.
//!
//! Exit status: 0 when the session would open, 1 when it would be denied, 2 when the question
//! cannot be asked (an unknown user, a policy that does not load).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::access::{Action, SessionRequest};
use crate::config::Config;
use crate::explain::{self, Audience, Question};
use crate::grants::store::GrantFilter;
use crate::grants::{self, GrantState};
use crate::{directory, policy, store};

/// What to explain.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The person (a user name in the policy).
    user: String,
    /// The target, or TARGET:ROLE to name the role as `ssh bastion TARGET:ROLE` does.
    target: String,
    /// The command, after `--`, as it would follow the target on the ssh command line (none:
    /// an interactive session with a terminal).
    #[arg(last = true)]
    command: Vec<String>,
    /// Judge by the policy files in this directory instead of the configured ones.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `gatehouse explain`.
pub fn run(config: Config, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let dir = args.policies.clone().unwrap_or(config.policies.clone());
    let files = match policy::load_dir_with_groups(&dir, &directory::outside_groups(&config)) {
        Ok(files) => files,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "gatehouse: the policy in {} does not load; nothing to explain",
                dir.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(store::open(&config.store))?;
    // The people of the directory, as the server has them, join the policy files.
    let policy = match runtime.block_on(directory::stored_snapshot(&config, &store))? {
        Some(snapshot) => files.with_directory(&snapshot).0,
        None => files,
    };
    let Some(user) = policy.user(&args.user).cloned() else {
        eprintln!(
            "gatehouse: there is no user {:?} in the policy in {}",
            args.user,
            dir.display()
        );
        return Ok(ExitCode::from(2));
    };
    let (target, role) = match args.target.split_once(':') {
        Some((t, r)) => (t.to_owned(), Some(r.to_owned())),
        None => (args.target.clone(), None),
    };
    let action = if args.command.is_empty() {
        Action::Interactive { pty: true }
    } else {
        // The OpenSSH client joins its arguments with spaces; so does this.
        Action::Exec(args.command.join(" ").into_bytes())
    };
    let request = SessionRequest {
        target,
        role,
        action,
    };
    let held = runtime.block_on(store.list(&GrantFilter {
        user: Some(user.name.clone()),
        states: vec![GrantState::Pending, GrantState::Active],
        limit: Some(10_000),
    }))?;
    let answer = explain::explain(&Question {
        policy: &policy,
        user: &user,
        grants: &held,
        request: &request,
        now: grants::now(),
        request_ttl: config.request_ttl,
        audience: Audience::Operator,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", explain::render(&answer));
    }
    Ok(if answer.verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
