//! The one error type of the engine.

use std::path::PathBuf;

/// What can go wrong in an engine operation. Every variant names the path or object, and the
/// message says what the user can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository storage layer failed.
    #[error(transparent)]
    Store(#[from] chunk_store::Error),
    /// Trees, snapshots or the catalog failed.
    #[error(transparent)]
    Snapshot(#[from] snapshot_index::Error),
    /// An I/O operation on a local path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// A backup source path does not exist or cannot be read at all.
    #[error("cannot back up {path}: {reason}")]
    Source {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A restore stopped at an error; the files it names were not restored (their content
    /// could not be read), nor any file not yet finished when it stopped.
    #[error(
        "restore stopped: {source}. Not restored: {}{}. `respaldo check --read-data` names \
         all damaged data; `restore --exclude PATH` restores the rest",
        files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if *more > 0 { format!(" and {more} more") } else { String::new() }
    )]
    RestoreStopped {
        /// The first files whose content could not be read.
        files: Vec<PathBuf>,
        /// How many more there were.
        more: usize,
        /// What stopped it.
        #[source]
        source: Box<Error>,
    },
    /// A snapshot holds a path that would be written outside the restore target.
    #[error("refusing to restore {path:?}: {reason}; nothing was written outside the target")]
    UnsafePath {
        /// The path in the snapshot.
        path: String,
        /// Why it is unsafe.
        reason: String,
    },
    /// Another process holds a lock that conflicts with the one asked for.
    #[error(
        "the repository is locked: {holder}. {}",
        locked_hint(stale.as_deref(), *remove_all)
    )]
    Locked {
        /// The conflicting lock, described.
        holder: String,
        /// Why it looks stale, if it does.
        stale: Option<String>,
        /// Whether only `unlock --remove-all` can remove it (it cannot be read).
        remove_all: bool,
    },
    /// Another run of the same job (on this machine) has not ended.
    #[error(
        "job {job} is already running ({holder}; lock {lock}): wait for it to end, or give \
         --retry-lock DURATION to wait for it"
    )]
    JobRunning {
        /// The job.
        job: String,
        /// The run holding it, described.
        holder: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// A lock this operation held was lost; it stopped before committing anything.
    #[error(
        "lost the repository lock {lock}: {reason}. Nothing was committed; another process \
         (prune?) may have changed the repository meanwhile: run the operation again"
    )]
    LockLost {
        /// The lock file.
        lock: String,
        /// How it was lost.
        reason: String,
    },
    /// `forget` could not delete a snapshot manifest. The snapshots in `removed` were deleted
    /// before it (oldest first); the failed one and the `remaining - 1` after it are still there.
    #[error(
        "cannot delete snapshot manifest {file}: {reason}. {}",
        crate::commands::forget::incomplete_hint(removed, *remaining)
    )]
    ForgetIncomplete {
        /// The manifest that could not be deleted (`snapshots/<id>`).
        file: String,
        /// Why.
        reason: String,
        /// The snapshots removed before the failure, oldest first.
        removed: Vec<chunker::ChunkId>,
        /// How many of the snapshots to remove are still there, the failed one included.
        remaining: usize,
    },
    /// `copy` could not read, from the source repository, something a snapshot needs (a
    /// damaged or missing blob or tree): that snapshot was not copied, and no manifest refers
    /// to what was stored for it in the destination.
    #[error(
        "snapshot {} was not copied: cannot read {path} from the source repository: {source}. \
         Nothing in the destination refers to it; `respaldo repair snapshots` in the source \
         repository writes a copy of it without the damaged files, which can then be copied",
        crate::commands::copy::short(snapshot)
    )]
    CopySource {
        /// The snapshot's id in the source.
        snapshot: chunker::ChunkId,
        /// The path in the snapshot whose data or folder could not be read.
        path: String,
        /// What went wrong (it names the pack or blob).
        #[source]
        source: Box<Error>,
    },
    /// `copy` stopped on an error writing the destination (or losing its lock). The snapshots
    /// copied before it are complete.
    #[error(
        "copy stopped: {source}. {copied} snapshot(s) were copied before it; once the cause is \
         fixed, run the copy again: what the destination already has is skipped"
    )]
    CopyStopped {
        /// How many snapshots were copied before the error.
        copied: usize,
        /// What stopped it.
        #[source]
        source: Box<Error>,
    },
    /// Restored content does not match what the snapshot says.
    #[error("restored {path} does not match the snapshot: {reason}")]
    Verify {
        /// The restored file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// `key passwd` added the new key but could not remove the old one: both passwords open
    /// the repository until the old key is removed.
    #[error(
        "the new key keys/{added} was added, but the old key keys/{old} could not be removed: \
         {reason}. Both the old and the new password open the repository: remove the old key \
         with `respaldo key remove {old_short}` (using the new password)"
    )]
    PasswordChangeIncomplete {
        /// The new key file's name.
        added: String,
        /// The old key file's name (the key that opened the session).
        old: String,
        /// Its first 8 hex digits, as `key list` shows them.
        old_short: String,
        /// Why it could not be removed.
        reason: String,
    },
    /// A restored SQLite database failed `PRAGMA integrity_check`; the file at its place was
    /// left as it was.
    #[error(
        "restored SQLite database {path} fails its integrity check, so it was not put in place \
         (the existing file is untouched): {report}"
    )]
    DatabaseCorrupt {
        /// Where the database was to be restored.
        path: PathBuf,
        /// The first lines of the check's report, or SQLite's error.
        report: String,
    },
    /// The SQLite database a restore would replace is in use by another process.
    #[error("{path} is open in {holder}: stop it, or pass --force")]
    DatabaseInUse {
        /// The database at the restore destination.
        path: PathBuf,
        /// Who holds it (`another process (pid 123, app)`, ...).
        holder: String,
    },
    /// The config file cannot be read, or a field of it is invalid.
    #[error(
        "config {}: {}",
        file.display(),
        crate::config::config_detail(field, message, *position)
    )]
    Config {
        /// The config file.
        file: PathBuf,
        /// The field, as a path such as `jobs.nightly.schedule` (empty for the whole file).
        field: String,
        /// What is wrong and what is expected.
        message: String,
        /// Line and column (from 1) in the file, where the JSON parser knows them.
        position: Option<(usize, usize)>,
    },
    /// The backup log database cannot be opened, written or read.
    #[error("backup log {path}: {reason}")]
    BackupLog {
        /// The SQLite database.
        path: PathBuf,
        /// What went wrong and what the user can do.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// An invalid-argument error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// Whether the error means there is no repository at the location.
    pub fn is_no_repository(&self) -> bool {
        matches!(self, Error::Store(chunk_store::Error::NoRepository { .. }))
    }

    /// Whether the error means another process holds a conflicting lock (of the repository,
    /// or of the job).
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. } | Error::JobRunning { .. })
    }

    /// Whether the error is about the config file.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. })
    }

    /// Whether the error means the password was wrong (or missing).
    pub fn is_wrong_password(&self) -> bool {
        matches!(self, Error::Store(chunk_store::Error::WrongPassword { .. }))
    }
}

fn locked_hint(stale: Option<&str>, remove_all: bool) -> String {
    match (stale, remove_all) {
        (_, true) => "If no other respaldo process uses the repository, remove it with \
                      `respaldo unlock --remove-all`"
            .to_string(),
        (Some(why), false) => format!(
            "The lock looks stale: {why}. If no other respaldo process uses the repository, \
             remove it with `respaldo unlock`"
        ),
        (None, false) => "Wait for that operation to finish, or let this one wait for it \
                          with --retry-lock DURATION"
            .to_string(),
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
