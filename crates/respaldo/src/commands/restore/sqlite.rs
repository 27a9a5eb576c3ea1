//! Restoring SQLite databases (nodes flagged [`snapshot_index::FLAG_SQLITE`]).
//!
//! The database is written under a temporary name beside its destination like any file;
//! then, before the rename that puts it in place:
//! 1. the copy is opened and checked with `PRAGMA integrity_check`, which must answer exactly
//!    `ok`; otherwise the copy is removed and the restore of the file fails
//!    ([`Error::DatabaseCorrupt`]), leaving the existing file untouched;
//! 2. unless `force`, the database at the destination must not be in use
//!    ([`Error::DatabaseInUse`]): no process may hold it (or its `-wal` or `-journal`) open
//!    for writing (Linux: every `/proc/PID/fd` this process may read, compared by device and
//!    inode, with the access mode from `/proc/PID/fdinfo`), and SQLite's exclusive lock on it
//!    must be free (taken with a busy timeout of zero and released at once: this catches
//!    writers in the middle of a transaction, also where `/proc` shows nothing);
//! 3. the old database's `-wal`, `-shm` and `-journal` files are removed: left beside the new
//!    database, a stale WAL or hot journal would be replayed into it and corrupt it.
//!
//! With `force`, step 2 is skipped: a process that still has the old database open goes on
//! using the old, replaced file (already unlinked), and whatever it writes after the restore
//! is lost.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Context;
use crate::error::{Error, Result};

/// Lines of a failed integrity check quoted in the error.
const REPORT_LINES: usize = 5;

/// Suffixes of the files SQLite keeps beside a database.
const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The old database's companion files, moved aside while the restored database replaces it:
/// deleted once it has ([`SetAside::discard`]), put back if it could not be
/// ([`SetAside::put_back`]), so that a failed rename never leaves the old database without
/// its write-ahead log or hot journal.
#[must_use]
pub(super) struct SetAside(Vec<(PathBuf, PathBuf)>);

impl SetAside {
    /// The replacement happened: the old companions go.
    pub(super) fn discard(self) {
        for (_, aside) in &self.0 {
            let _ = std::fs::remove_file(aside);
        }
    }

    /// The replacement failed: the old database gets its companions back.
    pub(super) fn put_back(self) {
        for (original, aside) in &self.0 {
            let _ = std::fs::rename(aside, original);
        }
    }
}

/// Checks the restored database at `temp` and makes `dest` ready to be replaced by it: see the
/// module documentation. The caller renames `temp` over `dest` next, then discards or puts
/// back what was set aside.
pub(super) fn prepare_replace(ctx: &Context<'_>, temp: &Path, dest: &Path) -> Result<SetAside> {
    let checked = integrity_check(temp, dest);
    // Whatever SQLite left beside the copy while checking it.
    for suffix in COMPANION_SUFFIXES {
        let _ = std::fs::remove_file(with_suffix(temp, suffix));
    }
    checked?;
    if !ctx.force {
        ensure_unused(dest)?;
    }
    let mut aside = SetAside(Vec::new());
    for suffix in COMPANION_SUFFIXES {
        let stale = with_suffix(dest, suffix);
        let moved = with_suffix(&stale, ".respaldo-old");
        match std::fs::rename(&stale, &moved) {
            Ok(()) => aside.0.push((stale, moved)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                aside.put_back();
                return Err(Error::io(
                    "move aside the old database's file (it would corrupt the restored one)",
                    stale,
                )(e));
            }
        }
    }
    Ok(aside)
}

/// Runs `PRAGMA integrity_check` on the database at `temp`; errors name `dest`.
fn integrity_check(temp: &Path, dest: &Path) -> Result<()> {
    let corrupt = |report: String| Error::DatabaseCorrupt {
        path: dest.to_path_buf(),
        report,
    };
    // The copy already has the snapshot's mode: SQLite needs to write beside a WAL database
    // to read it, so make it writable for the check.
    let mode = std::fs::metadata(temp)
        .map_err(Error::io("inspect", temp))?
        .permissions()
        .mode();
    let writable = mode & 0o200 != 0;
    if !writable {
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(mode | 0o200))
            .map_err(Error::io("make writable for its integrity check", temp))?;
    }
    let report = run_integrity_check(temp);
    if !writable {
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("set the mode of", temp))?;
    }
    match report {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) if lines.is_empty() => Err(corrupt("the check returned nothing".to_string())),
        Ok(lines) => {
            let mut report = lines
                .iter()
                .take(REPORT_LINES)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if lines.len() > REPORT_LINES {
                report.push_str(&format!("; ... ({} lines)", lines.len()));
            }
            Err(corrupt(report))
        }
        Err(e) => Err(corrupt(format!("SQLite error: {e}"))),
    }
}

/// The lines `PRAGMA integrity_check` returns for the database at `path`.
fn run_integrity_check(path: &Path) -> rusqlite::Result<Vec<String>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let lines = {
        let mut statement = conn.prepare("PRAGMA integrity_check")?;
        statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    conn.close().map_err(|(_, e)| e)?;
    Ok(lines)
}

/// Fails with [`Error::DatabaseInUse`] when a process has `dest` open for writing or a
/// connection holds its lock.
fn ensure_unused(dest: &Path) -> Result<()> {
    let files = [
        dest.to_path_buf(),
        with_suffix(dest, "-wal"),
        with_suffix(dest, "-journal"),
    ];
    if let Some(holder) = writer_of(&files) {
        return Err(Error::DatabaseInUse {
            path: dest.to_path_buf(),
            holder,
        });
    }
    if dest.is_file() && lock_is_held(dest) {
        return Err(Error::DatabaseInUse {
            path: dest.to_path_buf(),
            holder: "another connection, which holds its lock".to_string(),
        });
    }
    Ok(())
}

/// A process with one of `files` open for writing, described (`another process (pid 12,
/// app)`), from `/proc`. Processes whose descriptors this one may not read are not seen.
fn writer_of(files: &[PathBuf]) -> Option<String> {
    let wanted: HashSet<(u64, u64)> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let own = std::process::id();
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for descriptor in descriptors.flatten() {
            // Follows the descriptor to the open file, whatever its path is now.
            let Ok(meta) = std::fs::metadata(descriptor.path()) else {
                continue;
            };
            if !wanted.contains(&(meta.dev(), meta.ino())) {
                continue;
            }
            let info = process.path().join("fdinfo").join(descriptor.file_name());
            if !opened_for_writing(&info) {
                continue;
            }
            let name = std::fs::read_to_string(process.path().join("comm"))
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
            let whose = if pid == own {
                "this process"
            } else {
                "another process"
            };
            return Some(if name.is_empty() {
                format!("{whose} (pid {pid})")
            } else {
                format!("{whose} (pid {pid}, {name})")
            });
        }
    }
    None
}

/// Whether the descriptor `/proc/PID/fdinfo/FD` describes was opened for writing (when that
/// cannot be read: assumed so).
fn opened_for_writing(fdinfo: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(fdinfo) else {
        return true;
    };
    text.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        // O_ACCMODE: O_RDONLY is 0, O_WRONLY 1, O_RDWR 2.
        .is_none_or(|flags| flags & 0o3 != 0)
}

/// Whether another connection holds the lock of the database at `path`: SQLite's exclusive
/// lock cannot be taken at once. A file SQLite cannot open as a database holds no lock.
///
/// The probe is an ordinary connection: when it is the last one to close, SQLite folds a
/// leftover WAL into the old database and removes it, as any client would.
fn lock_is_held(path: &Path) -> bool {
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    if conn.busy_timeout(Duration::ZERO).is_err() {
        return false;
    }
    let held = match conn.execute_batch("BEGIN EXCLUSIVE; ROLLBACK;") {
        Ok(()) => false,
        Err(e) => matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ),
    };
    drop(conn);
    held
}
