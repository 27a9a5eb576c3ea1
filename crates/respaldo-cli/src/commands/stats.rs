//! `stats`: sizes, deduplication and compression of one snapshot or of the whole repository.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use crate::args::{Global, StatsArgs};
use crate::output::{self, Ui};

/// Runs `stats`.
pub fn run(global: &Global, ui: &Ui, args: &StatsArgs) -> Result<ExitCode> {
    let repo = super::open(global)?;
    let entry = match &args.snapshot {
        Some(spec) => Some(super::resolve(&repo, spec)?),
        None => None,
    };
    let stats = repo.stats(entry.as_ref())?;

    let mut out = output::stdout();
    if ui.json {
        let value = json!({
            "snapshot_id": entry.as_ref().map(|e| e.id.to_string()),
            "snapshots": stats.snapshots,
            "files": stats.files,
            "logical_bytes": stats.logical_bytes,
            "unique_chunks": stats.unique_chunks,
            "unique_bytes": stats.unique_bytes,
            "stored_bytes": stats.stored_bytes,
            "packs": stats.packs,
            "dedup_ratio": finite(stats.dedup_ratio),
            "compression_ratio": finite(stats.compression_ratio),
        });
        output::write_json_pretty(&mut out, &value)?;
    } else {
        match &entry {
            Some(e) => writeln!(out, "Stats of snapshot {}:", output::short_id(&e.id))?,
            None => writeln!(out, "Stats of the repository:")?,
        }
        let lines = [
            ("Snapshots", stats.snapshots.to_string()),
            ("Files", stats.files.to_string()),
            ("Logical size", output::bytes(stats.logical_bytes)),
            ("Unique chunks", stats.unique_chunks.to_string()),
            ("Unique size", output::bytes(stats.unique_bytes)),
            ("Stored size", output::bytes(stats.stored_bytes)),
            ("Packs", stats.packs.to_string()),
            ("Dedup ratio", format!("{:.2}", stats.dedup_ratio)),
            (
                "Compression ratio",
                format!("{:.2}", stats.compression_ratio),
            ),
        ];
        for (name, value) in lines {
            writeln!(out, "  {:<18} {value}", format!("{name}:"))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A ratio as JSON: `null` when it is not a number (an empty repository divides by zero).
fn finite(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}
