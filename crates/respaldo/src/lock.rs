//! Repository locks: several backups at once, but prune and repair alone.
//!
//! The protocol (the file format is the chunk store's, `locks/` in `docs/format.md`):
//!
//! - A **shared** lock (backup, restore, check, forget) excludes only exclusive locks: writers
//!   that only add files never conflict. An **exclusive** lock (prune, repair) excludes every
//!   other lock, since it deletes files that others may be reading or referring to.
//! - To take a lock, a process writes its lock file first and only then lists the others. If
//!   one conflicts, it deletes its own and fails (or waits and tries again). Of two processes
//!   racing for conflicting locks, at least the later one to list sees the other, so the two
//!   can never both hold them.
//! - The owner rewrites its lock every [`REFRESH_EVERY`]. A lock is **stale** when its process
//!   is gone from this very host, or when it has not been refreshed for [`STALE_AFTER`].
//!   A stale lock still blocks (a process may be paused, or its clock wrong), and the message
//!   says why it looks stale; `unlock` removes stale locks.
//! - Before it commits (a snapshot, a deletion), an operation checks that its lock is still
//!   held ([`RepositoryLock::ensure_held`]): a lock removed by `unlock`, or not refreshed in
//!   time, may have let a prune run beside it.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chunk_store::{ChunkStore, FileKind, LockInfo};

use crate::error::{Error, Result};
use crate::repository::{Repository, hostname, username};

/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock not rewritten for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The two kinds of lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Excludes exclusive locks only (operations that add files or only read).
    Shared,
    /// Excludes every other lock (operations that delete files).
    Exclusive,
}

/// One lock file of the repository, as `unlock` and error messages see it.
#[derive(Debug, Clone)]
pub struct LockStatus {
    /// The lock file's name under `locks/`.
    pub name: String,
    /// What it says, or `None` when it cannot be read (damaged, or sealed with another key).
    pub info: Option<LockInfo>,
    /// Why it cannot be read, when it cannot.
    pub unreadable: Option<String>,
    /// Why it looks stale, when it does.
    pub stale: Option<String>,
}

impl LockStatus {
    fn new(name: String, read: chunk_store::Result<LockInfo>, now_ns: i64, host: &str) -> Self {
        match read {
            Ok(info) => Self {
                stale: staleness(&info, now_ns, host),
                name,
                info: Some(info),
                unreadable: None,
            },
            Err(e) => Self {
                name,
                info: None,
                unreadable: Some(e.to_string()),
                stale: None,
            },
        }
    }

    /// A one-line description: kind, operation, process, host, user, age.
    pub fn describe(&self) -> String {
        let now_ns = now_ns();
        let path = FileKind::Lock.display_path(&self.name);
        match (&self.info, &self.unreadable) {
            (Some(info), _) => format!(
                "{} lock {path} held by {} (pid {} on host {}, user {}), taken {} ago, \
                 refreshed {} ago",
                if info.exclusive {
                    "an exclusive"
                } else {
                    "a shared"
                },
                info.operation,
                info.pid,
                info.hostname,
                info.username,
                age(now_ns, info.created_ns),
                age(now_ns, info.refreshed_ns),
            ),
            (None, Some(reason)) => format!("an unreadable lock {path} ({reason})"),
            (None, None) => format!("lock {path}"),
        }
    }
}

/// Why the lock `info` looks stale seen from `host` at `now_ns`, or `None` if it looks held.
pub fn staleness(info: &LockInfo, now_ns: i64, host: &str) -> Option<String> {
    if info.hostname == host && !process_alive(info.pid) {
        return Some(format!(
            "its process {} no longer runs on this host ({host})",
            info.pid
        ));
    }
    let not_refreshed = u64::try_from(now_ns.saturating_sub(info.refreshed_ns)).unwrap_or(0);
    if Duration::from_nanos(not_refreshed) > STALE_AFTER {
        return Some(format!(
            "it has not been refreshed for {} (locks are refreshed every {} minutes)",
            age(now_ns, info.refreshed_ns),
            REFRESH_EVERY.as_secs() / 60
        ));
    }
    None
}

/// Whether process `pid` exists on this host. Unknown counts as alive: only a process that
/// is certainly gone makes a lock stale.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    if raw <= 0 {
        return true;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// A duration between two times in ns, for people: `42s`, `3m`, `5h`, `2d`.
fn age(now_ns: i64, then_ns: i64) -> String {
    let secs = now_ns.saturating_sub(then_ns).max(0) / 1_000_000_000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub(crate) fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

/// What the refresher thread shares with the lock's owner.
#[derive(Debug)]
struct Held {
    /// When the lock file was last written successfully.
    last_refresh: Instant,
    /// Why the lock is lost, once it is.
    lost: Option<String>,
}

/// A lock held on a repository: refreshed in the background while it lives, removed when
/// dropped. (With `--no-lock`, a read-only operation holds a guard without a lock file.)
#[derive(Debug)]
pub struct RepositoryLock {
    held: Option<HeldLock>,
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// The lock file a [`RepositoryLock`] holds.
#[derive(Debug)]
struct HeldLock {
    store: Arc<ChunkStore>,
    name: String,
    kind: LockKind,
    state: Arc<Mutex<Held>>,
}

impl RepositoryLock {
    /// Starts refreshing lock file `name`, just written.
    fn hold(
        store: Arc<ChunkStore>,
        name: String,
        kind: LockKind,
        info: LockInfo,
        (location, every): (&str, Duration),
    ) -> Result<Self> {
        let state = Arc::new(Mutex::new(Held {
            last_refresh: Instant::now(),
            lost: None,
        }));
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let spawned = {
            let (store, name, state) = (store.clone(), name.clone(), state.clone());
            std::thread::Builder::new()
                .name("lock-refresh".to_string())
                .spawn(move || refresh_loop(every, store, name, info, state, stopped))
        };
        let refresher = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                let _ = store.remove_lock(&name);
                return Err(Error::io("start the lock refresher for", location)(e));
            }
        };
        Ok(Self {
            held: Some(HeldLock {
                store,
                name,
                kind,
                state,
            }),
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// The lock file's name under `locks/` (`None` without a lock file: `--no-lock`).
    pub fn name(&self) -> Option<&str> {
        self.held.as_ref().map(|h| h.name.as_str())
    }

    /// Checks that the lock is still held: its file exists and it was refreshed in time, and,
    /// for an exclusive lock, that no other lock has appeared (a lock removed by `unlock` and
    /// rewritten by a refresher that had just read it). Call before committing anything whose
    /// safety depends on the lock (a snapshot, a deletion); [`Error::LockLost`] means another
    /// process may have changed the repository meanwhile.
    pub fn ensure_held(&self) -> Result<()> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let lost = {
            let state = lock_held(&held.state);
            match &state.lost {
                Some(reason) => Some(reason.clone()),
                // Refreshed too late, others may already have taken it for stale.
                None if state.last_refresh.elapsed() > STALE_AFTER - REFRESH_EVERY => {
                    Some(format!(
                        "it was last refreshed {} minutes ago",
                        state.last_refresh.elapsed().as_secs() / 60
                    ))
                }
                None => None,
            }
        };
        let lost = match lost {
            Some(reason) => Some(reason),
            None => match held.store.read_lock(&held.name) {
                Ok(_) => None,
                Err(e) if e.is_not_found() => {
                    Some("its lock file was removed (by `unlock`?)".to_string())
                }
                Err(e) => Some(e.to_string()),
            },
        };
        let lost = match lost {
            None if held.kind == LockKind::Exclusive => {
                conflicting_lock(&held.store, &held.name, held.kind, &hostname())?
                    .map(|other| format!("another process took {}", other.describe()))
            }
            other => other,
        };
        match lost {
            Some(reason) => Err(Error::LockLost {
                lock: FileKind::Lock.display_path(&held.name),
                reason,
            }),
            None => Ok(()),
        }
    }
}

fn lock_held(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    // The guarded value is two plain fields, always consistent.
    held.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for RepositoryLock {
    fn drop(&mut self) {
        // Closing the channel stops the refresher.
        drop(self.stop.take());
        if let Some(thread) = self.refresher.take() {
            let _ = thread.join();
        }
        // A lock left behind is reported as stale later, and `unlock` removes it.
        if let Some(held) = &self.held {
            let _ = held.store.remove_lock(&held.name);
        }
    }
}

/// What one refresh of a held lock found.
enum Refresh {
    Done,
    /// The lock file is gone: the lock is lost for good.
    Removed,
    /// Writing failed; it may be passing, so the next refresh tries again.
    Failed,
}

fn refresh_loop(
    every: Duration,
    store: Arc<ChunkStore>,
    name: String,
    mut info: LockInfo,
    held: Arc<Mutex<Held>>,
    stop: crossbeam_channel::Receiver<()>,
) {
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        // Rewriting a lock that someone removed would hide that it was taken away.
        let outcome = match store.read_lock(&name) {
            Ok(_) => {
                info.refreshed_ns = now_ns();
                match store.write_lock(&name, &info) {
                    Ok(()) => Refresh::Done,
                    Err(_) => Refresh::Failed,
                }
            }
            Err(e) if e.is_not_found() => Refresh::Removed,
            Err(_) => Refresh::Failed,
        };
        let mut held = lock_held(&held);
        match outcome {
            Refresh::Done => held.last_refresh = Instant::now(),
            Refresh::Failed => {}
            Refresh::Removed => {
                held.lost = Some("its lock file was removed (by `unlock`?)".to_string());
                return;
            }
        }
    }
}

/// The first lock other than `own` that conflicts with a lock of `kind`.
fn conflicting_lock(
    store: &ChunkStore,
    own: &str,
    kind: LockKind,
    host: &str,
) -> Result<Option<LockStatus>> {
    let now = now_ns();
    for (name, read) in store.list_locks()? {
        if name == own {
            continue;
        }
        let status = LockStatus::new(name, read, now, host);
        let conflicts = match &status.info {
            Some(info) => kind == LockKind::Exclusive || info.exclusive,
            // What an unreadable lock excludes is unknown: assume everything.
            None => true,
        };
        if conflicts {
            return Ok(Some(status));
        }
    }
    Ok(None)
}

impl Repository {
    /// Takes a lock of `kind` for `operation` (a word for messages: `backup`, `prune`),
    /// waiting up to [`Repository::set_lock_wait`] for conflicting locks to go.
    ///
    /// Errors: [`Error::Locked`] naming the conflicting lock (and why it looks stale, if it
    /// does); storage errors.
    pub fn lock(&self, kind: LockKind, operation: &str) -> Result<RepositoryLock> {
        let store = self.shared_store();
        let host = hostname();
        let created_ns = now_ns();
        let info = LockInfo {
            exclusive: kind == LockKind::Exclusive,
            hostname: host.clone(),
            username: username(),
            pid: std::process::id(),
            operation: operation.to_string(),
            created_ns,
            refreshed_ns: created_ns,
        };
        let started = Instant::now();
        loop {
            let name = store.new_lock_name()?;
            store.write_lock(&name, &info)?;
            let conflict = match conflicting_lock(&store, &name, kind, &host) {
                Ok(conflict) => conflict,
                Err(e) => {
                    let _ = store.remove_lock(&name);
                    return Err(e);
                }
            };
            let Some(conflict) = conflict else {
                let lock = RepositoryLock::hold(
                    store.clone(),
                    name,
                    kind,
                    info,
                    (self.location(), self.lock_refresh_every()),
                )?;
                // The index was brought up to date when the repository was opened; a prune
                // that finished since then may have replaced index files and deleted packs.
                // (On error, dropping the guard removes the lock.)
                store.sync_index()?;
                return Ok(lock);
            };
            // Failing to remove our own lock must not hide why we are stopping; a lock left
            // behind is reported as stale later.
            let _ = store.remove_lock(&name);
            let waited = started.elapsed();
            if waited >= self.lock_wait() {
                return Err(Error::Locked {
                    holder: conflict.describe(),
                    stale: conflict.stale.clone(),
                    remove_all: conflict.unreadable.is_some(),
                });
            }
            // A random pause keeps two processes that want conflicting locks from retrying
            // in step forever.
            let mut jitter = [0u8; 2];
            let _ = getrandom::fill(&mut jitter);
            let pause = Duration::from_millis(100 + u64::from(u16::from_le_bytes(jitter) % 400));
            std::thread::sleep(pause.min(self.lock_wait() - waited));
        }
    }

    /// A shared lock for an operation that only reads (restore, check): none at all when
    /// [`Repository::set_no_lock`] is set, so that a read-only repository can be read.
    pub fn read_lock(&self, operation: &str) -> Result<RepositoryLock> {
        if self.no_lock() {
            return Ok(RepositoryLock {
                held: None,
                refresher: None,
                stop: None,
            });
        }
        self.lock(LockKind::Shared, operation)
    }

    /// Every lock file of the repository, with what it says and whether it looks stale.
    pub fn locks(&self) -> Result<Vec<LockStatus>> {
        let now = now_ns();
        let host = hostname();
        Ok(self
            .store()
            .list_locks()?
            .into_iter()
            .map(|(name, read)| LockStatus::new(name, read, now, &host))
            .collect())
    }

    /// Removes the stale locks (or, with `remove_all`, every lock, including unreadable ones:
    /// only when no other process uses the repository). Returns the locks removed.
    pub fn unlock(&self, remove_all: bool) -> Result<Vec<LockStatus>> {
        let mut removed = Vec::new();
        for status in self.locks()? {
            if remove_all || status.stale.is_some() {
                self.store().remove_lock(&status.name)?;
                removed.push(status);
            }
        }
        Ok(removed)
    }
}
