//! Live SQLite databases: a consistent copy of each, taken with SQLite's online backup API
//! while other processes go on writing, stored in the snapshot in place of the live file.
//!
//! Before the walk starts, every database named in [`BackupOptions::sqlite`] is copied into a
//! private temporary folder (under the repository's cache folder, else the system's temporary
//! folder), removed when the backup ends. A backup killed with SIGKILL cannot remove its own:
//! the next backup with the same cache folder removes the folders under it whose process, on
//! this host, is gone (those in the system's temporary folder are left to the system). The walker then treats the database's path
//! as usual (its node keeps the live file's mode, owner and times) but the workers read the
//! copy, the node is flagged [`FLAG_SQLITE`], and the database's `-wal`, `-shm` and `-journal`
//! files are left out: the copy already holds every committed transaction, and those files
//! belong to the live database only.
//!
//! The copy is one committed state in both journal modes:
//! - WAL: the whole copy is one step, that is one read transaction. Readers never block
//!   writers in WAL mode, so writers go on committing meanwhile.
//! - rollback journal (`DELETE`, `TRUNCATE`, `PERSIST`): each step holds the shared lock that
//!   keeps writers from committing, so the copy goes in steps of [`STEP_PAGES`] pages (a few
//!   milliseconds each) with a pause between them in which writers commit. A commit by another
//!   connection makes SQLite restart the copy; after [`MAX_RESTARTS`] restarts the rest is
//!   copied in one step, which holds writers back for the time it takes to copy the whole
//!   file (milliseconds for small databases; about a second per few hundred MiB).
//!
//! A database that cannot be opened or copied is a warning, like an unreadable file: the
//! backup goes on without it.
//!
//! [`BackupOptions::sqlite`]: super::BackupOptions::sqlite

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use snapshot_index::{FLAG_SQLITE, Node, NodeKind};
use tempfile::TempDir;

use super::pipeline::Context;
use crate::error::{Error, Result};

/// Pages copied per step in rollback-journal mode (4 MiB at the default 4 KiB page size).
const STEP_PAGES: i32 = 1024;
/// Pause between two steps, in which writers commit.
const STEP_PAUSE: Duration = Duration::from_millis(5);
/// Restarts (a writer committed between two steps) after which the rest is copied in one step.
const MAX_RESTARTS: u32 = 3;
/// Pause before a step is tried again when a writer holds the database locked.
const BUSY_PAUSE: Duration = Duration::from_millis(10);
/// How long the copy waits in all for writers that keep the database locked.
const BUSY_LIMIT: Duration = Duration::from_secs(60);
/// Suffixes of the files beside a database that belong to the live database.
pub(crate) const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The databases of one backup and their consistent copies.
#[derive(Default)]
pub(crate) struct SqliteSources {
    /// Each database by its absolute path: its copy, or `None` when it could not be copied (a
    /// warning was given and it stays out of the snapshot).
    copies: HashMap<PathBuf, Option<PathBuf>>,
    /// The private folder holding the copies, removed on drop.
    _folder: Option<TempDir>,
}

impl SqliteSources {
    /// Copies each database in `databases` (absolute, clean paths). A path that does not exist
    /// is left to the walker (which warns); one that is not a regular file or cannot be copied
    /// is a warning. Errors only when no temporary folder can be made.
    pub(crate) fn capture(
        ctx: &Context<'_>,
        databases: &[PathBuf],
        cache_dir: &Path,
    ) -> Result<Self> {
        if databases.is_empty() {
            return Ok(Self::default());
        }
        let folder = temporary_folder(cache_dir)?;
        let mut copies = HashMap::new();
        for (i, database) in databases.iter().enumerate() {
            let meta = match std::fs::symlink_metadata(database) {
                Ok(meta) => meta,
                // The walker reports it missing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    ctx.warn(
                        database,
                        format!("cannot read the SQLite database's metadata: {e}; it is not in the snapshot"),
                    );
                    copies.insert(database.clone(), None);
                    continue;
                }
            };
            if !meta.file_type().is_file() {
                let what = if meta.file_type().is_symlink() {
                    "a symbolic link: name the database file itself"
                } else {
                    "not a regular file"
                };
                ctx.warn(
                    database,
                    format!("cannot back up as a SQLite database: it is {what}; it is not in the snapshot"),
                );
                copies.insert(database.clone(), None);
                continue;
            }
            let copy = folder.path().join(format!("{i}.db"));
            ctx.progress.file_started(database);
            match copy_database(database, &copy) {
                Ok(()) => {
                    copies.insert(database.clone(), Some(copy));
                }
                Err(e) => {
                    remove_with_companions(&copy);
                    ctx.warn(
                        database,
                        format!(
                            "cannot copy the SQLite database consistently: {e}; it is not in the snapshot"
                        ),
                    );
                    copies.insert(database.clone(), None);
                }
            }
        }
        Ok(Self {
            copies,
            _folder: Some(folder),
        })
    }

    /// Whether the walker leaves `path` out: a database that could not be copied (already
    /// warned about), or the `-wal`, `-shm` or `-journal` file of a database.
    pub(crate) fn leaves_out(&self, path: &Path) -> bool {
        if self.copies.is_empty() {
            return false;
        }
        if let Some(None) = self.copies.get(path) {
            return true;
        }
        let bytes = path.as_os_str().as_bytes();
        COMPANION_SUFFIXES.iter().any(|suffix| {
            bytes
                .strip_suffix(suffix.as_bytes())
                .is_some_and(|base| self.copies.contains_key(Path::new(OsStr::from_bytes(base))))
        })
    }

    /// For a database's file node: flags it [`FLAG_SQLITE`], sets its size to the copy's and
    /// returns the copy, whose content the workers store instead of the live file's.
    pub(crate) fn substitute(&self, path: &Path, node: &mut Node) -> Option<PathBuf> {
        let copy = self.copies.get(path)?.as_ref()?;
        if !matches!(node.kind, NodeKind::File | NodeKind::Hardlink) {
            return None;
        }
        node.flags |= FLAG_SQLITE;
        if let Ok(meta) = std::fs::metadata(copy) {
            node.size = meta.len();
        }
        Some(copy.clone())
    }
}

/// A new private folder (mode 0700) for the copies, `CACHE/tmp/sqlite-PID-HOST-XXXXXX`, after
/// removing the folders that processes of this host which are gone left there (a backup killed
/// with SIGKILL cannot remove its own). Falls back to the system's temporary folder when the
/// cache folder cannot hold it.
fn temporary_folder(cache_dir: &Path) -> Result<TempDir> {
    let root = cache_dir.join("tmp");
    let prefix = format!(
        "sqlite-{}-{}-",
        std::process::id(),
        crate::repository::hostname()
    );
    let in_cache = std::fs::create_dir_all(&root).ok().and_then(|()| {
        remove_abandoned(&root);
        tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&root)
            .ok()
    });
    match in_cache {
        Some(folder) => Ok(folder),
        None => tempfile::Builder::new()
            .prefix(&format!("respaldo-{prefix}"))
            .tempdir()
            .map_err(Error::io(
                "create a temporary folder for SQLite copies in",
                std::env::temp_dir(),
            )),
    }
}

/// Removes the copy folders under `root` whose process, on this host, is gone. Best effort:
/// what cannot be removed now is tried again by the next backup.
fn remove_abandoned(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let host = crate::repository::hostname();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("sqlite-")) else {
            continue;
        };
        // `PID-HOST-RANDOM`: the random part has no `-`, a host name may.
        let Some((pid, rest)) = rest.split_once('-') else {
            continue;
        };
        let Some((owner, _random)) = rest.rsplit_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if owner == host && !crate::lock::process_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes `path` and the files SQLite may have left beside it.
fn remove_with_companions(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in COMPANION_SUFFIXES {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Copies the database `source` into the new file `dest` with the online backup API: the copy
/// is one committed state of the database, whatever writers do meanwhile. The message of the
/// error names SQLite's error.
pub(crate) fn copy_database(source: &Path, dest: &Path) -> std::result::Result<(), String> {
    let sqlite = |e: rusqlite::Error| format!("SQLite error: {e}");
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    // Reading the header waits for a writer's commit like any reader; the steps below wait
    // for locks themselves, so that no step sits in a busy handler.
    src.busy_timeout(BUSY_LIMIT).map_err(sqlite)?;
    let mode = journal_mode(&src).map_err(sqlite)?;
    src.busy_timeout(Duration::ZERO).map_err(sqlite)?;
    let mut dst = Connection::open(dest).map_err(sqlite)?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(sqlite)?;
        // WAL: one read transaction, which blocks no writer. Rollback journal: short steps.
        let pages = if mode == "wal" { -1 } else { STEP_PAGES };
        let mut restarts = 0u32;
        let mut copied_before = 0i32;
        let mut busy = Duration::ZERO;
        loop {
            let step = if restarts >= MAX_RESTARTS { -1 } else { pages };
            match backup.step(step).map_err(sqlite)? {
                StepResult::Done => break,
                StepResult::More => {
                    let progress = backup.progress();
                    let copied = progress.pagecount - progress.remaining;
                    // Each step copies more pages than the one before unless the copy restarted.
                    if copied <= copied_before {
                        restarts += 1;
                    }
                    copied_before = copied;
                    std::thread::sleep(STEP_PAUSE);
                }
                // Busy or Locked: a writer holds the lock; anything new (the enum is
                // non-exhaustive) is waited out the same way.
                _ => {
                    if busy >= BUSY_LIMIT {
                        return Err(format!(
                            "the database stayed locked by writers for {}s",
                            BUSY_LIMIT.as_secs()
                        ));
                    }
                    let started = Instant::now();
                    std::thread::sleep(BUSY_PAUSE);
                    busy += started.elapsed();
                }
            }
        }
    }
    dst.close().map_err(|(_, e)| sqlite(e))?;
    src.close().map_err(|(_, e)| sqlite(e))?;
    Ok(())
}

/// The database's journal mode, lowercase (`wal`, `delete`, ...). Reading it also checks that
/// the file is a database.
fn journal_mode(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0))
        .map(|mode| mode.to_ascii_lowercase())
}
