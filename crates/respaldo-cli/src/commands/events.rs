//! Where the events of backup, restore, forget, prune and check go from the command line: the
//! backup log (`--log-db`, `RESPALDO_LOG_DB`, else the state folder; `--no-log` disables it)
//! and, with `--json`, standard output as one JSON line per event.
//!
//! A log database the user named that cannot be opened stops the command before the operation;
//! the default one only gets a warning, so that a missing or read-only home never stops a
//! backup.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use respaldo::{BackupLog, Event, FnSink, Repository};

use crate::args::Global;
use crate::output::Ui;

/// Opens the repository (as [`super::open`]) with the event sinks the flags ask for.
pub fn open(global: &Global, ui: &Ui) -> Result<Repository> {
    let mut repo = super::open(global)?;
    if ui.json {
        repo.add_event_sink(Arc::new(FnSink::new(print_json)));
    }
    if global.no_log {
        return Ok(repo);
    }
    let path = log_path(global)?;
    match BackupLog::open(&path) {
        Ok(log) => {
            let log = log.on_warning(|message| eprintln!("respaldo: warning: {message}"));
            repo.add_event_sink(Arc::new(log));
        }
        // A database the user named must work: stop before the operation.
        Err(e) if is_named(global) => {
            return Err(anyhow!(
                "{e}; name another database with --log-db PATH, or pass --no-log"
            ));
        }
        // The default one (a service account without a writable home, say) must not stop a
        // backup: say so, and go on without the log.
        Err(e) => eprintln!(
            "respaldo: warning: {e}; this operation is not logged (name a database with \
             --log-db PATH, or pass --no-log)"
        ),
    }
    Ok(repo)
}

/// Whether the log database was named (`--log-db`, `RESPALDO_LOG_DB`) rather than the default.
fn is_named(global: &Global) -> bool {
    global
        .log_db
        .as_deref()
        .is_some_and(|p| !p.as_os_str().is_empty())
}

/// The backup log database: `--log-db`, `RESPALDO_LOG_DB`, else the state folder's.
pub fn log_path(global: &Global) -> Result<PathBuf> {
    match global
        .log_db
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(path) => super::absolute(path),
        None => respaldo::default_log_path().ok_or_else(|| {
            anyhow!(
                "cannot tell where to keep the backup log: set RESPALDO_LOG_DB, XDG_STATE_HOME \
                 or HOME, or pass --log-db PATH or --no-log"
            )
        }),
    }
}

/// Writes `event` as one JSON line on standard output, at once (a reader follows the
/// operation as it runs). A closed pipe is left to the final output to report.
pub fn print_json(event: &Event) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", event.to_json());
    let _ = out.flush();
}
