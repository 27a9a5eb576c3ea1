//! One module per command; this file dispatches to them and holds what they share: finding
//! the repository, the cache folder and the password, and naming snapshots.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use respaldo::{Location, Repository, SnapshotEntry, SnapshotFilter, SnapshotSpec};

use crate::args::{Args, Command, Global};
use crate::output::Ui;
use crate::password::{self, MissingPassword};

pub mod analyze;
mod backup;
pub mod check;
pub mod copy;
mod diff;
mod dump;
mod events;
pub mod forget;
mod init;
pub mod jobs;
pub mod key;
pub mod log;
mod ls;
pub mod prune;
pub mod repair;
mod restore;
mod service;
mod snapshots;
mod stats;
mod unlock;

/// Exit code of a backup that saved a snapshot but could not read some sources.
pub const EXIT_PARTIAL: u8 = 3;

/// Runs the command `args` name; the exit code on success (0, or 3 for a partial backup).
pub fn run(args: &Args) -> Result<ExitCode> {
    let global = &args.global;
    let ui = Ui::new(global);
    match &args.command {
        Command::Init(a) => init::run(global, &ui, a),
        Command::Backup(a) => backup::run(global, &ui, a),
        Command::Snapshots(a) => snapshots::run(global, &ui, a),
        Command::Restore(a) => restore::run(global, &ui, a),
        Command::Ls(a) => ls::run(global, &ui, a),
        Command::Diff(a) => diff::run(global, &ui, a),
        Command::Dump(a) => dump::run(global, &ui, a),
        Command::Stats(a) => stats::run(global, &ui, a),
        Command::Forget(a) => forget::run(global, &ui, a),
        Command::Unlock(a) => unlock::run(global, &ui, a),
        Command::Key(a) => key::run(global, &ui, a),
        Command::Check(a) => check::run(global, &ui, a),
        Command::Copy(a) => copy::run(global, &ui, a),
        Command::Prune(a) => prune::run(global, &ui, a),
        Command::Repair(a) => repair::run(global, &ui, a),
        Command::Log(a) => log::run(global, &ui, a),
        Command::Run(a) => jobs::run(global, &ui, a),
        Command::Jobs => jobs::list(global, &ui),
        Command::Service => service::run(global, &ui),
        Command::Analyze(a) => analyze::run(global, &ui, a),
    }
}

/// The repository location given by `--repo` or `RESPALDO_REPOSITORY`: a folder or an `s3:`
/// location.
fn location(global: &Global) -> Result<Location> {
    let given = global
        .repo
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            anyhow!("no repository given: pass --repo PATH (or s3:...) or set RESPALDO_REPOSITORY")
        })?;
    Ok(Location::parse(given.as_os_str())?)
}

/// The folder of the local index cache.
fn cache_dir() -> Result<PathBuf> {
    respaldo::default_cache_dir().ok_or_else(|| {
        anyhow!("cannot tell where to keep the local cache: set RESPALDO_CACHE_DIR (or HOME)")
    })
}

/// Opens the repository, asking for the password on a terminal when it is encrypted and none
/// was given.
fn open(global: &Global) -> Result<Repository> {
    let mut repo = open_unlocked(global)?;
    if let Some(wait) = global.retry_lock {
        repo.set_lock_wait(wait);
    }
    repo.set_no_lock(global.no_lock);
    for (name, reason) in repo.store().unreadable_index_files() {
        eprintln!(
            "respaldo: warning: skipped index/{name} ({reason}); the blobs it lists are \
             unknown until `respaldo repair index` lists them again"
        );
    }
    Ok(repo)
}

fn open_unlocked(global: &Global) -> Result<Repository> {
    let location = location(global)?;
    let cache = cache_dir()?;
    if let Some(password) = password::given(global)? {
        return Ok(Repository::open_at(&location, Some(&password), &cache)?);
    }
    // Without a password an unencrypted repository opens; an encrypted one reports a wrong
    // password before anything else is read.
    match Repository::open_at(&location, None, &cache) {
        Err(e) if e.is_wrong_password() => match password::prompt_existing()? {
            Some(password) => Ok(Repository::open_at(&location, Some(&password), &cache)?),
            None => Err(MissingPassword {
                purpose: "open this encrypted repository",
            }
            .into()),
        },
        other => Ok(other?),
    }
}

/// The snapshot `spec` names, among all snapshots.
fn resolve(repo: &Repository, spec: &SnapshotSpec) -> Result<SnapshotEntry> {
    Ok(repo.resolve_snapshot(spec, &SnapshotFilter::default())?)
}

/// A path inside a snapshot as the engine wants it: starting with `/`.
fn snapshot_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// Makes `path` absolute against the current folder, without resolving symlinks.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}
