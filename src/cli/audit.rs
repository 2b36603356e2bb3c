//! `gatehouse audit verify|tail|reanchor`: proving the audit log is whole, and reading it.

use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::{self, FailureKind};
use crate::config::Config;

/// `gatehouse audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that the hash chain is unbroken; names the first bad line.
    Verify,
    /// Print the last lines (and, with --follow, new ones as they come).
    Tail {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = audit::DEFAULT_TAIL_LINES)]
        lines: usize,
        /// Keep printing new lines until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// The raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Accept a log whose end no longer matches its anchor, after investigating why; the
    /// decision is itself recorded in the log.
    Reanchor {
        /// Why (kept in the log).
        #[arg(long)]
        reason: String,
    },
}

/// Runs one audit subcommand.
pub fn run(config: Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let path = config.audit_log;
    match command {
        AuditCommand::Verify => match audit::verify(&path) {
            Ok(report) => {
                for warning in &report.warnings {
                    println!("warning: {warning}");
                }
                println!(
                    "ok: {} lines, last seq {}, last hash {}",
                    report.lines, report.last_seq, report.last_hash
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(failure) if failure.kind == FailureKind::Broken => {
                println!("{failure}");
                Ok(ExitCode::FAILURE)
            }
            Err(failure) => {
                eprintln!("gatehouse: {}: {failure}", path.display());
                Ok(ExitCode::from(2))
            }
        },
        AuditCommand::Tail {
            lines,
            follow,
            json,
        } => {
            let mut stdout = std::io::stdout();
            let offset = audit::tail(&path, lines, json, &mut stdout)?;
            if follow {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(audit::follow(&path, offset, json, &mut stdout, async {
                    let _ = tokio::signal::ctrl_c().await;
                }))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Reanchor { reason } => {
            match audit::reanchor(&path, &reason)? {
                Some(record) => println!("re-anchored at seq {} ({})", record.seq, record.hash),
                None => println!("the log already matches its anchor; nothing to do"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
