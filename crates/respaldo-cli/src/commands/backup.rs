//! `backup`: files, folders or standard input into a new snapshot.
//!
//! Exit code 3 when the snapshot was saved but some sources could not be read (the warnings
//! name them), as restic does.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::{BackupOptions, BackupOutcome};
use serde_json::Value;

use crate::args::{BackupArgs, Global};
use crate::output::{self, Ui};
use crate::progress::TermProgress;

/// Runs `backup`.
pub fn run(global: &Global, ui: &Ui, args: &BackupArgs) -> Result<ExitCode> {
    let options = options(args)?;
    let repo = super::events::open(global, ui)?;
    let progress = TermProgress::new(ui, "backup");
    let outcome = if args.stdin {
        let mut stdin = std::io::stdin().lock();
        let filename = args.stdin_filename.as_deref().unwrap_or("stdin");
        repo.backup_stdin(&options, filename, &mut stdin, &progress)?
    } else {
        repo.backup(&options, &progress)?
    };
    progress.finish();
    print(ui, &outcome)?;
    Ok(if outcome.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PARTIAL)
    })
}

/// The engine's options for `args`; source paths made absolute.
fn options(args: &BackupArgs) -> Result<BackupOptions> {
    let paths = args
        .paths
        .iter()
        .map(|p| super::absolute(p))
        .collect::<Result<Vec<_>>>()?;
    let exclude_files = args
        .exclude_files
        .iter()
        .map(|p| super::absolute(p))
        .collect::<Result<Vec<_>>>()?;
    Ok(BackupOptions {
        paths,
        tags: args.tags.clone(),
        host: args.host.clone(),
        excludes: args.excludes.clone(),
        exclude_files,
        exclude_if_present: args.exclude_if_present.clone(),
        one_file_system: args.one_file_system,
        parent: args.parent.clone(),
        time_ns: None,
        sqlite: args
            .sqlite
            .iter()
            .map(|p| super::absolute(p))
            .collect::<Result<Vec<_>>>()?,
    })
}

fn print(ui: &Ui, outcome: &BackupOutcome) -> Result<()> {
    let snapshot_id = outcome.snapshot_id.to_string();
    let summary = &outcome.snapshot.summary;
    let mut out = output::stdout();
    if ui.json {
        for warning in &outcome.warnings {
            output::write_json(&mut out, &output::warning_json(warning))?;
        }
        let mut fields = serde_json::Map::new();
        fields.insert("message_type".into(), "summary".into());
        fields.insert("snapshot_id".into(), Value::String(snapshot_id.clone()));
        fields.insert(
            "short_id".into(),
            Value::String(output::short_id(&snapshot_id)),
        );
        fields.extend(output::summary_json(summary));
        fields.insert("warnings".into(), outcome.warnings.len().into());
        output::write_json(&mut out, &Value::Object(fields))?;
        out.flush()?;
        return Ok(());
    }
    output::print_warnings(ui, &outcome.warnings)?;
    if ui.quiet {
        return Ok(());
    }
    if let Some(parent) = &outcome.snapshot.parent {
        writeln!(out, "parent snapshot {}", output::short_id(parent))?;
    }
    writeln!(
        out,
        "Files:       {} new, {} changed, {} unchanged",
        summary.files_new, summary.files_changed, summary.files_unchanged
    )?;
    writeln!(out, "Dirs:        {}", summary.dirs)?;
    if summary.others > 0 {
        writeln!(out, "Others:      {}", summary.others)?;
    }
    writeln!(
        out,
        "Added:       {} in {} new chunks (stored size)",
        output::bytes(summary.bytes_added),
        summary.blobs_added
    )?;
    writeln!(
        out,
        "Processed:   {} in {:.2}s, {} read",
        output::bytes(summary.total_bytes),
        output::seconds(summary.duration_ns),
        output::bytes(summary.bytes_read)
    )?;
    if !outcome.warnings.is_empty() {
        writeln!(
            out,
            "Warning:     {} source(s) could not be read and are not in the snapshot",
            outcome.warnings.len()
        )?;
    }
    writeln!(out, "snapshot {} saved", output::short_id(&snapshot_id))?;
    out.flush()?;
    Ok(())
}
