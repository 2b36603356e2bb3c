//! `gatehouse sessions export ID --out DIR` and `gatehouse sessions verify --export DIR`: one
//! session's evidence in a directory that verifies on its own (see [`crate::export`]).

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::export::{self, ExportRequest};
use crate::store::Store;

/// Exports session `id` into `out`.
pub(super) async fn run(
    config: &Config,
    store: &Store,
    id: &str,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let account = match super::operator_account() {
        Ok(account) => account,
        Err(code) => return Ok(code),
    };
    let Some(session) = super::sessions::resolve(store, id).await? else {
        return Ok(super::sessions::no_such(id));
    };
    let hold = store.hold_of(&session.id).await?;
    let request = ExportRequest {
        session: &session,
        hold: hold.as_ref(),
        audit_log: &config.audit_log,
        node: &config.cluster.node_name,
        exported_by: &account,
        out,
    };
    match export::export(&request) {
        Ok(manifest) => {
            println!(
                "session {} exported to {}: {} audit lines{}",
                session.id,
                out.display(),
                manifest.audit.lines.len(),
                manifest
                    .recording
                    .as_ref()
                    .map(|r| format!(", recording {} (sha256 {})", r.file, r.sha256))
                    .unwrap_or_default()
            );
            println!(
                "check it with: (cd {} && sha256sum -c {}), or gatehouse sessions verify --export {}",
                out.display(),
                export::SUMS,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("gatehouse: session {} was not exported: {e}", session.id);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Checks the export in `dir` and prints what holds and what does not.
pub(super) fn verify(dir: &Path) -> ExitCode {
    let outcome = export::verify(dir);
    for line in &outcome.passed {
        println!("ok: {line}");
    }
    for line in &outcome.problems {
        println!("FAILED: {line}");
    }
    if outcome.ok() {
        println!("the export in {} verifies", dir.display());
        ExitCode::SUCCESS
    } else {
        println!(
            "the export in {} does NOT verify ({} problems)",
            dir.display(),
            outcome.problems.len()
        );
        ExitCode::FAILURE
    }
}
