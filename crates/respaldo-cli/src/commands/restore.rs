//! `restore`: a snapshot, picked by id, `latest` or time, into a folder.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::{RestoreOptions, RestoreOutcome, SnapshotEntry, SnapshotSpec};
use serde_json::json;

use crate::args::{Global, RestoreArgs};
use crate::output::{self, Ui};
use crate::progress::TermProgress;

/// Runs `restore`.
pub fn run(global: &Global, ui: &Ui, args: &RestoreArgs) -> Result<ExitCode> {
    let spec = match (&args.snapshot, args.at) {
        (_, Some(time_ns)) => SnapshotSpec::At(time_ns),
        (Some(spec), None) => spec.clone(),
        (None, None) => SnapshotSpec::Latest,
    };
    let options = RestoreOptions {
        target: super::absolute(&args.target)?,
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
        verify: args.verify,
        force: args.force,
    };
    let repo = super::events::open(global, ui)?;
    let entry = super::resolve(&repo, &spec)?;
    let progress = TermProgress::new(ui, "restore");
    let outcome = repo.restore(&entry, &options, &progress)?;
    progress.finish();
    print(ui, &entry, &options, &outcome)?;
    Ok(ExitCode::SUCCESS)
}

fn print(
    ui: &Ui,
    entry: &SnapshotEntry,
    options: &RestoreOptions,
    outcome: &RestoreOutcome,
) -> Result<()> {
    let mut out = output::stdout();
    if ui.json {
        for warning in &outcome.warnings {
            output::write_json(&mut out, &output::warning_json(warning))?;
        }
        output::write_json(
            &mut out,
            &json!({
                "message_type": "summary",
                "snapshot_id": entry.id.to_string(),
                "short_id": output::short_id(&entry.id),
                "time": output::rfc3339(entry.snapshot.time_ns),
                "target": options.target.to_string_lossy(),
                "files": outcome.files,
                "dirs": outcome.dirs,
                "others": outcome.others,
                "bytes": outcome.bytes,
                "verified": options.verify,
                "warnings": outcome.warnings.len(),
            }),
        )?;
        out.flush()?;
        return Ok(());
    }
    output::print_warnings(ui, &outcome.warnings)?;
    if !ui.quiet {
        writeln!(
            out,
            "restored snapshot {} of {} to {}",
            output::short_id(&entry.id),
            output::local_time(entry.snapshot.time_ns),
            options.target.display()
        )?;
        writeln!(
            out,
            "{} files ({}), {} dirs, {} others{}",
            outcome.files,
            output::bytes(outcome.bytes),
            outcome.dirs,
            outcome.others,
            if options.verify { ", verified" } else { "" }
        )?;
    }
    out.flush()?;
    Ok(())
}
