//! Events: every operation (backup, restore, forget, prune, check, copy) announces that it started
//! and how it ended, as an [`Event`] handed to every [`EventSink`] registered on the
//! [`Repository`].
//!
//! Sinks are where events go: a closure ([`FnSink`]), a channel (`crossbeam_channel::Sender`
//! or `std::sync::mpsc::Sender`), hook commands ([`crate::HookSink`]), the SQLite backup log
//! ([`crate::BackupLog`]), or the CLI's JSON lines. Sinks are called on the operation's
//! thread, in the order they were added, before the operation goes on (a started event) or
//! returns (a completed or failed one). A sink never fails the operation: it has no way to
//! return an error, and a sink that panics is ignored.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::commands::backup::BackupOutcome;
use crate::commands::check::CheckOutcome;
use crate::commands::copy::CopyOutcome;
use crate::commands::forget::ForgetOutcome;
use crate::commands::prune::PruneOutcome;
use crate::commands::restore::RestoreOutcome;
use crate::error::Result;
use crate::repository::Repository;

/// The name of an event: which operation, and whether it started, completed or failed.
///
/// The names ([`EventKind::as_str`]) are stable: hook configurations, scripts and the JSON
/// output use them. `AGT_RESTORE_STARTED` carries the prefix the applications embedding
/// respaldo use for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// `EVT_BACKUP_STARTED`: a backup (of paths or of standard input) begins.
    BackupStarted,
    /// `EVT_BACKUP_COMPLETED`: a backup saved its snapshot (possibly with warnings).
    BackupCompleted,
    /// `EVT_BACKUP_FAILED`: a backup ended without a snapshot.
    BackupFailed,
    /// `AGT_RESTORE_STARTED`: a restore begins.
    RestoreStarted,
    /// `EVT_RESTORE_COMPLETED`: a restore wrote everything it was asked to.
    RestoreCompleted,
    /// `EVT_RESTORE_FAILED`: a restore stopped on an error.
    RestoreFailed,
    /// `EVT_FORGET_COMPLETED`: forget removed (or, in a dry run, chose) snapshots.
    ForgetCompleted,
    /// `EVT_FORGET_FAILED`: forget stopped on an error.
    ForgetFailed,
    /// `EVT_PRUNE_STARTED`: a prune begins.
    PruneStarted,
    /// `EVT_PRUNE_COMPLETED`: a prune finished.
    PruneCompleted,
    /// `EVT_PRUNE_FAILED`: a prune stopped on an error.
    PruneFailed,
    /// `EVT_CHECK_COMPLETED`: a check found no damage.
    CheckCompleted,
    /// `EVT_CHECK_FAILED`: a check found damage, or could not run.
    CheckFailed,
    /// `EVT_COPY_STARTED`: a copy of snapshots from another repository begins.
    CopyStarted,
    /// `EVT_COPY_COMPLETED`: a copy copied (or skipped) every snapshot it was asked to.
    CopyCompleted,
    /// `EVT_COPY_FAILED`: a copy stopped on an error, or could not copy some snapshots.
    CopyFailed,
}

impl EventKind {
    /// Every event, in the order of the documentation.
    pub const ALL: &'static [EventKind] = &[
        EventKind::BackupStarted,
        EventKind::BackupCompleted,
        EventKind::BackupFailed,
        EventKind::RestoreStarted,
        EventKind::RestoreCompleted,
        EventKind::RestoreFailed,
        EventKind::ForgetCompleted,
        EventKind::ForgetFailed,
        EventKind::PruneStarted,
        EventKind::PruneCompleted,
        EventKind::PruneFailed,
        EventKind::CheckCompleted,
        EventKind::CheckFailed,
        EventKind::CopyStarted,
        EventKind::CopyCompleted,
        EventKind::CopyFailed,
    ];

    /// The event's name, such as `EVT_BACKUP_COMPLETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BackupStarted => "EVT_BACKUP_STARTED",
            EventKind::BackupCompleted => "EVT_BACKUP_COMPLETED",
            EventKind::BackupFailed => "EVT_BACKUP_FAILED",
            EventKind::RestoreStarted => "AGT_RESTORE_STARTED",
            EventKind::RestoreCompleted => "EVT_RESTORE_COMPLETED",
            EventKind::RestoreFailed => "EVT_RESTORE_FAILED",
            EventKind::ForgetCompleted => "EVT_FORGET_COMPLETED",
            EventKind::ForgetFailed => "EVT_FORGET_FAILED",
            EventKind::PruneStarted => "EVT_PRUNE_STARTED",
            EventKind::PruneCompleted => "EVT_PRUNE_COMPLETED",
            EventKind::PruneFailed => "EVT_PRUNE_FAILED",
            EventKind::CheckCompleted => "EVT_CHECK_COMPLETED",
            EventKind::CheckFailed => "EVT_CHECK_FAILED",
            EventKind::CopyStarted => "EVT_COPY_STARTED",
            EventKind::CopyCompleted => "EVT_COPY_COMPLETED",
            EventKind::CopyFailed => "EVT_COPY_FAILED",
        }
    }

    /// The event named `name` (exactly as [`EventKind::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The operation the event belongs to.
    pub fn operation(self) -> Operation {
        match self {
            EventKind::BackupStarted | EventKind::BackupCompleted | EventKind::BackupFailed => {
                Operation::Backup
            }
            EventKind::RestoreStarted | EventKind::RestoreCompleted | EventKind::RestoreFailed => {
                Operation::Restore
            }
            EventKind::ForgetCompleted | EventKind::ForgetFailed => Operation::Forget,
            EventKind::PruneStarted | EventKind::PruneCompleted | EventKind::PruneFailed => {
                Operation::Prune
            }
            EventKind::CheckCompleted | EventKind::CheckFailed => Operation::Check,
            EventKind::CopyStarted | EventKind::CopyCompleted | EventKind::CopyFailed => {
                Operation::Copy
            }
        }
    }

    /// Whether the operation started, completed or failed.
    pub fn phase(self) -> Phase {
        match self {
            EventKind::BackupStarted
            | EventKind::RestoreStarted
            | EventKind::PruneStarted
            | EventKind::CopyStarted => Phase::Started,
            EventKind::BackupCompleted
            | EventKind::RestoreCompleted
            | EventKind::ForgetCompleted
            | EventKind::PruneCompleted
            | EventKind::CheckCompleted
            | EventKind::CopyCompleted => Phase::Completed,
            EventKind::BackupFailed
            | EventKind::RestoreFailed
            | EventKind::ForgetFailed
            | EventKind::PruneFailed
            | EventKind::CheckFailed
            | EventKind::CopyFailed => Phase::Failed,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::from_name(s).ok_or_else(|| UnknownEvent(s.to_string()))
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is not an event's; the message lists the valid names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEvent(pub String);

impl fmt::Display for UnknownEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        write!(
            f,
            "unknown event {:?}: expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownEvent {}

/// Where an operation is: started, completed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The operation begins.
    Started,
    /// The operation ended successfully.
    Completed,
    /// The operation ended with an error (or, for check, found damage).
    Failed,
}

/// An operation that emits events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `backup` (paths or standard input).
    Backup,
    /// `restore`.
    Restore,
    /// `forget`.
    Forget,
    /// `prune`.
    Prune,
    /// `check`.
    Check,
    /// `copy` (snapshots from another repository into this one).
    Copy,
}

impl Operation {
    /// The operation's name: `backup`, `restore`, `forget`, `prune`, `check` or `copy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Forget => "forget",
            Operation::Prune => "prune",
            Operation::Check => "check",
            Operation::Copy => "copy",
        }
    }

    /// Its started event, if it has one (forget and check have none).
    pub fn started(self) -> Option<EventKind> {
        match self {
            Operation::Backup => Some(EventKind::BackupStarted),
            Operation::Restore => Some(EventKind::RestoreStarted),
            Operation::Prune => Some(EventKind::PruneStarted),
            Operation::Copy => Some(EventKind::CopyStarted),
            Operation::Forget | Operation::Check => None,
        }
    }

    /// Its completed event.
    pub fn completed(self) -> EventKind {
        match self {
            Operation::Backup => EventKind::BackupCompleted,
            Operation::Restore => EventKind::RestoreCompleted,
            Operation::Forget => EventKind::ForgetCompleted,
            Operation::Prune => EventKind::PruneCompleted,
            Operation::Check => EventKind::CheckCompleted,
            Operation::Copy => EventKind::CopyCompleted,
        }
    }

    /// Its failed event.
    pub fn failed(self) -> EventKind {
        match self {
            Operation::Backup => EventKind::BackupFailed,
            Operation::Restore => EventKind::RestoreFailed,
            Operation::Forget => EventKind::ForgetFailed,
            Operation::Prune => EventKind::PruneFailed,
            Operation::Check => EventKind::CheckFailed,
            Operation::Copy => EventKind::CopyFailed,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One event. As JSON (`serde_json::to_string`), an object whose key `event` holds the name;
/// every other key is always present, `null` when it does not apply:
///
/// ```json
/// {"event":"EVT_BACKUP_COMPLETED","time":"2026-11-20T01:00:04.512Z",
///  "operation_id":"5f0c...","operation":"backup","job":"nightly","repository":"/backups/app",
///  "snapshot_id":"4f1c2a9b...","files":1204,"bytes_read":52428800,"bytes_added":1048576,
///  "bytes_written":null,"bytes_freed":null,"snapshots_removed":null,"problems":null,
///  "warnings":0,"duration_seconds":4.5,"error":null}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Event {
    /// The event's name.
    pub event: EventKind,
    /// When it happened: RFC 3339 in UTC with milliseconds (`2026-11-20T01:00:04.512Z`), so
    /// that times sort as strings.
    pub time: String,
    /// Unique per operation run: a started event and its completed or failed event share it.
    pub operation_id: String,
    /// The operation.
    pub operation: Operation,
    /// The job the operation runs for ([`Repository::set_job`]), if any.
    pub job: Option<String>,
    /// The repository's location.
    pub repository: String,
    /// The snapshot written (backup), read (restore) or `None`.
    pub snapshot_id: Option<String>,
    /// Files backed up (new, changed and unchanged) or restored.
    pub files: Option<u64>,
    /// Bytes read: from the sources (backup; unchanged files are not read), from the
    /// repository (check with `--read-data`) or from the source repository (copy).
    pub bytes_read: Option<u64>,
    /// Bytes added to the repository (backup, copy; stored size).
    pub bytes_added: Option<u64>,
    /// Bytes of file content written (restore).
    pub bytes_written: Option<u64>,
    /// Bytes the repository shrank by (prune).
    pub bytes_freed: Option<u64>,
    /// Snapshots removed (forget).
    pub snapshots_removed: Option<u64>,
    /// Damage found (check), or snapshots that could not be copied (copy).
    pub problems: Option<u64>,
    /// Paths that could not be backed up or restored fully, or harmless check findings.
    pub warnings: Option<u64>,
    /// How long the operation ran, in seconds (completed and failed events).
    pub duration_seconds: Option<f64>,
    /// Why the operation failed (failed events).
    pub error: Option<String>,
}

impl Event {
    /// An event of `kind` about `repository`, now, with a new operation id and no figures.
    pub fn new(kind: EventKind, repository: impl Into<String>) -> Self {
        Self {
            event: kind,
            time: now_rfc3339(),
            operation_id: new_operation_id(),
            operation: kind.operation(),
            job: None,
            repository: repository.into(),
            snapshot_id: None,
            files: None,
            bytes_read: None,
            bytes_added: None,
            bytes_written: None,
            bytes_freed: None,
            snapshots_removed: None,
            problems: None,
            warnings: None,
            duration_seconds: None,
            error: None,
        }
    }

    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Receives events. Called on the operation's thread; it should return quickly (or bound the
/// time it takes, as [`crate::HookSink`] does), since the operation waits for it.
pub trait EventSink: Send + Sync {
    /// Handles one event. Failures are the sink's own business: it cannot fail the operation.
    fn emit(&self, event: &Event);
}

/// An [`EventSink`] calling a closure: `FnSink::new(|event: &Event| ...)`.
pub struct FnSink<F>(pub F);

impl<F: Fn(&Event) + Send + Sync> FnSink<F> {
    /// A sink calling `f` for every event.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSink")
    }
}

impl<F: Fn(&Event) + Send + Sync> EventSink for FnSink<F> {
    fn emit(&self, event: &Event) {
        (self.0)(event);
    }
}

/// Sends every event to the channel; a closed channel drops it.
impl EventSink for crossbeam_channel::Sender<Event> {
    fn emit(&self, event: &Event) {
        let _ = self.send(event.clone());
    }
}

/// Sends every event to the channel; a closed channel drops it.
impl EventSink for std::sync::mpsc::Sender<Event> {
    fn emit(&self, event: &Event) {
        let _ = self.send(event.clone());
    }
}

/// The sinks and job name of a repository.
#[derive(Clone, Default)]
pub(crate) struct Events {
    sinks: Vec<Arc<dyn EventSink>>,
    job: Option<String>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("sinks", &self.sinks.len())
            .field("job", &self.job)
            .finish()
    }
}

impl Events {
    fn emit(&self, event: &Event) {
        emit_to(&self.sinks, event);
    }
}

/// Hands `event` to each of `sinks`, in order; a sink that panics is ignored.
pub(crate) fn emit_to(sinks: &[Arc<dyn EventSink>], event: &Event) {
    for sink in sinks {
        // A panicking sink must not take the operation down with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.emit(event)));
    }
}

/// What an operation's outcome tells its completed (or failed) event.
pub(crate) trait Observed {
    /// Fills the event's figures (and snapshot id) from the outcome.
    fn describe(&self, event: &mut Event);
    /// Why an operation that returned an outcome still failed (check found damage).
    fn failure(&self) -> Option<String> {
        None
    }
}

impl Repository {
    /// Adds a sink: every later operation's events reach it (after the sinks added before).
    pub fn add_event_sink(&mut self, sink: Arc<dyn EventSink>) {
        self.events.sinks.push(sink);
    }

    /// Names the job later events carry (`None`: no job).
    pub fn set_job(&mut self, job: Option<String>) {
        self.events.job = job;
    }

    /// The job events carry; see [`Repository::set_job`].
    pub fn job(&self) -> Option<&str> {
        self.events.job.as_deref()
    }

    /// Runs one operation between its events: the started event (if the operation has one),
    /// then `run`, then the completed event with the outcome's figures or the failed event
    /// with the error.
    pub(crate) fn observed<T: Observed>(
        &self,
        operation: Operation,
        snapshot_id: Option<String>,
        run: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.events.sinks.is_empty() {
            return run();
        }
        let started = Instant::now();
        let mut event = Event::new(operation.completed(), self.location());
        event.job = self.events.job.clone();
        event.snapshot_id = snapshot_id;
        if let Some(kind) = operation.started() {
            event.event = kind;
            self.events.emit(&event);
        }
        let result = run();
        event.time = now_rfc3339();
        event.duration_seconds = Some(started.elapsed().as_secs_f64());
        match &result {
            Ok(outcome) => {
                outcome.describe(&mut event);
                event.event = operation.completed();
                if let Some(failure) = outcome.failure() {
                    event.event = operation.failed();
                    event.error = Some(failure);
                }
            }
            Err(error) => {
                event.event = operation.failed();
                event.error = Some(error_message(error));
            }
        }
        self.events.emit(&event);
        result
    }
}

/// The error and its causes, each said once (several errors already include their cause in
/// their own message), joined by `: `: the text the events, the backup log and the command
/// line show.
pub fn error_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        next = cause.source();
    }
    message
}

/// Now, as RFC 3339 in UTC with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// 16 random bytes in hex (time, process and a counter if the system has no randomness).
fn new_operation_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        bytes[12..].copy_from_slice(&(count as u32).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn count(n: usize) -> Option<u64> {
    Some(n as u64)
}

impl Observed for BackupOutcome {
    fn describe(&self, event: &mut Event) {
        let s = &self.snapshot.summary;
        event.snapshot_id = Some(self.snapshot_id.to_string());
        event.files = Some(s.files_new + s.files_changed + s.files_unchanged);
        event.bytes_read = Some(s.bytes_read);
        event.bytes_added = Some(s.bytes_added);
        event.warnings = count(self.warnings.len());
    }
}

impl Observed for RestoreOutcome {
    fn describe(&self, event: &mut Event) {
        event.files = Some(self.files);
        event.bytes_written = Some(self.bytes);
        event.warnings = count(self.warnings.len());
    }
}

impl Observed for ForgetOutcome {
    fn describe(&self, event: &mut Event) {
        event.snapshots_removed = count(if self.dry_run { 0 } else { self.removed.len() });
    }
}

impl Observed for PruneOutcome {
    fn describe(&self, event: &mut Event) {
        event.bytes_freed = Some(if self.dry_run { 0 } else { self.bytes_freed() });
    }
}

impl Observed for CheckOutcome {
    fn describe(&self, event: &mut Event) {
        event.bytes_read = Some(self.bytes_read);
        event.problems = count(self.errors.len());
        event.warnings = count(self.warnings.len());
    }

    fn failure(&self) -> Option<String> {
        let first = self.errors.first()?;
        let more = match self.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!(
            "check found {} error(s): {}: {}{more}",
            self.errors.len(),
            first.object,
            first.message
        ))
    }
}

impl Observed for CopyOutcome {
    fn describe(&self, event: &mut Event) {
        event.bytes_read = Some(self.bytes_read());
        event.bytes_added = Some(self.bytes_added());
        event.problems = count(self.failed());
    }

    fn failure(&self) -> Option<String> {
        let first = self.snapshots.iter().find_map(|s| match &s.status {
            crate::commands::copy::CopyStatus::Failed { error } => Some(error),
            _ => None,
        })?;
        let more = match self.failed() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!("{first}{more}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(EventKind::ALL.len(), 16);
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(*kind));
            let phase = kind.phase();
            let op = kind.operation();
            match phase {
                Phase::Started => assert_eq!(op.started(), Some(*kind)),
                Phase::Completed => assert_eq!(op.completed(), *kind),
                Phase::Failed => assert_eq!(op.failed(), *kind),
            }
        }
        assert_eq!(EventKind::from_name("EVT_NOPE"), None);
        let err = "EVT_NOPE".parse::<EventKind>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("AGT_RESTORE_STARTED")));
    }

    #[test]
    fn json_shape() {
        let mut event = Event::new(EventKind::BackupFailed, "/r");
        event.error = Some("boom".to_string());
        let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap_or_default();
        assert_eq!(value["event"], "EVT_BACKUP_FAILED");
        assert_eq!(value["operation"], "backup");
        assert_eq!(value["error"], "boom");
        assert!(value["snapshot_id"].is_null());
        assert_eq!(event.operation_id.len(), 32);
        assert_eq!(event.time.len(), "2026-11-20T01:00:04.512Z".len());
    }
}
