//! `restore`: write a snapshot (or part of it) back to disk.
//!
//! A restore runs in phases, so that nothing is ever created through a symbolic link and
//! directory times stick:
//!
//! 1. **plan** ([`plan`]): walk the snapshot's trees, validate every name, apply the include
//!    and exclude patterns, and resolve hard links. Nothing is written yet, so a hostile tree
//!    deep down is refused before the first byte lands on disk.
//! 2. **directories**, in walk order: each is created, or checked to be a real directory (an
//!    existing symbolic link in its place is [`Error::UnsafePath`]).
//! 3. **file contents** ([`content`]), in parallel: every chunk is located first (a missing
//!    one fails the restore before anything is written), then each pack is read once (the
//!    parts of it holding needed blobs), packs in parallel, and every blob is written to each
//!    place it goes in the temporary file of its file, beside the destination (all-zero
//!    chunks become holes). A file whose last chunk is written is optionally read back and
//!    verified, given its metadata through the open handle, then renamed into place.
//! 4. **other nodes**: hard links, fifos, devices, and symbolic links last, each created under
//!    a temporary name and renamed into place (a rename never follows a link).
//! 5. **directory metadata**, children before parents.

mod content;
mod filter;
mod plan;
mod sqlite;
mod write;

use std::path::PathBuf;
use std::sync::Mutex;

use snapshot_index::SnapshotEntry;

use crate::error::{Error, Result};
use crate::events::Operation;
use crate::progress::{Progress, Warning};
use crate::repository::Repository;

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// The folder to restore into; a backed-up `/a/b/src` comes back as `TARGET/a/b/src`.
    /// Created if missing. Existing files at restored paths are replaced.
    pub target: PathBuf,
    /// Glob patterns of snapshot paths to restore (with everything below them); empty: all.
    ///
    /// Patterns are matched against the snapshot path (`/home/user/src/main.rs`) with
    /// `globset`: `*` and `?` do not cross `/`, `**` does. A pattern that does not start with
    /// `/` matches at any depth (`*.rs` is `**/*.rs`). A plain path matches itself and
    /// everything below it. The folders above an included node are created too (their own
    /// mode and times are restored only when they are included themselves).
    pub includes: Vec<String>,
    /// Glob patterns of snapshot paths to leave out (with everything below them); same
    /// syntax as `includes`. An exclude wins over an include.
    pub excludes: Vec<String>,
    /// Read every restored file back and compare the ids of its chunks with the snapshot.
    pub verify: bool,
    /// Replace SQLite databases at the destination even when another process has them open
    /// ([`Error::DatabaseInUse`] otherwise). That process goes on using the old, replaced
    /// file: whatever it writes afterwards is lost.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// Files written (including hard links whose first name was not restored).
    pub files: u64,
    /// Directories created or reused (including the folders above included nodes).
    pub dirs: u64,
    /// Other nodes (symlinks, hard links, fifos, devices).
    pub others: u64,
    /// Bytes of file content written (holes included).
    pub bytes: u64,
    /// Paths that could not be restored fully (metadata, devices without privileges, ...).
    pub warnings: Vec<Warning>,
}

/// Shared state of one restore.
pub(super) struct Context<'a> {
    pub(super) store: &'a chunk_store::ChunkStore,
    pub(super) progress: &'a dyn Progress,
    pub(super) warnings: Mutex<Vec<Warning>>,
    /// Files whose content could not be read (each also has a warning), in order.
    pub(super) unreadable: Mutex<Vec<std::path::PathBuf>>,
    /// Running as root: owners are restored and devices created.
    pub(super) is_root: bool,
    pub(super) verify: bool,
    /// Replace SQLite databases even when they are in use.
    pub(super) force: bool,
}

/// Most files a [`Error::RestoreStopped`] names.
const NAMED_FILES: usize = 5;

impl Context<'_> {
    /// `e`, naming the files whose content could not be read when there are any.
    fn stopped_by(&self, e: Error) -> Error {
        let mut files = match self.unreadable.lock() {
            Ok(files) => files.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut seen = std::collections::HashSet::new();
        files.retain(|path| seen.insert(path.clone()));
        if files.is_empty() {
            return e;
        }
        let more = files.len().saturating_sub(NAMED_FILES);
        files.truncate(NAMED_FILES);
        Error::RestoreStopped {
            files,
            more,
            source: Box::new(e),
        }
    }

    /// Records that the content of `dest` could not be read, with a warning saying why.
    pub(super) fn unreadable(&self, dest: &std::path::Path, why: &dyn std::fmt::Display) {
        self.warn(
            dest,
            format!("not restored: its content could not be read: {why}"),
        );
        match self.unreadable.lock() {
            Ok(mut files) => files.push(dest.to_path_buf()),
            Err(poisoned) => poisoned.into_inner().push(dest.to_path_buf()),
        }
    }

    /// Records a warning and reports it.
    pub(super) fn warn(&self, path: &std::path::Path, message: String) {
        self.progress.warning(path, &message);
        let warning = Warning {
            path: path.to_path_buf(),
            message,
        };
        match self.warnings.lock() {
            Ok(mut warnings) => warnings.push(warning),
            Err(poisoned) => poisoned.into_inner().push(warning),
        }
    }
}

impl Repository {
    /// Restores `snapshot` as `options` say.
    ///
    /// Errors: a name or path in the snapshot that would land outside the target, or an
    /// existing symbolic link where a restored directory goes ([`Error::UnsafePath`]; nothing
    /// is written outside the target); damaged or missing data (naming the pack or blob); a
    /// verification mismatch ([`Error::Verify`]); I/O errors naming the path. Problems with
    /// metadata, and devices that need root, are warnings in the outcome.
    pub fn restore(
        &self,
        snapshot: &SnapshotEntry,
        options: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome> {
        let run = || self.restore_snapshot(snapshot, options, progress);
        self.observed(Operation::Restore, Some(snapshot.id.to_string()), run)
    }

    fn restore_snapshot(
        &self,
        snapshot: &SnapshotEntry,
        options: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome> {
        if options.target.as_os_str().is_empty() {
            return Err(Error::invalid(
                "the restore target is empty: name a folder to restore into",
            ));
        }
        let filter = filter::PathFilter::new(&options.includes, &options.excludes)?;
        let target = options.target.clone();
        let _lock = self.read_lock("restore")?;
        let plan = plan::build(self.store(), &snapshot.snapshot.tree, &target, &filter)?;
        let ctx = Context {
            store: self.store(),
            progress,
            warnings: Mutex::new(Vec::new()),
            unreadable: Mutex::new(Vec::new()),
            is_root: nix::unistd::geteuid().is_root(),
            verify: options.verify,
            force: options.force,
        };
        let content =
            content::ContentPlan::build(&ctx, &plan.files).map_err(|e| ctx.stopped_by(e))?;

        std::fs::create_dir_all(&target)
            .map_err(Error::io("create the restore target", &target))?;
        let total_bytes: u64 = plan.files.iter().map(|f| f.node.size).sum();
        progress.add_total(plan.files.len() as u64, total_bytes);

        let mut outcome = RestoreOutcome::default();
        for dir in &plan.dirs {
            write::prepare_dir(dir)?;
            outcome.dirs += 1;
        }

        outcome.bytes = content::restore_contents(&ctx, &plan.files, &content)
            .map_err(|e| ctx.stopped_by(e))?;
        outcome.files = plan.files.len() as u64;

        for link in &plan.hardlinks {
            write::restore_hardlink(link)?;
            outcome.others += 1;
        }
        for special in &plan.specials {
            if write::restore_special(&ctx, special)? {
                outcome.others += 1;
            }
        }
        for symlink in &plan.symlinks {
            write::restore_symlink(&ctx, symlink)?;
            outcome.others += 1;
        }
        for dir in plan.dirs.iter().rev().filter(|d| d.selected) {
            write::apply_path_metadata(&ctx, &dir.dest, &dir.node, false);
        }

        outcome.warnings = match ctx.warnings.into_inner() {
            Ok(warnings) => warnings,
            Err(poisoned) => poisoned.into_inner(),
        };
        Ok(outcome)
    }
}
