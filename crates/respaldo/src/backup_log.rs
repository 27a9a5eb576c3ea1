//! The backup log: one row per operation in a SQLite table `BackupLog`, which users query with
//! plain SQL (`docs/backup-log.md` documents the schema).
//!
//! The table may live in a database of its own (by default [`default_log_path`]) or in an
//! application's database next to its tables: the log creates `BackupLog` if it is missing and
//! touches nothing else (no other table, no `PRAGMA user_version`, no journal mode change).
//! Writes are single short statements with a busy timeout, so an application writing to the
//! same database at the same time only makes them wait. No connection stays open between two
//! writes: the database can be replaced under a running operation (restore of the very database
//! that holds the log), and the next write goes to the file now at the path.
//!
//! [`BackupLog`] is an [`EventSink`]: a started event inserts a `running` row, the completed or
//! failed event of the same operation updates it (or inserts a finished row when there was no
//! started event, as for forget and check). A row that cannot be written is reported to the
//! warning callback ([`BackupLog::on_warning`]) and never breaks the operation.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Phase};

/// The table's definition, as created by [`BackupLog::open`].
pub const BACKUP_LOG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS BackupLog (
    id INTEGER PRIMARY KEY,
    operation TEXT NOT NULL,
    job TEXT,
    repository TEXT NOT NULL,
    snapshot_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    files INTEGER,
    bytes_read INTEGER,
    bytes_added INTEGER,
    error TEXT
)";

/// The columns every `BackupLog` table must have.
const COLUMNS: [&str; 13] = [
    "id",
    "operation",
    "job",
    "repository",
    "snapshot_id",
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "files",
    "bytes_read",
    "bytes_added",
    "error",
];

/// How long a write waits for another connection (an application's) to release the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The default log database: `$XDG_STATE_HOME/respaldo/log.db`, else
/// `$HOME/.local/state/respaldo/log.db`.
pub fn default_log_path() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_STATE_HOME")
        .map(|p| p.join("respaldo"))
        .or_else(|| var("HOME").map(|p| p.join(".local").join("state").join("respaldo")))
        .map(|dir| dir.join("log.db"))
}

/// The state of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    /// Started and not finished (or its process died: no finished event will come).
    Running,
    /// Completed.
    Success,
    /// Failed; `error` says why.
    Failed,
}

impl LogStatus {
    /// The value stored: `running`, `success` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Running => "running",
            LogStatus::Success => "success",
            LogStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(LogStatus::Running),
            "success" => Some(LogStatus::Success),
            "failed" => Some(LogStatus::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for LogStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Row id, increasing.
    pub id: i64,
    /// `backup`, `restore`, `forget`, `prune` or `check`.
    pub operation: String,
    /// The job, if the operation ran for one.
    pub job: Option<String>,
    /// The repository's location.
    pub repository: String,
    /// The snapshot written (backup) or restored.
    pub snapshot_id: Option<String>,
    /// Running, success or failed.
    pub status: LogStatus,
    /// RFC 3339 in UTC with milliseconds.
    pub started_at: String,
    /// RFC 3339 in UTC with milliseconds; `None` while running.
    pub finished_at: Option<String>,
    /// Milliseconds.
    pub duration_ms: Option<i64>,
    /// Files backed up or restored.
    pub files: Option<i64>,
    /// Bytes read (from the sources, or from the repository by check).
    pub bytes_read: Option<i64>,
    /// Bytes added to the repository (stored size).
    pub bytes_added: Option<i64>,
    /// Why the operation failed.
    pub error: Option<String>,
}

type WarningFn = Box<dyn Fn(&str) + Send + Sync>;

struct State {
    /// Row ids of operations that started and have not finished, by operation id, with the
    /// time they started (which the finishing update also matches, in case the database was
    /// replaced meanwhile and the id now names another row).
    running: HashMap<String, (i64, String)>,
}

/// The `BackupLog` table in one SQLite database; see the module documentation.
pub struct BackupLog {
    path: PathBuf,
    read_only: bool,
    state: Mutex<State>,
    on_warning: Option<WarningFn>,
}

impl fmt::Debug for BackupLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn sql_error(path: &Path, what: &str) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| Error::BackupLog {
        path,
        reason: format!("{what}: {e}"),
    }
}

/// A `u64` figure as SQLite stores it.
fn sql_int(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl BackupLog {
    /// Opens (creating the file, its folder and the table when missing) the log in the SQLite
    /// database at `path`, and makes sure it can be written.
    ///
    /// Errors ([`Error::BackupLog`], naming the path): the folder or file cannot be created,
    /// the database is read-only or not a database, or a `BackupLog` table exists with other
    /// columns.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::BackupLog {
                path: path.to_path_buf(),
                reason: format!("cannot create its folder {}: {e}", parent.display()),
            })?;
        }
        let conn = connect(path, Access::Create)?;
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(sql_error(path, "cannot open it"))?
        {
            return Err(Error::BackupLog {
                path: path.to_path_buf(),
                reason: "cannot write to it (read-only): give a database you can write to, \
                         or disable the log"
                    .to_string(),
            });
        }
        prepare_table(&conn, path)?;
        // Creating the table writes nothing when it exists: prove that a row can be written
        // (a journal or WAL file can be created in the folder, the file is writable), then
        // take it back.
        let probe = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO BackupLog (operation, repository, status, started_at)
                 VALUES ('probe', '', 'running', '')",
                [],
            )?;
            tx.rollback()
        };
        probe().map_err(sql_error(path, "cannot write to it"))?;
        conn.close()
            .map_err(|(_, e)| sql_error(path, "cannot close it")(e))?;
        Ok(Self {
            path: path.to_path_buf(),
            read_only: false,
            state: Mutex::new(State {
                running: HashMap::new(),
            }),
            on_warning: None,
        })
    }

    /// Opens the log at `path` for reading only; nothing is created. A database without the
    /// table has no entries.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        connect(path, Access::Read)?;
        Ok(Self {
            path: path.to_path_buf(),
            read_only: true,
            state: Mutex::new(State {
                running: HashMap::new(),
            }),
            on_warning: None,
        })
    }

    /// Calls `f` with a message (naming the database) whenever an event cannot be recorded.
    pub fn on_warning(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_warning = Some(Box::new(f));
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `event`: what [`EventSink::emit`] does, with the error returned instead of
    /// reported.
    pub fn record(&self, event: &Event) -> Result<()> {
        if self.read_only {
            return Err(Error::BackupLog {
                path: self.path.clone(),
                reason: "opened for reading only: cannot record an event".to_string(),
            });
        }
        let mut state = self.state();
        let state = &mut *state;
        let conn = connect(&self.path, Access::Write)?;
        // The database may have been replaced since (by a restore of it) with one that has no
        // table yet.
        prepare_table(&conn, &self.path)?;
        let fail = sql_error(&self.path, "cannot record an event");
        let phase = event.event.phase();
        if phase == Phase::Started {
            conn.execute(
                "INSERT INTO BackupLog
                     (operation, job, repository, snapshot_id, status, started_at)
                     VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![
                    event.operation.as_str(),
                    event.job,
                    event.repository,
                    event.snapshot_id,
                    event.time
                ],
            )
            .map_err(fail)?;
            let id = conn.last_insert_rowid();
            state
                .running
                .insert(event.operation_id.clone(), (id, event.time.clone()));
            return Ok(());
        }
        let status = if phase == Phase::Failed {
            LogStatus::Failed
        } else {
            LogStatus::Success
        };
        let duration_ms = event
            .duration_seconds
            .map(|s| (s * 1000.0).round().clamp(0.0, i64::MAX as f64) as i64);
        let files = sql_int(event.files);
        let bytes_read = sql_int(event.bytes_read);
        let bytes_added = sql_int(event.bytes_added);
        if let Some((id, started)) = state.running.remove(&event.operation_id) {
            let updated = conn
                .execute(
                    "UPDATE BackupLog SET snapshot_id = ?2, status = ?3, finished_at = ?4,
                     duration_ms = ?5, files = ?6, bytes_read = ?7, bytes_added = ?8, error = ?9
                     WHERE id = ?1 AND status = 'running' AND operation = ?10
                     AND started_at = ?11",
                    params![
                        id,
                        event.snapshot_id,
                        status.as_str(),
                        event.time,
                        duration_ms,
                        files,
                        bytes_read,
                        bytes_added,
                        event.error,
                        event.operation.as_str(),
                        started
                    ],
                )
                .map_err(sql_error(&self.path, "cannot record an event"))?;
            if updated == 1 {
                return Ok(());
            }
            // The running row is gone (deleted, or the database was replaced by a restore of
            // it): insert the finished one below.
        }
        let started_at = started_at(event);
        conn.execute(
            "INSERT INTO BackupLog
                 (operation, job, repository, snapshot_id, status, started_at, finished_at,
                  duration_ms, files, bytes_read, bytes_added, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                event.operation.as_str(),
                event.job,
                event.repository,
                event.snapshot_id,
                status.as_str(),
                started_at,
                event.time,
                duration_ms,
                files,
                bytes_read,
                bytes_added,
                event.error
            ],
        )
        .map_err(sql_error(&self.path, "cannot record an event"))?;
        Ok(())
    }

    /// The `limit` most recent rows, newest first.
    pub fn entries(&self, limit: usize) -> Result<Vec<LogEntry>> {
        let access = if self.read_only {
            Access::Read
        } else {
            Access::Write
        };
        let conn = connect(&self.path, access)?;
        let fail = || sql_error(&self.path, "cannot read the BackupLog table");
        let exists: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'BackupLog'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail())?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = conn
            .prepare(
                "SELECT id, operation, job, repository, snapshot_id, status, started_at,
                        finished_at, duration_ms, files, bytes_read, bytes_added, error
                 FROM BackupLog ORDER BY id DESC LIMIT ?1",
            )
            .map_err(fail())?;
        let rows = statement
            .query_map([limit], |row| {
                let status: String = row.get(5)?;
                let status = LogStatus::parse(&status).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        5,
                        rusqlite::types::Type::Text,
                        format!("unknown status {status:?}").into(),
                    )
                })?;
                Ok(LogEntry {
                    id: row.get(0)?,
                    operation: row.get(1)?,
                    job: row.get(2)?,
                    repository: row.get(3)?,
                    snapshot_id: row.get(4)?,
                    status,
                    started_at: row.get(6)?,
                    finished_at: row.get(7)?,
                    duration_ms: row.get(8)?,
                    files: row.get(9)?,
                    bytes_read: row.get(10)?,
                    bytes_added: row.get(11)?,
                    error: row.get(12)?,
                })
            })
            .map_err(fail())?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(fail())
    }
}

/// How [`connect`] opens the database.
#[derive(Clone, Copy)]
enum Access {
    /// Read and write, creating the file when missing ([`BackupLog::open`]).
    Create,
    /// Read and write an existing file: a database removed since the log was opened is an
    /// error, not a new empty file.
    Write,
    /// Read only.
    Read,
}

/// A new connection to the log database, with the busy timeout.
fn connect(path: &Path, access: Access) -> Result<Connection> {
    let flags = match access {
        Access::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Access::Write => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(sql_error(path, "cannot open it"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_error(path, "cannot set a busy timeout"))?;
    Ok(conn)
}

/// When the operation started: the event's time less its duration.
fn started_at(event: &Event) -> String {
    let Some(seconds) = event.duration_seconds else {
        return event.time.clone();
    };
    let finished: Result<jiff::Timestamp, _> = event.time.parse();
    let duration = jiff::SignedDuration::try_from_secs_f64(seconds);
    match (finished, duration) {
        (Ok(finished), Ok(duration)) => finished
            .checked_sub(duration)
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|_| event.time.clone()),
        _ => event.time.clone(),
    }
}

/// Creates the `BackupLog` table when it is missing, and refuses one that is not ours.
fn prepare_table(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute(BACKUP_LOG_SCHEMA, [])
        .map_err(sql_error(path, "cannot create the BackupLog table"))?;
    check_columns(conn, path)
}

/// Refuses a `BackupLog` table (an application's own?) that lacks our columns.
fn check_columns(conn: &Connection, path: &Path) -> Result<()> {
    let fail = || sql_error(path, "cannot read the BackupLog table's columns");
    let mut statement = conn
        .prepare("SELECT name FROM pragma_table_info('BackupLog')")
        .map_err(fail())?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(fail())?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(fail())?;
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| !names.iter().any(|n| n.eq_ignore_ascii_case(c)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::BackupLog {
        path: path.to_path_buf(),
        reason: format!(
            "it has a BackupLog table without the columns {}: it is not respaldo's; log to \
             another database",
            missing.join(", ")
        ),
    })
}

impl EventSink for BackupLog {
    fn emit(&self, event: &Event) {
        if let Err(e) = self.record(event)
            && let Some(warn) = &self.on_warning
        {
            warn(&e.to_string());
        }
    }
}
