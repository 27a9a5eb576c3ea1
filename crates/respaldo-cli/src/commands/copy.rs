//! `copy`: copy snapshots from another repository (`--from-repo`, `RESPALDO_FROM_REPOSITORY`)
//! into the repository (`--repo`), as restic's `copy --from-repo`. Exits 1 when some snapshot
//! could not be copied (each is named on standard error), 12 when a password is wrong or
//! missing.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use respaldo::{
    CopiedSnapshot, CopyOptions, CopyOutcome, CopyStatus, Location, Repository, SnapshotSpec,
};
use serde_json::{Value, json};

use crate::args::{CopyArgs, Global};
use crate::output::{self, Table, Ui};
use crate::password;
use crate::progress::TermProgress;

/// Environment variable holding the source repository's password.
pub const FROM_PASSWORD_ENV: &str = "RESPALDO_FROM_PASSWORD";

/// Help shown after the options of `copy`.
pub const AFTER_HELP: &str = "\
The destination is --repo (RESPALDO_REPOSITORY, password from --password-file,
RESPALDO_PASSWORD_FILE or RESPALDO_PASSWORD); the source is --from-repo
(RESPALDO_FROM_REPOSITORY, password from --from-password-file, RESPALDO_FROM_PASSWORD_FILE or
RESPALDO_FROM_PASSWORD). Without a password either is asked for on a terminal; an unencrypted
repository needs none.

Snapshots are copied oldest first. One the destination already has (same time, host, user,
paths and tags) is skipped, so running the same copy again copies nothing. Data the
destination already has is not stored again; chunk ids differ between encrypted repositories,
so their data is read from the source and hashed again.

A snapshot whose data cannot be read from the source is not copied (no snapshot is written for
it), the others are, and copy exits 1. --json prints one document: {\"dry_run\", \"same_ids\",
\"snapshots\": [...], \"copied\", \"skipped\", \"failed\", \"blobs_added\", \"bytes_added\",
\"blobs_reused\", \"bytes_read\"}.";

/// The source repository's password is wrong, or missing where it cannot be asked for:
/// `main` turns it into exit code 12, without the hint about the destination's password.
#[derive(Debug)]
pub struct SourcePassword {
    message: String,
}

impl std::fmt::Display for SourcePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourcePassword {}

/// Runs `copy`.
pub fn run(global: &Global, ui: &Ui, args: &CopyArgs) -> Result<ExitCode> {
    let options = CopyOptions {
        snapshots: args
            .snapshots
            .iter()
            .map(|spec| match spec {
                SnapshotSpec::Id(id) => Ok(id.clone()),
                SnapshotSpec::Latest => Ok("latest".to_string()),
                SnapshotSpec::At(_) => {
                    bail!("copy takes snapshot ids or `latest`, not a time")
                }
            })
            .collect::<Result<_>>()?,
        filter: super::snapshots::filter(&args.filter)?,
        dry_run: args.dry_run,
    };
    let target = super::events::open(global, ui)?;
    let source = open_source(global, args)?;
    let progress = TermProgress::new(ui, "copy");
    let outcome = target.copy_from(&source, &options, &progress);
    progress.finish();
    let outcome = outcome?;

    let mut out = output::stdout();
    if ui.json {
        output::write_json_pretty(&mut out, &outcome_json(&outcome))?;
    } else if !ui.quiet {
        print(&mut out, &outcome)?;
    }
    out.flush()?;
    if !outcome.is_ok() {
        let mut err = std::io::stderr().lock();
        for snapshot in &outcome.snapshots {
            if let CopyStatus::Failed { error } = &snapshot.status {
                writeln!(err, "error: {error}")?;
            }
        }
        bail!(
            "{} snapshot(s) could not be copied (each is named above); the others were",
            outcome.failed()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the source repository with the password from `--from-password-file`,
/// `RESPALDO_FROM_PASSWORD` or a prompt, as `open` does for `--repo`; `--no-lock` and
/// `--retry-lock` apply to it too.
fn open_source(global: &Global, args: &CopyArgs) -> Result<Repository> {
    if args.from_repo.as_os_str().is_empty() {
        bail!(
            "no source repository given: pass --from-repo PATH (or s3:...) or set \
             RESPALDO_FROM_REPOSITORY"
        );
    }
    let location = &Location::parse(args.from_repo.as_os_str())?;
    let cache = super::cache_dir()?;
    let opened = match source_password(args)? {
        Some(password) => Repository::open_at(location, Some(&password), &cache),
        // Without a password an unencrypted repository opens; an encrypted one reports a wrong
        // password before anything else is read.
        None => match Repository::open_at(location, None, &cache) {
            Err(e) if e.is_wrong_password() => match prompt_source_password(location)? {
                Some(password) => Repository::open_at(location, Some(&password), &cache),
                None => {
                    return Err(SourcePassword {
                        message: format!(
                            "a password is needed to open the source repository {location}: set \
                             {FROM_PASSWORD_ENV}, pass --from-password-file FILE (or set \
                             RESPALDO_FROM_PASSWORD_FILE), or run in a terminal to be asked \
                             for it"
                        ),
                    }
                    .into());
                }
            },
            other => other,
        },
    };
    let mut source = match opened {
        Ok(source) => source,
        Err(e) if e.is_wrong_password() => {
            return Err(SourcePassword {
                message: format!(
                    "cannot open the source repository {location}: {e}; check \
                     {FROM_PASSWORD_ENV} or the password file (--from-password-file, \
                     RESPALDO_FROM_PASSWORD_FILE)"
                ),
            }
            .into());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot open the source repository {location}"));
        }
    };
    if let Some(wait) = global.retry_lock {
        source.set_lock_wait(wait);
    }
    source.set_no_lock(global.no_lock);
    for (name, reason) in source.store().unreadable_index_files() {
        eprintln!(
            "respaldo: warning: source repository: skipped index/{name} ({reason}); the blobs \
             it lists are unknown until `respaldo repair index` lists them again"
        );
    }
    Ok(source)
}

/// The source password given by `--from-password-file` (or `RESPALDO_FROM_PASSWORD_FILE`),
/// else by `RESPALDO_FROM_PASSWORD`.
fn source_password(args: &CopyArgs) -> Result<Option<String>> {
    password::from_file_or_env(args.from_password_file.as_deref(), FROM_PASSWORD_ENV)
}

/// Asks for the source repository's password on the terminal; `None` without a terminal.
fn prompt_source_password(location: &Location) -> Result<Option<String>> {
    password::prompt(&format!(
        "enter password for source repository {location}: "
    ))
}

/// The table of snapshots, then a summary line.
fn print(out: &mut impl Write, outcome: &CopyOutcome) -> std::io::Result<()> {
    let mut table = Table::new(&["ID", "Time", "Host", "Tags", "Paths", "Result"]);
    for copied in &outcome.snapshots {
        let s = &copied.snapshot;
        table.row(vec![
            output::short_id(&copied.source),
            output::local_time(s.time_ns),
            s.hostname.clone(),
            s.tags.join(","),
            s.paths.join("\n"),
            result_text(copied),
        ]);
    }
    if !outcome.snapshots.is_empty() {
        table.write(out)?;
    }
    if outcome.dry_run {
        return writeln!(
            out,
            "would copy {} snapshot(s), skip {} already in the destination (dry run)",
            outcome.snapshots.len() - outcome.skipped(),
            outcome.skipped()
        );
    }
    writeln!(
        out,
        "copied {} snapshot(s), skipped {} already in the destination, {} failed: {} blob(s) \
         added ({}), {} reused, {} read from the source",
        outcome.copied(),
        outcome.skipped(),
        outcome.failed(),
        outcome.blobs_added(),
        output::bytes(outcome.bytes_added()),
        outcome.blobs_reused(),
        output::bytes(outcome.bytes_read()),
    )
}

/// What became of one snapshot, in a few words.
fn result_text(copied: &CopiedSnapshot) -> String {
    match &copied.status {
        CopyStatus::Copied { target } => format!(
            "copied as {} ({} added)",
            output::short_id(target),
            output::bytes(copied.bytes_added)
        ),
        CopyStatus::Skipped { existing } => {
            format!("skipped: already there as {}", output::short_id(existing))
        }
        CopyStatus::WouldCopy => "would copy".to_string(),
        CopyStatus::Failed { .. } => "FAILED (see below)".to_string(),
    }
}

/// The outcome as one JSON document.
fn outcome_json(outcome: &CopyOutcome) -> Value {
    let snapshots: Vec<Value> = outcome.snapshots.iter().map(snapshot_json).collect();
    json!({
        "dry_run": outcome.dry_run,
        "same_ids": outcome.same_ids,
        "snapshots": snapshots,
        "copied": outcome.copied(),
        "skipped": outcome.skipped(),
        "failed": outcome.failed(),
        "blobs_added": outcome.blobs_added(),
        "bytes_added": outcome.bytes_added(),
        "blobs_reused": outcome.blobs_reused(),
        "bytes_read": outcome.bytes_read(),
    })
}

fn snapshot_json(copied: &CopiedSnapshot) -> Value {
    let s = &copied.snapshot;
    let (status, target, error) = match &copied.status {
        CopyStatus::Copied { target } => ("copied", Some(target.to_string()), None),
        CopyStatus::Skipped { existing } => ("skipped", Some(existing.to_string()), None),
        CopyStatus::WouldCopy => ("would_copy", None, None),
        CopyStatus::Failed { error } => ("failed", None, Some(error.clone())),
    };
    json!({
        "source_id": copied.source.to_string(),
        "short_id": output::short_id(&copied.source),
        "time": output::rfc3339(s.time_ns),
        "hostname": s.hostname,
        "username": s.username,
        "tags": s.tags,
        "paths": s.paths,
        "status": status,
        "target_id": target,
        "error": error,
        "blobs_added": copied.blobs_added,
        "bytes_added": copied.bytes_added,
        "blobs_reused": copied.blobs_reused,
        "bytes_read": copied.bytes_read,
    })
}
