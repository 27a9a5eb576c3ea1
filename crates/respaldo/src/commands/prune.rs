//! `prune`: delete what no snapshot needs any more.
//!
//! Under an exclusive lock: mark every blob reachable from the remaining snapshots; delete packs
//! that hold nothing reachable and packs no index file lists (left by interrupted backups);
//! repack packs whose unreachable share exceeds `max_unused` (copy their reachable blobs into new
//! packs, bit for bit); then replace the index files that list a pack going away.
//!
//! The order makes every crash point safe: new packs and their index file are written before
//! any index file is replaced; replacement index files are written before the old ones are
//! deleted; packs are deleted last, when no index file lists them any more. A crash therefore
//! leaves, at worst, packs that no index file lists (the next prune deletes them) and index
//! files that overlap (allowed by the format). Nothing is deleted before the whole plan is known
//! to keep every reachable blob: a snapshot or tree that cannot be read, or a reachable blob
//! that no existing pack holds, stops prune before it changes anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use chunk_store::{ChunkId, FileKind, IndexedPack, MAX_INDEX_FILE_ENTRIES, PackEntry};
use snapshot_index::{Catalog, NodeKind, Tree};

use crate::error::{Error, Result};
use crate::events::Operation;
use crate::lock::LockKind;
use crate::progress::Progress;
use crate::repository::Repository;

/// How prune works.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack a pack when more than this fraction (0.0 to 1.0) of its bytes is unreachable;
    /// `None` never repacks (only packs with nothing reachable are deleted).
    pub max_unused: Option<f64>,
    /// Only report what would be done.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: Some(0.10),
            dry_run: false,
        }
    }
}

/// What prune did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// Snapshots whose blobs were kept.
    pub snapshots: u64,
    /// Reachable blobs (trees and data).
    pub blobs_used: u64,
    /// Blobs listed by index files but reachable from no snapshot.
    pub blobs_unused: u64,
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Packs deleted because nothing in them is reachable.
    pub packs_deleted: u64,
    /// Packs rewritten because too much of them is unreachable.
    pub packs_repacked: u64,
    /// Packs deleted because no index file listed them.
    pub packs_unindexed: u64,
    /// Packs an index file listed that are not in the repository (their listing goes; none
    /// of their blobs was needed, or prune would have stopped).
    pub packs_missing: u64,
    /// Reachable blobs copied out of repacked packs.
    pub blobs_repacked: u64,
    /// Bytes of those copies (written again).
    pub bytes_repacked: u64,
    /// Bytes of the packs deleted (all three kinds).
    pub bytes_deleted: u64,
    /// Index files replaced.
    pub index_files_replaced: u64,
    /// Replacement index files written.
    pub index_files_written: u64,
}

impl PruneOutcome {
    /// Bytes the repository shrinks by: packs deleted, less what was written again.
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_deleted.saturating_sub(self.bytes_repacked)
    }
}

/// A pack as the index files list it.
struct Listed {
    size: u64,
    entries: Vec<PackEntry>,
    index_files: Vec<String>,
}

/// What becomes of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    Delete,
    /// Listed by an index file, but not on the backend: only its listing goes.
    Missing,
}

/// Every blob reachable from the remaining snapshots (trees and data), each with the pack
/// its copy is kept from: that pack's position among the listed packs (in id order), or
/// [`UNPLACED`] until one is chosen. One map for both, rather than a set and a map, halves
/// what prune holds per blob (`docs/benchmarks.md`, "What `check` and `prune` hold per
/// blob").
type Placements = HashMap<ChunkId, u32>;

/// A reachable blob whose copy is not chosen yet.
const UNPLACED: u32 = u32::MAX;

/// Every blob reachable from `catalog` (trees and data), unplaced.
fn reachable(repo: &Repository, catalog: &Catalog) -> Result<Placements> {
    let mut used = Placements::new();
    let mut stack: Vec<ChunkId> = catalog.entries().iter().map(|e| e.snapshot.tree).collect();
    while let Some(tree) = stack.pop() {
        if used.insert(tree, UNPLACED).is_some() {
            continue;
        }
        let loaded = Tree::load(repo.store(), &tree).map_err(|e| {
            let remedy = match &e {
                // Listed nowhere: the index may only be incomplete, the pack still there.
                snapshot_index::Error::Store(chunk_store::Error::BlobNotFound { .. }) => {
                    "run `respaldo repair index` (it lists every pack again), then prune again"
                }
                _ => "run `respaldo check`, then `respaldo repair snapshots`",
            };
            Error::invalid(format!(
                "prune stopped before changing anything: tree {tree} cannot be read ({e}); \
                 {remedy}"
            ))
        })?;
        for node in loaded.into_nodes() {
            match node.kind {
                NodeKind::File | NodeKind::Hardlink => {
                    used.extend(node.content.into_iter().map(|id| (id, UNPLACED)));
                }
                NodeKind::Dir => stack.extend(node.subtree),
                _ => {}
            }
        }
    }
    Ok(used)
}

impl Repository {
    /// Deletes and repacks what no snapshot needs (see the module documentation). Takes an
    /// exclusive lock: no backup runs meanwhile.
    pub fn prune(&self, options: &PruneOptions, progress: &dyn Progress) -> Result<PruneOutcome> {
        let run = || self.prune_packs(options, progress);
        self.observed(Operation::Prune, None, run)
    }

    fn prune_packs(&self, options: &PruneOptions, progress: &dyn Progress) -> Result<PruneOutcome> {
        if let Some(max) = options.max_unused
            && !(0.0..=1.0).contains(&max)
        {
            return Err(Error::invalid(format!(
                "max unused share {max} is out of range: give a fraction from 0 to 1"
            )));
        }
        // A dry run deletes nothing: it need not keep backups out.
        let kind = if options.dry_run {
            LockKind::Shared
        } else {
            LockKind::Exclusive
        };
        let lock = self.lock(kind, "prune")?;
        let store = self.store();
        let backend = store.backend();
        let mut outcome = PruneOutcome {
            dry_run: options.dry_run,
            ..PruneOutcome::default()
        };

        // Verified manifests, not the kept catalog: what prune deletes follows from them.
        let catalog = Catalog::load_verified(store).map_err(|e| {
            Error::invalid(format!(
                "prune stopped before changing anything: {e}; a snapshot that cannot be read \
                 cannot tell what it needs (`respaldo repair snapshots --forget ID` deletes it)"
            ))
        })?;
        outcome.snapshots = catalog.entries().len() as u64;
        let mut used = reachable(self, &catalog)?;
        outcome.blobs_used = used.len() as u64;

        let mut packs: BTreeMap<ChunkId, Listed> = BTreeMap::new();
        let mut index_files = Vec::new();
        let files = store.read_index_files().map_err(|e| match e {
            chunk_store::Error::Corrupt { .. } | chunk_store::Error::UnsupportedVersion { .. } => {
                Error::invalid(format!(
                    "prune stopped before changing anything: {e}; run `respaldo repair index`"
                ))
            }
            other => other.into(),
        })?;
        for (name, file) in files {
            for pack in file {
                let listed = packs.entry(pack.pack).or_insert_with(|| Listed {
                    size: pack.size,
                    entries: pack.blobs,
                    index_files: Vec::new(),
                });
                listed.index_files.push(name.clone());
            }
            index_files.push(name);
        }
        let on_backend: HashSet<String> = backend.list(FileKind::Pack)?.into_iter().collect();

        // Where each reachable blob is kept: its copy in the pack with the most reachable
        // blobs and then the fewest others, so that duplicates (two backups stored the same
        // blob at once; a prune killed after repacking) go first, and a pack that would be
        // kept whole keeps its copies.
        if packs.len() >= UNPLACED as usize {
            return Err(Error::invalid(format!(
                "prune stopped before changing anything: the index files list {} packs, more \
                 than prune can plan for at once",
                packs.len()
            )));
        }
        // Each pack's position in `packs` (id order): what a placement names.
        let positions: HashMap<ChunkId, u32> = packs
            .keys()
            .zip(0..)
            .map(|(pack, position)| (*pack, position))
            .collect();
        let scores: Vec<Option<(usize, std::cmp::Reverse<usize>)>> = packs
            .iter()
            .map(|(pack, listed)| {
                on_backend.contains(&pack.to_hex()).then(|| {
                    let n = listed
                        .entries
                        .iter()
                        .filter(|e| used.contains_key(&e.id))
                        .count();
                    (n, std::cmp::Reverse(listed.entries.len() - n))
                })
            })
            .collect();
        for ((listed, score), position) in packs.values().zip(&scores).zip(0u32..) {
            let Some(score) = score else {
                continue;
            };
            for entry in &listed.entries {
                let Some(slot) = used.get_mut(&entry.id) else {
                    continue;
                };
                let better = *slot == UNPLACED
                    || scores[*slot as usize].is_some_and(|current| current < *score);
                if better {
                    *slot = position;
                }
            }
        }
        if let Some((lost, _)) = used.iter().find(|(_, slot)| **slot == UNPLACED) {
            return Err(Error::invalid(format!(
                "prune stopped before changing anything: blob {lost}, which a snapshot needs, \
                 is in no pack of the repository; run `respaldo check` to see what it \
                 affects, then `respaldo repair index` or `respaldo repair snapshots`"
            )));
        }
        // Whether `entry`'s copy in `pack` is the one kept.
        let kept_in = |entry: &PackEntry, pack: &ChunkId| {
            used.get(&entry.id)
                .is_some_and(|slot| Some(slot) == positions.get(pack))
        };

        let mut fates: BTreeMap<ChunkId, Fate> = BTreeMap::new();
        let mut unused_blobs = HashSet::new();
        for (pack, listed) in &packs {
            if !on_backend.contains(&pack.to_hex()) {
                fates.insert(*pack, Fate::Missing);
                continue;
            }
            let (mut kept_bytes, mut total_bytes, mut kept) = (0u64, 0u64, 0usize);
            for entry in &listed.entries {
                total_bytes += u64::from(entry.length);
                if kept_in(entry, pack) {
                    kept_bytes += u64::from(entry.length);
                    kept += 1;
                } else if !used.contains_key(&entry.id) {
                    unused_blobs.insert(entry.id);
                }
            }
            let unused_share = if total_bytes == 0 {
                0.0
            } else {
                (total_bytes - kept_bytes) as f64 / total_bytes as f64
            };
            let fate = match options.max_unused {
                _ if kept == 0 => Fate::Delete,
                Some(max) if unused_share > max => Fate::Repack,
                _ => Fate::Keep,
            };
            fates.insert(*pack, fate);
        }
        outcome.blobs_unused = unused_blobs.len() as u64;
        let unindexed: Vec<String> = on_backend
            .iter()
            .filter(|name| {
                !name
                    .parse::<ChunkId>()
                    .is_ok_and(|id| packs.contains_key(&id))
            })
            .cloned()
            .collect();
        for (pack, fate) in &fates {
            let size = packs[pack].size;
            match fate {
                Fate::Keep => outcome.packs_kept += 1,
                Fate::Delete => {
                    outcome.packs_deleted += 1;
                    outcome.bytes_deleted += size;
                }
                Fate::Repack => {
                    outcome.packs_repacked += 1;
                    outcome.bytes_deleted += size;
                    for entry in &packs[pack].entries {
                        if kept_in(entry, pack) {
                            outcome.blobs_repacked += 1;
                            outcome.bytes_repacked += u64::from(entry.length);
                        }
                    }
                }
                Fate::Missing => outcome.packs_missing += 1,
            }
        }
        for name in &unindexed {
            outcome.packs_unindexed += 1;
            outcome.bytes_deleted += backend.size(FileKind::Pack, name)?;
        }
        let going = |pack: &ChunkId| fates.get(pack).is_some_and(|f| *f != Fate::Keep);
        let replaced: Vec<&String> = index_files
            .iter()
            .filter(|name| {
                packs
                    .iter()
                    .any(|(pack, l)| l.index_files.contains(name) && going(pack))
            })
            .collect();
        outcome.index_files_replaced = replaced.len() as u64;
        let replaced_set: HashSet<&String> = replaced.iter().copied().collect();
        let relist: Vec<IndexedPack> = packs
            .iter()
            .filter(|(pack, listed)| {
                !going(pack) && listed.index_files.iter().any(|f| replaced_set.contains(f))
            })
            .map(|(pack, listed)| IndexedPack {
                pack: *pack,
                size: listed.size,
                blobs: listed.entries.clone(),
            })
            .collect();
        let batches = chunk_store::index_file_batches(relist, MAX_INDEX_FILE_ENTRIES);
        outcome.index_files_written = batches.len() as u64;
        if options.dry_run {
            return Ok(outcome);
        }

        // 1. Copy the reachable blobs of the packs to repack into new packs, and list those
        //    in a new index file (the flush).
        let repack: Vec<ChunkId> = fates
            .iter()
            .filter(|(_, f)| **f == Fate::Repack)
            .map(|(p, _)| *p)
            .collect();
        progress.add_total(
            repack.len() as u64,
            repack.iter().map(|p| packs[p].size).sum(),
        );
        for pack in &repack {
            let bytes = store.read_pack(pack)?;
            for entry in &packs[pack].entries {
                if !kept_in(entry, pack) {
                    continue;
                }
                let sealed = entry.sealed_in(&bytes).ok_or_else(|| {
                    Error::invalid(format!(
                        "prune stopped before deleting anything: blob {} lies outside \
                             packs/{pack}, which is damaged; run `respaldo check --read-data`",
                        entry.id
                    ))
                })?;
                store.repack_blob(pack, entry, sealed).map_err(|e| {
                    Error::invalid(format!(
                        "prune stopped before deleting anything: {e}; run `respaldo check \
                         --read-data` to see what it affects"
                    ))
                })?;
            }
            progress.bytes_done(packs[pack].size);
        }
        store.flush()?;

        // 2. Replace the index files that list a pack going away: the packs they list that
        //    stay are listed again, in new files, before the old files are deleted.
        let mut relisted = Vec::new();
        for batch in &batches {
            relisted.push(store.write_index_file(batch)?);
        }

        // What this prune wrote must survive its deletions, even where a name repeats: in an
        // unencrypted repository sealing is deterministic, so a repacked pack (or an index
        // file) can be byte for byte, hence by name, one that an earlier prune, killed
        // before its deletions, left behind, and that this plan would delete.
        let before: HashSet<&String> = index_files.iter().collect();
        let mut fresh_index_files: HashSet<String> = backend
            .list(FileKind::Index)?
            .into_iter()
            .filter(|name| !before.contains(name))
            .collect();
        fresh_index_files.extend(relisted);
        let mut fresh_packs = HashSet::new();
        for name in &fresh_index_files {
            fresh_packs.extend(store.read_index_file(name)?.into_iter().map(|p| p.pack));
        }

        // 3. Delete, index files first: a pack must never go while an index file lists it.
        lock.ensure_held()?;
        for name in replaced.iter().filter(|n| !fresh_index_files.contains(**n)) {
            backend.delete(FileKind::Index, name)?;
        }
        for (pack, fate) in &fates {
            if matches!(fate, Fate::Delete | Fate::Repack) && !fresh_packs.contains(pack) {
                store.delete_pack(&pack.to_hex())?;
            }
        }
        for name in &unindexed {
            let fresh = name
                .parse::<ChunkId>()
                .is_ok_and(|p| fresh_packs.contains(&p));
            if !fresh {
                store.delete_pack(name)?;
            }
        }
        // The local index still lists the deleted packs.
        store.rebuild_index()?;
        Ok(outcome)
    }
}
