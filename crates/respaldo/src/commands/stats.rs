//! `stats`: sizes, dedup and compression.

use std::collections::{HashMap, HashSet};

use chunker::ChunkId;
use snapshot_index::{NodeKind, SnapshotEntry, Tree};

use crate::error::Result;
use crate::repository::Repository;

/// Sizes of one snapshot or of the whole repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files (and hard links) in them, counted once per snapshot (and once per path: two
    /// identical folders in one snapshot count twice).
    pub files: u64,
    /// Sum of the file (and hard link) sizes over the snapshots (what a plain copy would take).
    pub logical_bytes: u64,
    /// Distinct data chunks referenced.
    pub unique_chunks: u64,
    /// Uncompressed size of the distinct chunks.
    pub unique_bytes: u64,
    /// Stored (compressed and sealed) size of the distinct chunks.
    pub stored_bytes: u64,
    /// Distinct packs holding them.
    pub packs: u64,
    /// `logical_bytes / unique_bytes`; 1.0 when `unique_bytes` is 0 (nothing to deduplicate).
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`; 1.0 when `stored_bytes` is 0.
    pub compression_ratio: f64,
}

/// Files and bytes below one tree; the same for every occurrence of its id.
#[derive(Debug, Clone, Copy, Default)]
struct TreeTotals {
    files: u64,
    bytes: u64,
}

/// Walks trees once per id, remembering totals and collecting chunk ids.
struct Counter<'a> {
    repo: &'a Repository,
    totals: HashMap<ChunkId, TreeTotals>,
    chunks: HashSet<ChunkId>,
}

impl Counter<'_> {
    fn tree(&mut self, id: &ChunkId) -> Result<TreeTotals> {
        if let Some(totals) = self.totals.get(id) {
            return Ok(*totals);
        }
        let mut totals = TreeTotals::default();
        for node in Tree::load(self.repo.store(), id)?.into_nodes() {
            match node.kind {
                NodeKind::File | NodeKind::Hardlink => {
                    totals.files += 1;
                    totals.bytes += node.size;
                    self.chunks.extend(node.content);
                }
                NodeKind::Dir => {
                    if let Some(subtree) = node.subtree {
                        let below = self.tree(&subtree)?;
                        totals.files += below.files;
                        totals.bytes += below.bytes;
                    }
                }
                _ => {}
            }
        }
        self.totals.insert(*id, totals);
        Ok(totals)
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Repository {
    /// Statistics of `snapshot`, or of every snapshot when `None`.
    ///
    /// Errors: a tree cannot be read, or a referenced chunk is not in the index
    /// (`chunk_store::Error::BlobNotFound` naming it).
    pub fn stats(&self, snapshot: Option<&SnapshotEntry>) -> Result<Stats> {
        let entries = match snapshot {
            Some(entry) => vec![entry.clone()],
            None => self.catalog()?.entries().to_vec(),
        };
        let mut counter = Counter {
            repo: self,
            totals: HashMap::new(),
            chunks: HashSet::new(),
        };
        let mut stats = Stats {
            snapshots: entries.len() as u64,
            ..Stats::default()
        };
        for entry in &entries {
            let totals = counter.tree(&entry.snapshot.tree)?;
            stats.files += totals.files;
            stats.logical_bytes += totals.bytes;
        }
        let mut packs = HashSet::new();
        for id in &counter.chunks {
            let location = self
                .store()
                .locate(id)?
                .ok_or(chunk_store::Error::BlobNotFound { id: *id })?;
            stats.unique_bytes += u64::from(location.raw_length);
            stats.stored_bytes += u64::from(location.length);
            packs.insert(location.pack);
        }
        stats.unique_chunks = counter.chunks.len() as u64;
        stats.packs = packs.len() as u64;
        stats.dedup_ratio = ratio(stats.logical_bytes, stats.unique_bytes);
        stats.compression_ratio = ratio(stats.unique_bytes, stats.stored_bytes);
        Ok(stats)
    }
}
