//! The respaldo engine: open a repository, back up, restore and look inside snapshots.
//!
//! [`Repository`] is the entry point; each command is a method on it with an options struct
//! and a result struct (`commands/`). The engine never prints: it returns results and reports
//! progress through [`Progress`]. Argument parsing and terminal output belong to the CLI.
//!
//! Jobs of a JSON [`Config`] run through [`run_job`] (backup, retention, prune, with hooks
//! and the backup log), and [`run_service`] runs them on their schedules until its
//! [`ServiceControl`] stops it.

mod backup_log;
mod commands;
mod config;
mod error;
mod events;
mod hooks;
mod job_lock;
mod jobs;
mod lock;
mod progress;
mod repository;
mod service;
#[cfg(test)]
mod test_data;

pub use backup_log::{BACKUP_LOG_SCHEMA, BackupLog, LogEntry, LogStatus, default_log_path};
pub use config::{
    CONFIG_ENV, Config, DEFAULT_MAX_UNUSED, Job, PasswordSource, Retention, Schedule,
    default_config_path, next_run, parse_duration, parse_keep_within, parse_max_unused,
};
pub use events::{
    Event, EventKind, EventSink, FnSink, Operation, Phase, UnknownEvent, error_message,
};
pub use hooks::{DEFAULT_HOOK_TIMEOUT, HOOK_EVENT_VAR, HookCommand, HookSink, HookWarning};

pub use commands::analyze::{
    Added, AnalyzeOptions, AnalyzeOutcome, INDEX_BYTES_PER_CHUNK, INDEX_FILE_BYTES_PER_CHUNK,
    REDB_BYTES_PER_CHUNK, SpecReport, VersionReport, analyze,
};
pub use commands::backup::{BackupOptions, BackupOutcome};
pub use commands::check::{
    AffectedFile, CheckOptions, CheckOutcome, DataSubset, MAX_AFFECTED, Problem, ReadData,
};
pub use commands::copy::{CopiedSnapshot, CopyOptions, CopyOutcome, CopyStatus};
pub use commands::diff::DiffEntry;
pub use commands::forget::{ForgetGroup, ForgetOptions, ForgetOutcome};
pub use commands::key::KeyEntry;
pub use commands::ls::ListedNode;
pub use commands::prune::{PruneOptions, PruneOutcome};
pub use commands::repair::{
    IndexRepairOutcome, RepairNote, RepairedSnapshot, SnapshotRepairOptions, SnapshotRepairOutcome,
};
pub use commands::restore::{RestoreOptions, RestoreOutcome};
pub use commands::stats::Stats;
pub use error::{Error, Result};
pub use jobs::{
    JobError, JobOptions, JobOutcome, JobStatus, JobStep, LogTarget, ProgressFn, run_job,
};
pub use lock::{LockKind, LockStatus, REFRESH_EVERY, RepositoryLock, STALE_AFTER, staleness};
pub use progress::{NoProgress, Progress, Warning};
pub use repository::{
    InitOptions, Repository, SnapshotSpec, default_cache_dir, format_time_ns, hostname, username,
};
pub use service::{
    ServiceControl, ServiceNotice, ServiceOptions, ServiceSummary, load_service_config, run_service,
};

pub use chunk_store::{
    ChunkId, FORMAT_MAJOR, KdfParams, Location, LockInfo, MAX_KDF, RequestPolicy, S3Location,
};
pub use chunker::{ChunkerParams, ChunkingSpec, DedupEstimate, PageSize, SizeBucket};
pub use snapshot_index::{
    Catalog, Change, ChangeKind, Decision, GroupBy, GroupKey, KeepReason, Node, NodeKind,
    ParseGroupByError, Period, RetentionPolicy, Snapshot, SnapshotEntry, SnapshotFilter, Summary,
};
