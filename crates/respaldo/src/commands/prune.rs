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

use std::collections::HashSet;

use chunk_store::{ChunkId, FileKind, IndexedPack, MAX_INDEX_FILE_ENTRIES};
use snapshot_index::{Catalog, NodeKind, Tree};

use crate::commands::listed_blobs::{ListedBlobs, ListedBlobsBuilder};
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

/// What becomes of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    Delete,
    /// Listed by an index file, but not on the backend: only its listing goes.
    Missing,
}

/// Flag of a blob's first copy: a remaining snapshot needs the blob.
const REACHABLE: u8 = 1;
/// Flag of a copy: it is the one kept of its blob.
const KEPT: u8 = 2;

/// Why prune stops when a blob a snapshot needs is in no pack.
fn lost(blob: &ChunkId) -> Error {
    Error::invalid(format!(
        "prune stopped before changing anything: blob {blob}, which a snapshot needs, is in no \
         pack of the repository; run `respaldo check` to see what it affects, then `respaldo \
         repair index` or `respaldo repair snapshots`"
    ))
}

/// What marking the reachable blobs found.
struct Reached {
    /// Distinct reachable blobs (trees and data).
    blobs: u64,
    /// A reachable blob no index file lists, if there is one.
    lost: Option<ChunkId>,
}

/// Flags the first copy of every blob reachable from `catalog` (trees and data) with
/// [`REACHABLE`]. A tree that cannot be read stops prune at once; a reachable blob no index
/// file lists is reported after the walk, so that a tree that cannot be read, the likelier
/// cause, is the one named.
fn mark_reachable(
    repo: &Repository,
    catalog: &Catalog,
    listed: &ListedBlobs,
    flags: &mut [u8],
) -> Result<Reached> {
    let mut reached = Reached {
        blobs: 0,
        lost: None,
    };
    // Blobs no index file lists that were met: a tree among them is walked once, like the
    // others.
    let mut unlisted = HashSet::new();
    // Flags `blob`; whether it was met for the first time.
    let mut reach = |blob: &ChunkId, reached: &mut Reached| match listed.first_copy(blob) {
        Some(first) => {
            let new = flags[first] & REACHABLE == 0;
            flags[first] |= REACHABLE;
            reached.blobs += u64::from(new);
            new
        }
        None => {
            reached.lost.get_or_insert(*blob);
            unlisted.insert(*blob)
        }
    };
    let mut stack: Vec<ChunkId> = catalog.entries().iter().map(|e| e.snapshot.tree).collect();
    while let Some(tree) = stack.pop() {
        if !reach(&tree, &mut reached) {
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
                    for blob in &node.content {
                        reach(blob, &mut reached);
                    }
                }
                NodeKind::Dir => stack.extend(node.subtree),
                _ => {}
            }
        }
    }
    Ok(reached)
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

        // The index files are what prune plans from (and rewrites): not the local cache. One
        // that cannot be read is reported after the walk, which names a tree that cannot be
        // read first, as it always has.
        let mut builder = ListedBlobsBuilder::default();
        let mut unreadable_index = None;
        for name in backend.list(FileKind::Index)? {
            match store.read_index_file(&name) {
                Ok(packs) => builder.add_file(name, packs)?,
                Err(e) => {
                    unreadable_index.get_or_insert(e);
                }
            }
        }
        let listed = builder.finish();
        let packs = listed.packs();
        let copies = listed.copies();
        // One byte of flags per copy: `REACHABLE` on a blob's first copy, `KEPT` on the copy
        // kept of it.
        let mut flags = vec![0u8; copies.len()];
        let reached = mark_reachable(self, &catalog, &listed, &mut flags)?;
        if let Some(e) = unreadable_index {
            return Err(match e {
                chunk_store::Error::Corrupt { .. }
                | chunk_store::Error::UnsupportedVersion { .. } => Error::invalid(format!(
                    "prune stopped before changing anything: {e}; run `respaldo repair index`"
                )),
                other => other.into(),
            });
        }
        if let Some(blob) = reached.lost {
            return Err(lost(&blob));
        }
        outcome.blobs_used = reached.blobs;
        let on_backend: HashSet<String> = backend.list(FileKind::Pack)?.into_iter().collect();
        let present: Vec<bool> = packs
            .iter()
            .map(|p| on_backend.contains(&p.id.to_hex()))
            .collect();

        // Where each reachable blob is kept: its copy in the pack with the most reachable
        // blobs and then the fewest others, so that duplicates (two backups stored the same
        // blob at once; a prune killed after repacking) go first, and a pack that would be
        // kept whole keeps its copies. Ties go to the first pack in id order.
        let mut reachable_in = vec![0usize; packs.len()];
        for blob in listed.blobs() {
            if flags[blob.start] & REACHABLE != 0 {
                for copy in &copies[blob] {
                    reachable_in[copy.pack as usize] += 1;
                }
            }
        }
        let scores: Vec<Option<(usize, std::cmp::Reverse<usize>)>> = (0..packs.len())
            .map(|p| {
                let n = reachable_in[p];
                let others = listed.copies_in(p as u32).len() - n;
                present[p].then_some((n, std::cmp::Reverse(others)))
            })
            .collect();
        drop(reachable_in);
        for blob in listed.blobs() {
            if flags[blob.start] & REACHABLE == 0 {
                // Unused where it can still be seen: in a pack that exists.
                let seen = copies[blob].iter().any(|c| present[c.pack as usize]);
                outcome.blobs_unused += u64::from(seen);
                continue;
            }
            let mut best: Option<(usize, (usize, std::cmp::Reverse<usize>))> = None;
            for i in blob.clone() {
                let Some(score) = scores[copies[i].pack as usize] else {
                    continue;
                };
                if best.is_none_or(|(_, current)| current < score) {
                    best = Some((i, score));
                }
            }
            let (kept, _) = best.ok_or_else(|| lost(&copies[blob.start].id))?;
            flags[kept] |= KEPT;
        }
        // Whether copy `i` is the one kept of its blob.
        let kept = |i: usize| flags[i] & KEPT != 0;

        let fates: Vec<Fate> = (0..packs.len())
            .map(|p| {
                if !present[p] {
                    return Fate::Missing;
                }
                let (mut kept_bytes, mut total_bytes, mut kept_copies) = (0u64, 0u64, 0usize);
                for (i, share) in listed.stored_shares_in(p as u32) {
                    total_bytes += share;
                    if kept(i) {
                        kept_bytes += share;
                        kept_copies += 1;
                    }
                }
                let unused_share = if total_bytes == 0 {
                    0.0
                } else {
                    (total_bytes - kept_bytes) as f64 / total_bytes as f64
                };
                match options.max_unused {
                    _ if kept_copies == 0 => Fate::Delete,
                    Some(max) if unused_share > max => Fate::Repack,
                    _ => Fate::Keep,
                }
            })
            .collect();
        let unindexed: Vec<String> = on_backend
            .iter()
            .filter(|name| {
                !name
                    .parse::<ChunkId>()
                    .is_ok_and(|id| listed.pack_position(&id).is_some())
            })
            .cloned()
            .collect();
        for (p, fate) in fates.iter().enumerate() {
            let size = packs[p].size;
            match fate {
                Fate::Keep => outcome.packs_kept += 1,
                Fate::Delete => {
                    outcome.packs_deleted += 1;
                    outcome.bytes_deleted += size;
                }
                Fate::Repack => {
                    outcome.packs_repacked += 1;
                    outcome.bytes_deleted += size;
                    for (i, share) in listed.stored_shares_in(p as u32) {
                        if kept(i) {
                            outcome.blobs_repacked += 1;
                            outcome.bytes_repacked += share;
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
        // The index files that list a pack going away are replaced.
        let index_files = listed.index_files();
        let mut replaced_at = vec![false; index_files.len()];
        for (pack, fate) in packs.iter().zip(&fates) {
            if *fate != Fate::Keep {
                for file in &pack.index_files {
                    replaced_at[*file as usize] = true;
                }
            }
        }
        let replaced: Vec<&String> = index_files
            .iter()
            .zip(&replaced_at)
            .filter(|(_, replaced)| **replaced)
            .map(|(name, _)| name)
            .collect();
        outcome.index_files_replaced = replaced.len() as u64;
        let relist: Vec<IndexedPack> = (0..packs.len())
            .filter(|p| {
                fates[*p] == Fate::Keep
                    && packs[*p]
                        .index_files
                        .iter()
                        .any(|f| replaced_at[*f as usize])
            })
            .map(|p| IndexedPack {
                pack: packs[p].id,
                size: packs[p].size,
                blobs: listed.entries_in(p as u32),
            })
            .collect();
        let batches = chunk_store::index_file_batches(relist, MAX_INDEX_FILE_ENTRIES);
        outcome.index_files_written = batches.len() as u64;
        if options.dry_run {
            return Ok(outcome);
        }

        // 1. Copy the reachable blobs of the packs to repack into new packs, and list those
        //    in a new index file (the flush).
        let repack: Vec<usize> = (0..packs.len())
            .filter(|p| fates[*p] == Fate::Repack)
            .collect();
        progress.add_total(
            repack.len() as u64,
            repack.iter().map(|p| packs[*p].size).sum(),
        );
        for p in repack {
            let pack = &packs[p].id;
            let bytes = store.read_pack(pack)?;
            // In the order they lie in the pack: a file's chunks stay together.
            for i in listed.copies_in_place_order(p as u32) {
                if !kept(i) {
                    continue;
                }
                let entry = copies[i].entry();
                let sealed = entry.sealed_in(&bytes).ok_or_else(|| {
                    Error::invalid(format!(
                        "prune stopped before deleting anything: blob {} lies outside \
                             packs/{pack}, which is damaged; run `respaldo check --read-data`",
                        entry.id
                    ))
                })?;
                store.repack_blob(pack, &entry, sealed).map_err(|e| {
                    Error::invalid(format!(
                        "prune stopped before deleting anything: {e}; run `respaldo check \
                         --read-data` to see what it affects"
                    ))
                })?;
            }
            progress.bytes_done(packs[p].size);
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
        for (pack, fate) in packs.iter().zip(&fates) {
            if matches!(fate, Fate::Delete | Fate::Repack) && !fresh_packs.contains(&pack.id) {
                store.delete_pack(&pack.id.to_hex())?;
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
