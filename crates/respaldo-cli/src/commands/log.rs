//! `log`: the backup log (one row per backup, restore, forget, prune and check), as a table or
//! a JSON array, oldest first. Needs no repository.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use respaldo::{BackupLog, LogEntry};

use crate::args::Global;
use crate::output::{self, Table, Ui};

/// `log`.
#[derive(Debug, ClapArgs)]
pub struct LogArgs {
    /// Show the N most recent operations.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// Most characters of an error shown in the table (`--json` has all of it).
const ERROR_SHOWN: usize = 80;

/// Runs `log`.
pub fn run(global: &Global, ui: &Ui, args: &LogArgs) -> Result<ExitCode> {
    let path = super::events::log_path(global)?;
    let mut entries = if path.exists() {
        BackupLog::open_read_only(&path)?.entries(args.limit)?
    } else {
        Vec::new()
    };
    entries.reverse();
    let mut out = output::stdout();
    if ui.json {
        // Straight from the struct, so that the keys keep the table's column order.
        serde_json::to_writer_pretty(&mut out, &entries).map_err(std::io::Error::from)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        if !ui.quiet {
            eprintln!("no operations in the backup log {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID",
        "Operation",
        "Job",
        "Status",
        "Started",
        "Duration",
        "Snapshot",
        "Files",
        "Added",
        "Error",
    ]);
    for entry in &entries {
        table.row(row(entry));
    }
    table.write(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn row(entry: &LogEntry) -> Vec<String> {
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    vec![
        entry.id.to_string(),
        entry.operation.clone(),
        entry.job.clone().unwrap_or_default(),
        entry.status.to_string(),
        started(&entry.started_at),
        entry.duration_ms.map(duration).unwrap_or_default(),
        entry
            .snapshot_id
            .as_ref()
            .map(output::short_id)
            .unwrap_or_default(),
        number(entry.files),
        entry
            .bytes_added
            .map(|b| output::bytes(u64::try_from(b).unwrap_or(0)))
            .unwrap_or_default(),
        entry.error.as_deref().map(shorten).unwrap_or_default(),
    ]
}

/// An RFC 3339 time as local `YYYY-MM-DD HH:MM:SS` (as stored if it cannot be read).
fn started(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
        .map_or_else(|| rfc3339.to_string(), output::local_time)
}

/// `0.42s`, `12.3s`, `4m05s`, `2h07m`.
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0..10 => format!("{}.{:02}s", s, (ms % 1000) / 10),
        10..60 => format!("{}.{}s", s, (ms % 1000) / 100),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The first line of an error, cut to [`ERROR_SHOWN`] characters.
fn shorten(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    if line.chars().count() <= ERROR_SHOWN {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(ERROR_SHOWN - 3).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(420), "0.42s");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_620_000), "2h07m");
    }

    #[test]
    fn long_errors_are_cut() {
        assert_eq!(shorten("short\nsecond line"), "short");
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), ERROR_SHOWN);
    }
}
