//! `copy`: copy snapshots from another repository into this one (restic's
//! `copy --from-repo`).
//!
//! Chunk ids are keyed BLAKE3 in encrypted repositories, each repository with its own id key,
//! so the same content has different ids in the source and in the destination. For each
//! snapshot to copy, oldest first, copy therefore:
//!
//! 1. finds a parent already copied (see below) and learns from it which source ids the
//!    destination already holds under which ids, reading trees only;
//! 2. reads every tree of the snapshot from the source (verified against its id), depth first,
//!    except the subtrees learned in step 1;
//! 3. reads each data blob a file refers to that is not known yet (verified against its source
//!    id), computes its id with the destination's hasher
//!    ([`chunk_store::ChunkStore::blob_id`]) and adds it, which stores nothing when the
//!    destination already has it;
//! 4. rewrites each tree bottom-up with the destination's ids and stores it;
//! 5. flushes the destination's packs and index, checks that its lock is still held, and
//!    writes the new manifest last: same time, host, user, tags, paths, summary and program
//!    version as the source's, the rewritten root tree, and as parent the destination's copy
//!    of the source's parent when there is one (else none).
//!
//! **What is read.** From the source: every tree of the snapshot that changed since the
//! parent found in step 1, and only the data blobs whose destination id is not known; with no
//! such parent, every tree and every data blob (once per run). From the destination (step 1
//! only): the trees of the parent's copy and index entries. So copying the newest snapshot
//! every day reads about what the day's backup read, as a backup with a parent does.
//!
//! **Learning from a parent (step 1).** The parent is the source snapshot's own parent when
//! the destination has a copy of it (copied by this run or an earlier one), else the newest
//! earlier source snapshot of the same host and paths that the destination has a copy of. It
//! is used only when its copy carries exactly its manifest (time, host, user, tags, paths,
//! summary, program version), so a different snapshot that merely has the same time, host,
//! user, paths and tags is never taken for it; and only when it was not copied in this run
//! (its ids are known already) and ids differ (else there is nothing to learn). Its trees in
//! the source and its copy's trees in the destination are walked side by side, pairing
//! entries by name. A pair of entries is trusted only when every field but the chunk and
//! subtree ids is equal (kind, size, times, inode, mode, owner, flags, link target, ...) and
//! they hold as many chunks; then each source chunk is paired with the destination chunk at
//! the same position, provided both are data blobs of the same length in their indexes (so the
//! destination does hold it). A directory is paired (its subtree id learned, and its subtree
//! then not read at all) only when every entry lines up and its source tree rewritten with the
//! learned ids hashes to the destination tree's id. Anything that does not line up, cannot be
//! read, or contradicts an id known already is not learned (a contradiction discards the whole
//! walk), and what is not learned is simply read: the walk can make a copy slower, never
//! different. It relies, as a backup's parent does, on equal metadata meaning equal content.
//!
//! **Fast path.** When both repositories compute the same id for the same content (both
//! unencrypted), the destination id is the source id, and a blob the destination already has
//! is not even read from the source (no parent is walked).
//!
//! **Skipped snapshots.** A snapshot whose time, host, user, paths and tags (as sets) equal
//! those of a snapshot the destination already has is not copied again, so running the same
//! copy twice copies nothing the second time.
//!
//! **Damage.** A source blob or tree that cannot be read (damaged, missing) stops the copy of
//! its snapshot with [`Error::CopySource`] (naming the snapshot, the path in it, and the pack
//! or blob); no manifest is written for that snapshot, and the other snapshots are still
//! copied. An error writing the destination stops the whole copy ([`Error::CopyStopped`]).
//! A damaged or incomplete copy of the parent in the destination only makes the walk learn
//! less (a tree that cannot be read, a blob its index does not list, are not learned).
//!
//! **Locks.** A shared lock on the destination (as backup) and a read lock on the source (as
//! restore and check; none with [`Repository::set_no_lock`] on the source). A dry run reads
//! only manifests and takes no lock.
//!
//! **Memory.** Within one run, copy remembers every source tree id and source blob id it has
//! handled or learned with its destination id (two maps of 64-byte entries, about 100 bytes
//! per blob with the map's overhead: some 100 MiB for a million distinct chunks), so that a
//! subtree or chunk shared by several snapshots is read and stored once. A walk adds the ids
//! of one parent snapshot (each parent is walked at most once per run, and none when the
//! parent was copied in the run), held in maps of their own until the walk ends, plus the
//! pairs of trees that did not line up. Besides those maps, it holds one tree per directory
//! level (two during a walk) and one blob per worker thread.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use chunk_store::{BlobKind, ChunkId, ChunkStore};
use rayon::prelude::*;
use snapshot_index::{Catalog, NodeKind, Snapshot, SnapshotEntry, SnapshotFilter, Tree};

use crate::error::{Error, Result};
use crate::events::{Operation, error_message};
use crate::lock::LockKind;
use crate::progress::Progress;
use crate::repository::Repository;

mod parent;
use parent::{copied_parent, is_copy_of};

/// Content whose id, computed by both repositories, tells whether they hash alike.
const PROBE: &[u8] = b"respaldo copy: do both repositories compute the same chunk ids?";

/// Which snapshots to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Snapshots of the source to copy: full ids, unique id prefixes or `latest` (the newest
    /// passing `filter`). Empty: every snapshot passing `filter`. Named ids are taken as
    /// named, whatever the filter.
    pub snapshots: Vec<String>,
    /// Which snapshots of the source to consider.
    pub filter: SnapshotFilter,
    /// Only tell what would be copied and what skipped: read no data, write nothing, take no
    /// lock.
    pub dry_run: bool,
}

/// What became of one source snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStatus {
    /// Copied: the destination's new snapshot.
    Copied {
        /// Id of the new snapshot in the destination.
        target: ChunkId,
    },
    /// Not copied: the destination already has a snapshot with the same time, host, user,
    /// paths and tags.
    Skipped {
        /// Id of that snapshot in the destination.
        existing: ChunkId,
    },
    /// Dry run: it would be copied.
    WouldCopy,
    /// Not copied, because something it needs could not be read from the source; nothing
    /// refers to what was stored for it in the destination. The message (from
    /// [`Error::CopySource`]) names the snapshot, the path in it and the damaged pack or blob.
    Failed {
        /// What went wrong and what the user can do.
        error: String,
    },
}

/// One source snapshot and what copy did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedSnapshot {
    /// Its id in the source.
    pub source: ChunkId,
    /// Its manifest in the source.
    pub snapshot: Snapshot,
    /// Copied, skipped, would be copied or failed.
    pub status: CopyStatus,
    /// Blobs (data and trees) this snapshot stored in the destination.
    pub blobs_added: u64,
    /// Bytes those blobs added to packs (compressed and sealed).
    pub bytes_added: u64,
    /// Blobs this snapshot needed that the destination already had, or that an earlier
    /// snapshot of this run had already copied.
    pub blobs_reused: u64,
    /// Bytes of blob content read from the source for this snapshot.
    pub bytes_read: u64,
}

/// What a copy did, snapshot by snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOutcome {
    /// A dry run: nothing was read or written.
    pub dry_run: bool,
    /// Both repositories compute the same chunk ids, so blobs the destination has are not read
    /// from the source (the fast path).
    pub same_ids: bool,
    /// Every selected source snapshot, oldest first.
    pub snapshots: Vec<CopiedSnapshot>,
}

impl CopyOutcome {
    /// The snapshots with `status` matching `pick`.
    fn count(&self, pick: impl Fn(&CopyStatus) -> bool) -> usize {
        self.snapshots.iter().filter(|s| pick(&s.status)).count()
    }

    /// How many snapshots were copied.
    pub fn copied(&self) -> usize {
        self.count(|s| matches!(s, CopyStatus::Copied { .. }))
    }

    /// How many snapshots were skipped (already in the destination).
    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, CopyStatus::Skipped { .. }))
    }

    /// How many snapshots could not be copied.
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, CopyStatus::Failed { .. }))
    }

    /// Whether every selected snapshot was copied, skipped or (dry run) would be copied.
    pub fn is_ok(&self) -> bool {
        self.failed() == 0
    }

    /// Blobs stored in the destination, over all snapshots.
    pub fn blobs_added(&self) -> u64 {
        self.snapshots.iter().map(|s| s.blobs_added).sum()
    }

    /// Bytes added to the destination's packs, over all snapshots.
    pub fn bytes_added(&self) -> u64 {
        self.snapshots.iter().map(|s| s.bytes_added).sum()
    }

    /// Blobs that needed no storing, over all snapshots.
    pub fn blobs_reused(&self) -> u64 {
        self.snapshots.iter().map(|s| s.blobs_reused).sum()
    }

    /// Bytes of blob content read from the source, over all snapshots.
    pub fn bytes_read(&self) -> u64 {
        self.snapshots.iter().map(|s| s.bytes_read).sum()
    }
}

/// What identifies "the same snapshot" across repositories (as restic compares them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SnapshotKey {
    time_ns: i64,
    hostname: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
}

impl SnapshotKey {
    fn of(snapshot: &Snapshot) -> Self {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        Self {
            time_ns: snapshot.time_ns,
            hostname: snapshot.hostname.clone(),
            username: snapshot.username.clone(),
            paths: sorted(&snapshot.paths),
            tags: sorted(&snapshot.tags),
        }
    }
}

impl Repository {
    /// Copies snapshots of `source` into this repository (see the module documentation of
    /// `commands/copy.rs`): oldest first, skipping those this repository already has, each
    /// manifest written only after everything it refers to is flushed.
    ///
    /// A snapshot whose data cannot be read from the source is reported in the outcome
    /// ([`CopyStatus::Failed`], [`CopyOutcome::is_ok`] false) and the others are still
    /// copied. Errors: the two are the same repository, a named snapshot that does not exist
    /// or is ambiguous, a lock that cannot be taken, and ([`Error::CopyStopped`]) any error
    /// writing this repository.
    pub fn copy_from(
        &self,
        source: &Repository,
        options: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<CopyOutcome> {
        let run = || self.copy_snapshots(source, options, progress);
        self.observed(Operation::Copy, None, run)
    }

    fn copy_snapshots(
        &self,
        source: &Repository,
        options: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<CopyOutcome> {
        let (from, to) = (source.store(), self.store());
        if from.config().repository_id == to.config().repository_id {
            return Err(Error::invalid(format!(
                "the source ({}) and the destination ({}) are the same repository (id {}): \
                 there is nothing to copy",
                source.location(),
                self.location(),
                to.config().repository_id_hex()
            )));
        }
        // Locks first (none for a dry run), so that the catalogs read are those protected.
        let locks = if options.dry_run {
            None
        } else {
            let source_lock = source.read_lock("copy")?;
            Some((source_lock, self.lock(LockKind::Shared, "copy")?))
        };
        let source_catalog = source.catalog()?;
        let selected = select(&source_catalog, options)?;
        let target_catalog = self.catalog()?;
        let mut existing: HashMap<SnapshotKey, ChunkId> = target_catalog
            .entries()
            .iter()
            .map(|e| (SnapshotKey::of(&e.snapshot), e.id))
            .collect();
        // The destination's snapshots before this run, for checking a parent's copy.
        let targets: HashMap<ChunkId, &Snapshot> = target_catalog
            .entries()
            .iter()
            .map(|e| (e.id, &e.snapshot))
            .collect();
        // Source snapshot -> its copy in the destination, for translating parents.
        let mut copies: HashMap<ChunkId, ChunkId> = HashMap::new();
        for entry in source_catalog.entries() {
            if let Some(target) = existing.get(&SnapshotKey::of(&entry.snapshot)) {
                copies.insert(entry.id, *target);
            }
        }
        let mut outcome = CopyOutcome {
            dry_run: options.dry_run,
            same_ids: from.blob_id(PROBE) == to.blob_id(PROBE),
            snapshots: Vec::with_capacity(selected.len()),
        };
        let to_copy = selected
            .iter()
            .filter(|e| !existing.contains_key(&SnapshotKey::of(&e.snapshot)))
            .count();
        progress.add_total(to_copy as u64, 0);
        let mut copier = Copier {
            stores: Stores {
                from,
                to,
                same_ids: outcome.same_ids,
                progress,
            },
            trees: HashMap::new(),
            blobs: HashMap::new(),
        };
        // Source snapshots copied in this run (their ids are all in the memo), and the
        // parents walked: each is walked at most once.
        let mut copied_now: HashSet<ChunkId> = HashSet::new();
        let mut walked: HashSet<ChunkId> = HashSet::new();
        for entry in selected {
            let mut copied = CopiedSnapshot {
                source: entry.id,
                snapshot: entry.snapshot.clone(),
                status: CopyStatus::WouldCopy,
                blobs_added: 0,
                bytes_added: 0,
                blobs_reused: 0,
                bytes_read: 0,
            };
            let key = SnapshotKey::of(&entry.snapshot);
            if let Some(target) = existing.get(&key) {
                copied.status = CopyStatus::Skipped { existing: *target };
                outcome.snapshots.push(copied);
                continue;
            }
            let Some((_, target_lock)) = &locks else {
                outcome.snapshots.push(copied);
                continue;
            };
            let label = entry.id.to_hex();
            progress.file_started(Path::new(&label));
            if !outcome.same_ids
                && let Some((parent, copy)) = copied_parent(&entry, &source_catalog, &copies)
                && !copied_now.contains(&parent.id)
                && walked.insert(parent.id)
                && let Some(copy) = targets.get(&copy)
                && is_copy_of(copy, &parent.snapshot)
            {
                copier.learn(parent.snapshot.tree, copy.tree);
            }
            let result = copier.snapshot(&entry, &copies, &mut copied, target_lock);
            match result {
                Ok(target) => {
                    existing.insert(key, target);
                    copies.insert(entry.id, target);
                    copied_now.insert(entry.id);
                    copied.status = CopyStatus::Copied { target };
                }
                Err(Failure::Source { path, error }) => {
                    let error = Error::CopySource {
                        snapshot: entry.id,
                        path,
                        source: error,
                    };
                    progress.warning(Path::new(&label), &error_message(&error));
                    copied.status = CopyStatus::Failed {
                        error: error_message(&error),
                    };
                }
                Err(Failure::Target(error)) => {
                    return Err(Error::CopyStopped {
                        copied: outcome.copied(),
                        source: error,
                    });
                }
            }
            progress.file_done(Path::new(&label));
            outcome.snapshots.push(copied);
        }
        if !options.dry_run {
            // What failed snapshots stored is referenced by nothing, but flushing it lets a
            // later copy or backup reuse it rather than store it again.
            to.flush().map_err(|e| Error::CopyStopped {
                copied: outcome.copied(),
                source: Box::new(e.into()),
            })?;
        }
        Ok(outcome)
    }
}

/// The source snapshots `options` select, oldest first (ties by id), each once.
fn select(catalog: &Catalog, options: &CopyOptions) -> Result<Vec<SnapshotEntry>> {
    let mut selected: Vec<SnapshotEntry> = if options.snapshots.is_empty() {
        catalog.filtered(&options.filter).cloned().collect()
    } else {
        options
            .snapshots
            .iter()
            .map(|spec| Ok(catalog.resolve(spec, &options.filter)?.clone()))
            .collect::<Result<_>>()?
    };
    selected.sort_by_key(|e| (e.snapshot.time_ns, e.id));
    selected.dedup_by_key(|e| e.id);
    Ok(selected)
}

/// Why the copy of one snapshot stopped.
enum Failure {
    /// Something at `path` in the snapshot could not be read from the source: this snapshot
    /// is not copied, the others are.
    Source { path: String, error: Box<Error> },
    /// The destination could not be written: the whole copy stops.
    Target(Box<Error>),
}

impl Failure {
    /// A failure to read `path` from the source: damage stops only this snapshot, but a
    /// source that cannot be reached at all (network, store, local I/O) stops the whole copy,
    /// since every other snapshot would fail the same way after its own retries.
    fn source(path: &str, error: impl Into<Error>) -> Self {
        let error = error.into();
        if is_unreachable(&error) {
            return Failure::Target(Box::new(error));
        }
        Failure::Source {
            path: path.to_string(),
            error: Box::new(error),
        }
    }

    fn target(error: impl Into<Error>) -> Self {
        Failure::Target(Box::new(error.into()))
    }
}

/// Whether `error` (or an error it wraps) says the storage could not be reached or read at
/// all, rather than that something stored is damaged or missing.
fn is_unreachable(error: &Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(store) = e.downcast_ref::<chunk_store::Error>() {
            return matches!(
                store,
                chunk_store::Error::Remote { .. }
                    | chunk_store::Error::RemoteSetup { .. }
                    | chunk_store::Error::Io { .. }
            );
        }
        current = e.source();
    }
    false
}

/// What one run shares with its worker threads.
struct Stores<'a> {
    from: &'a ChunkStore,
    to: &'a ChunkStore,
    /// Both repositories compute the same ids.
    same_ids: bool,
    progress: &'a dyn Progress,
}

/// What copying one data blob did.
struct BlobCopy {
    source: ChunkId,
    target: ChunkId,
    stored_bytes: Option<u64>,
    read: u64,
}

/// A data blob that could not be copied, and which entry of the directory needed it.
struct BlobFailure {
    node: usize,
    failure: Failure,
}

impl Stores<'_> {
    /// Copies data blob `id`: unread when the ids agree and the destination has it, else read
    /// (verified), hashed for the destination and added (nothing stored when it is known).
    fn copy_blob(&self, id: ChunkId) -> std::result::Result<BlobCopy, Failure> {
        if self.same_ids && self.to.contains(&id).map_err(Failure::target)? {
            return Ok(BlobCopy {
                source: id,
                target: id,
                stored_bytes: None,
                read: 0,
            });
        }
        let data = self
            .from
            .get_blob(&id)
            .map_err(|e| Failure::source("", e))?;
        self.progress.bytes_done(data.len() as u64);
        let target = if self.same_ids {
            id
        } else {
            self.to.blob_id(&data)
        };
        let added = self
            .to
            .add_blob_with_id(BlobKind::Data, target, &data)
            .map_err(Failure::target)?;
        Ok(BlobCopy {
            source: id,
            target,
            stored_bytes: added.stored.then_some(added.stored_bytes),
            read: data.len() as u64,
        })
    }
}

/// The state of one run: the stores, and the ids already translated.
struct Copier<'a> {
    stores: Stores<'a>,
    /// Source tree id -> destination tree id, for every tree copied in this run.
    trees: HashMap<ChunkId, ChunkId>,
    /// Source data blob id -> destination id, for every blob copied in this run.
    blobs: HashMap<ChunkId, ChunkId>,
}

impl Copier<'_> {
    /// Learns, from the source tree `source` and the destination tree `target` (the roots of a
    /// source snapshot and of its copy), which source blobs and trees the destination already
    /// holds under which ids (see the module documentation). Reads trees and index entries
    /// only, and never fails: what cannot be read or does not line up is not learned.
    fn learn(&mut self, source: ChunkId, target: ChunkId) {
        if let Some((blobs, trees)) = parent::learn(
            self.stores.from,
            self.stores.to,
            (&self.blobs, &self.trees),
            source,
            target,
        ) {
            self.blobs.extend(blobs);
            self.trees.extend(trees);
        }
    }

    /// Copies the trees and data of `entry`, flushes, and writes its manifest; returns the new
    /// snapshot's id.
    fn snapshot(
        &mut self,
        entry: &SnapshotEntry,
        copies: &HashMap<ChunkId, ChunkId>,
        counts: &mut CopiedSnapshot,
        lock: &crate::lock::RepositoryLock,
    ) -> std::result::Result<ChunkId, Failure> {
        let tree = self.tree(entry.snapshot.tree, "/", counts)?;
        self.stores.to.flush().map_err(Failure::target)?;
        // Had the lock been lost, a prune could have deleted packs this snapshot refers to.
        lock.ensure_held().map_err(Failure::target)?;
        let snapshot = Snapshot {
            tree,
            parent: entry
                .snapshot
                .parent
                .and_then(|parent| copies.get(&parent).copied()),
            ..entry.snapshot.clone()
        };
        snapshot.save(self.stores.to).map_err(Failure::target)
    }

    /// Copies tree `id` (at `path` in the snapshot) and everything below it; returns its id in
    /// the destination.
    fn tree(
        &mut self,
        id: ChunkId,
        path: &str,
        counts: &mut CopiedSnapshot,
    ) -> std::result::Result<ChunkId, Failure> {
        if let Some(target) = self.trees.get(&id) {
            counts.blobs_reused += 1;
            return Ok(*target);
        }
        let tree = Tree::load(self.stores.from, &id).map_err(|e| Failure::source(path, e))?;
        let mut nodes = tree.into_nodes();
        self.copy_data(&nodes, path, counts)?;
        for node in &mut nodes {
            match node.kind {
                NodeKind::File | NodeKind::Hardlink => {
                    for chunk in &mut node.content {
                        // copy_data translated every chunk of this directory's files.
                        if let Some(target) = self.blobs.get(chunk) {
                            *chunk = *target;
                        }
                    }
                }
                NodeKind::Dir => {
                    if let Some(subtree) = node.subtree {
                        let below = child_path(path, &node.name);
                        node.subtree = Some(self.tree(subtree, &below, counts)?);
                    }
                }
                _ => {}
            }
        }
        let tree = Tree::new(nodes).map_err(|e| Failure::source(path, e))?;
        let bytes = tree.to_bytes().map_err(|e| Failure::source(path, e))?;
        let added = self
            .stores
            .to
            .add_blob(BlobKind::Tree, &bytes)
            .map_err(Failure::target)?;
        if added.stored {
            counts.blobs_added += 1;
            counts.bytes_added += added.stored_bytes;
        } else {
            counts.blobs_reused += 1;
        }
        self.trees.insert(id, added.id);
        Ok(added.id)
    }

    /// Copies the data blobs of the files among `nodes` (the entries of the directory at
    /// `path`) that this run has not copied yet, in parallel; each is then in `self.blobs`.
    /// The first failure stops the blobs not yet started.
    fn copy_data(
        &mut self,
        nodes: &[snapshot_index::Node],
        path: &str,
        counts: &mut CopiedSnapshot,
    ) -> std::result::Result<(), Failure> {
        let mut work: Vec<(ChunkId, usize)> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for (index, node) in nodes.iter().enumerate() {
            if !matches!(node.kind, NodeKind::File | NodeKind::Hardlink) {
                continue;
            }
            for chunk in &node.content {
                if self.blobs.contains_key(chunk) {
                    counts.blobs_reused += 1;
                } else if queued.insert(*chunk) {
                    work.push((*chunk, index));
                } else {
                    counts.blobs_reused += 1;
                }
            }
        }
        let stop = AtomicBool::new(false);
        let stores = &self.stores;
        let results: Vec<Option<std::result::Result<BlobCopy, BlobFailure>>> = work
            .par_iter()
            .map(|&(id, node)| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let result = stores.copy_blob(id).map_err(|failure| {
                    stop.store(true, Ordering::Relaxed);
                    BlobFailure { node, failure }
                });
                Some(result)
            })
            .collect();
        let mut first_failure = None;
        for result in results.into_iter().flatten() {
            match result {
                Ok(copy) => {
                    counts.bytes_read += copy.read;
                    match copy.stored_bytes {
                        Some(bytes) => {
                            counts.blobs_added += 1;
                            counts.bytes_added += bytes;
                        }
                        None => counts.blobs_reused += 1,
                    }
                    self.blobs.insert(copy.source, copy.target);
                }
                Err(BlobFailure { node, failure }) => {
                    let failure = match failure {
                        Failure::Source { error, .. } => Failure::Source {
                            path: child_path(path, &nodes[node].name),
                            error,
                        },
                        target => target,
                    };
                    // A destination failure stops everything: it wins over a source one.
                    let wins = matches!(
                        (&first_failure, &failure),
                        (None, _) | (Some(Failure::Source { .. }), Failure::Target(_))
                    );
                    if wins {
                        first_failure = Some(failure);
                    }
                }
            }
        }
        match first_failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// The first 8 hex digits of a snapshot id, as `snapshots` shows them.
pub(crate) fn short(id: &ChunkId) -> String {
    let mut hex = id.to_hex();
    hex.truncate(8);
    hex
}

/// The path of entry `name` of the directory at `dir` (`/` for the root).
fn child_path(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", b"home"), "/home");
        assert_eq!(child_path("/home", b"user"), "/home/user");
    }

    #[test]
    fn keys_compare_paths_and_tags_as_sets() {
        let snapshot = |paths: &[&str], tags: &[&str]| Snapshot {
            time_ns: 1,
            utc_offset_s: 0,
            hostname: "h".to_string(),
            username: "u".to_string(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            tree: ChunkId::from_bytes([0; 32]),
            parent: None,
            program_version: String::new(),
            summary: Default::default(),
        };
        assert_eq!(
            SnapshotKey::of(&snapshot(&["/a", "/b"], &["x", "y"])),
            SnapshotKey::of(&snapshot(&["/b", "/a"], &["y", "x"]))
        );
        assert_ne!(
            SnapshotKey::of(&snapshot(&["/a"], &[])),
            SnapshotKey::of(&snapshot(&["/a"], &["x"]))
        );
    }
}
