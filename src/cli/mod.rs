//! The operator's command line: one subcommand, one function.

mod audit;
mod ca;
mod check;
mod directory;
mod explain;
mod export;
mod grants;
mod holds;
mod init;
mod nodes;
mod report;
mod review;
mod serve;
mod sessions;
mod tokens;
mod transcript;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::logging::LogFormat;

/// Gatehouse: an SSH bastion with just-in-time grants, command allow-lists, per-session
/// certificates and recordings.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a config, CA key, host key, sample policies and data directory.
    Init {
        /// Directory to set up (default: the current one).
        dir: Option<PathBuf>,
    },
    /// Run the bastion.
    Serve(ConfigArg),
    /// Validate the config and policies, and explain any error.
    Check(ConfigArg),
    /// The operator's view of grants.
    Grants {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: grants::GrantsCommand,
    },
    /// Find sessions and check their recordings.
    Sessions {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: sessions::SessionsCommand,
    },
    /// Play a session's recording in the terminal (space pauses, q quits).
    Replay {
        /// Config file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// What to play, and how.
        #[command(flatten)]
        args: sessions::ReplayArgs,
    },
    /// The review queue of break-glass sessions.
    Review {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// The hash-chained audit log.
    Audit {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The nodes sharing this store.
    Nodes {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: nodes::NodesCommand,
    },
    /// People from the LDAP directory (`[directory]`).
    Directory {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: directory::DirectoryCommand,
    },
    /// API tokens for scripts and other systems (`Authorization: Bearer TOKEN`).
    Tokens {
        /// Config file.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Why a person may or may not open a session now, role by role, in the bastion's words.
    Explain {
        /// Config file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// What to explain.
        #[command(flatten)]
        args: explain::ExplainArgs,
    },
    /// Evidence for an access review: an HTML, JSON or CSV report over a period, or the drift
    /// between two reports.
    Report {
        /// Config file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// What to report.
        #[command(flatten)]
        args: report::ReportArgs,
    },
    /// The user CA.
    Ca {
        /// What to do with it.
        #[command(subcommand)]
        command: CaCommand,
    },
}

/// `--config FILE`, shared by the subcommands that read the config.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Config file (default: $GATEHOUSE_CONFIG, then ./gatehouse.toml, then built-in defaults).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::discover(self.config.as_deref())?)
    }
}

/// `gatehouse ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA line for targets' TrustedUserCAKeys.
    PublicKey(ConfigArg),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir } => init::run(dir.as_deref()),
        Command::Serve(arg) => serve::run(arg.load()?),
        Command::Check(arg) => check::run(arg.load()?),
        Command::Ca {
            command: CaCommand::PublicKey(arg),
        } => ca::public_key(arg.load()?),
        Command::Sessions { config, command } => {
            sessions::run(Config::discover(config.as_deref())?, command)
        }
        Command::Replay { config, args } => {
            sessions::replay(Config::discover(config.as_deref())?, args)
        }
        Command::Audit { config, command } => {
            audit::run(Config::discover(config.as_deref())?, command)
        }
        Command::Review { config, command } => {
            review::run(Config::discover(config.as_deref())?, command)
        }
        Command::Nodes { config, command } => {
            nodes::run(Config::discover(config.as_deref())?, command)
        }
        Command::Grants { config, command } => {
            grants::run(Config::discover(config.as_deref())?, command)
        }
        Command::Tokens { config, command } => {
            tokens::run(Config::discover(config.as_deref())?, command)
        }
        Command::Directory { config, command } => {
            directory::run(Config::discover(config.as_deref())?, command)
        }
        Command::Explain { config, args } => {
            explain::run(Config::discover(config.as_deref())?, args)
        }
        Command::Report { config, args } => report::run(config.as_deref(), args),
    }
}

/// The Unix account running this command (its real uid), which operator commands act as; an
/// account that cannot be resolved acts not (the denial is printed, exit 126).
fn operator_account() -> Result<String, ExitCode> {
    crate::grants::operator::current_account().map_err(|e| {
        eprintln!("gatehouse: denied: {e}");
        ExitCode::from(126)
    })
}

/// Where an operator command reports what it did: straight to the audit log (the server may
/// not be running), and its alerts into the outbox, which a running node delivers.
async fn operator_events(
    config: &Config,
    store: &crate::store::Store,
) -> anyhow::Result<crate::events::Events> {
    use crate::events::{AuditRecorder, Events};
    Ok(Events::new(
        Some(AuditRecorder::Direct(
            crate::events::open_direct(&config.audit_log, &config.cluster.node_name).await?,
        )),
        Some(crate::alerts::Alerts::new(
            store.clone(),
            &config.alerts,
            std::sync::Arc::new(crate::alerts::NoopObserver),
        )?),
    )
    .on_node(&config.cluster.node_name))
}
