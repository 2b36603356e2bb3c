//! `gatehouse report`: the evidence for an access review over a period, as one HTML page, JSON
//! or CSV files; and `gatehouse report --diff OLD.json NEW.json`, the drift between two.
//!
//! The report reads the store the config names (SQLite or PostgreSQL), the audit log, and the
//! recordings of the period; it changes nothing. Progress goes to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, NaiveDate};

use crate::config::Config;
use crate::grants::operator;
use crate::report::{self, Source, csv, diff, html};
use crate::{directory, store};

/// What to report.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Start of the period: how long before its end (90d, 12h), a date (2025-01-01, UTC) or a
    /// time (RFC 3339).
    #[arg(long, default_value = "90d")]
    since: String,
    /// End of the period, excluded: a date (UTC midnight) or a time (RFC 3339); default now.
    #[arg(long)]
    until: Option<String>,
    /// Write the HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the JSON report to FILE (`-`: standard output); with --diff, the drift as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the report as CSV files into DIR.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// A role whose max_duration is longer than this counts as standing privilege.
    #[arg(long, default_value = "8h", value_name = "DURATION")]
    long: String,
    /// Compare two JSON reports instead: exit 0 when nothing drifted, 1 when something did.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with_all = ["out", "csv"])]
    diff: Option<Vec<PathBuf>>,
}

/// Runs `gatehouse report`.
pub fn run(config: Option<&Path>, args: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(files) = &args.diff {
        return drift(&files[0], &files[1], args.json.as_deref());
    }
    if args.out.is_none() && args.json.is_none() && args.csv.is_none() {
        anyhow::bail!("say where the report goes: --out FILE (HTML), --json FILE or --csv DIR");
    }
    let config = Config::discover(config)?;
    let now = crate::grants::now();
    let until = match &args.until {
        Some(text) => moment(text)?,
        // Everything so far, this second included (times are whole seconds).
        None => now + 1,
    };
    let since = match crate::duration::parse(&args.since) {
        Ok(back) => until - back.as_secs() as i64,
        Err(_) => moment(&args.since)?,
    };
    if since >= until {
        anyhow::bail!("--since must be before --until");
    }
    let long_after = crate::duration::parse(&args.long)?;
    let generated_by = operator::current_account().unwrap_or_else(|e| format!("unknown ({e})"));
    let started = Instant::now();
    let mut progress = |what: &str| {
        eprintln!("report: {what} ({:.1}s)", started.elapsed().as_secs_f64());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let made = runtime.block_on(async {
        let store = store::open(&config.store).await?;
        // The policy in force: the files with the directory's people, as the server has them.
        let policy = directory::policy_in_force(&config, &store)
            .await
            .map_err(|e| {
                anyhow::anyhow!("the policy in force cannot be read ({e}); run gatehouse check")
            })?;
        let source = Source {
            store: store.as_ref(),
            policy: &policy,
            policies_dir: &config.policies,
            audit_log: &config.audit_log,
            request_ttl: config.request_ttl,
            since,
            until,
            now,
            long_after,
            generated_by,
        };
        anyhow::Ok(report::generate(&source, &mut progress).await?)
    })?;
    if let Some(path) = &args.out {
        std::fs::write(path, html::render(&made)).map_err(report::ReportError::io(path))?;
        progress(&format!("wrote {}", path.display()));
    }
    if let Some(path) = &args.json {
        write_json(path, &made)?;
    }
    if let Some(dir) = &args.csv {
        csv::write(&made, dir)?;
        progress(&format!(
            "wrote {} CSV files into {}",
            csv::FILES.len(),
            dir.display()
        ));
    }
    let i = &made.integrity;
    if !i.audit.ok || !i.recordings.modified.is_empty() {
        eprintln!(
            "gatehouse: warning: the evidence is not intact (audit chain {}, {} recording(s) modified)",
            if i.audit.ok { "whole" } else { "broken" },
            i.recordings.modified.len()
        );
    }
    progress(&format!(
        "done: {} grants, {} break-glass uses, {} denials",
        made.time.grants.len(),
        made.break_glass.len(),
        made.denials.total
    ));
    Ok(ExitCode::SUCCESS)
}

/// `--diff OLD NEW`.
fn drift(old: &Path, new: &Path, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (old, new) = (diff::read(old)?, diff::read(new)?);
    let found = diff::diff(&old, &new);
    match json {
        Some(path) => write_json(path, &found)?,
        None => print!("{}", diff::render(&found, &old, &new)),
    }
    Ok(if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
    } else {
        std::fs::write(path, text + "\n").map_err(report::ReportError::io(path))?;
    }
    Ok(())
}

/// A date (`2025-03-31`, midnight UTC) or an RFC 3339 time, as Unix seconds.
fn moment(text: &str) -> anyhow::Result<i64> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| anyhow::anyhow!("{text:?} has no midnight"))?;
        return Ok(midnight.and_utc().timestamp());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| {
            anyhow::anyhow!(
                "{text:?} is not a duration (90d), a date (2025-03-31) or a time \
                 (2025-03-31T12:00:00Z)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::moment;

    #[test]
    fn dates_and_times_are_read_in_utc() {
        assert_eq!(moment("1970-01-02").unwrap(), 86_400);
        assert_eq!(moment("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(moment("yesterday").is_err());
    }
}
