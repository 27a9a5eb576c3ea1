//! `snapshots`: list snapshots, oldest first, as a table or a JSON array.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::SnapshotFilter;
use serde_json::Value;

use crate::args::{FilterArgs, Global, SnapshotsArgs};
use crate::output::{self, Table, Ui};

/// Runs `snapshots`.
pub fn run(global: &Global, ui: &Ui, args: &SnapshotsArgs) -> Result<ExitCode> {
    let filter = filter(&args.filter)?;
    let repo = super::open(global)?;
    let catalog = repo.catalog()?;
    let entries: Vec<_> = catalog.filtered(&filter).collect();

    let mut out = output::stdout();
    if ui.json {
        let list: Vec<Value> = entries.iter().map(|e| output::snapshot_json(e)).collect();
        output::write_json_pretty(&mut out, &Value::Array(list))?;
    } else {
        let mut table = Table::new(&["ID", "Time", "Host", "Tags", "Paths"]);
        for entry in &entries {
            let s = &entry.snapshot;
            table.row(vec![
                output::short_id(&entry.id),
                output::local_time(s.time_ns),
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.join("\n"),
            ]);
        }
        table.write(&mut out)?;
        if !ui.quiet {
            let n = entries.len();
            writeln!(out, "{n} snapshot{}", if n == 1 { "" } else { "s" })?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The engine's filter for the `--host`, `--tag` and `--path` flags (paths made absolute).
pub fn filter(args: &FilterArgs) -> Result<SnapshotFilter> {
    let paths = args
        .paths
        .iter()
        .map(|p| super::absolute(p).map(|p| p.to_string_lossy().into_owned()))
        .collect::<Result<Vec<_>>>()?;
    Ok(SnapshotFilter {
        exact: false,
        hosts: args.hosts.clone(),
        tags: args.tags.clone(),
        paths,
    })
}
