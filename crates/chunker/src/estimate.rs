//! Dedup estimation: how well data deduplicates under given parameters.

use std::collections::HashSet;
use std::io::{self, Read};

use crate::cdc::Chunker;
use crate::cut::CutPoints;
use crate::cutter::Cutter;
use crate::error::Error;
use crate::hasher::IdHasher;
use crate::id::ChunkId;
use crate::params::ChunkerParams;

/// Result of a dedup estimation.
///
/// Invariants: `unique_chunks <= chunks`, `unique_bytes <= logical_bytes`,
/// and the histogram counts sum to `chunks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupEstimate {
    /// Chunks seen, duplicates included.
    pub chunks: u64,
    /// Distinct chunks (by id).
    pub unique_chunks: u64,
    /// Bytes seen, duplicates included.
    pub logical_bytes: u64,
    /// Bytes of the distinct chunks: what a store would keep before
    /// compression.
    pub unique_bytes: u64,
    /// Chunk-size histogram over all chunks (duplicates included): only
    /// non-empty buckets, by ascending `upper_bound`.
    pub histogram: Vec<SizeBucket>,
}

impl DedupEstimate {
    /// `logical_bytes / unique_bytes`: 2.0 means the data would take half
    /// its size. 1.0 when nothing was seen.
    #[must_use]
    pub fn dedup_ratio(&self) -> f64 {
        if self.unique_bytes == 0 {
            1.0
        } else {
            self.logical_bytes as f64 / self.unique_bytes as f64
        }
    }
}

/// One power-of-two histogram bucket: a chunk of size `s` counts in the
/// bucket with the smallest power-of-two `upper_bound` such that
/// `s <= upper_bound` (so bucket 4096 holds sizes 2049..=4096).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBucket {
    /// Largest chunk size in this bucket (a power of two).
    pub upper_bound: u64,
    /// Number of chunks in this bucket.
    pub count: u64,
}

/// Running dedup counters over chunk ids: what [`DedupEstimator`] keeps, usable on its own
/// when the caller cuts and hashes chunks itself (for example with several chunkers at once).
///
/// Memory grows with the number of distinct chunks: one 32-byte id each, plus the hash set's
/// overhead (about 40 to 80 bytes per id in all).
#[derive(Clone)]
pub struct DedupTally {
    seen: HashSet<ChunkId>,
    chunks: u64,
    logical_bytes: u64,
    unique_bytes: u64,
    /// Index `i` counts chunks with upper bound `2^i`.
    buckets: [u64; 65],
}

impl Default for DedupTally {
    fn default() -> Self {
        Self {
            seen: HashSet::new(),
            chunks: 0,
            logical_bytes: 0,
            unique_bytes: 0,
            buckets: [0; 65],
        }
    }
}

impl std::fmt::Debug for DedupTally {
    /// Counters only: the set of ids can be huge.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTally")
            .field("chunks", &self.chunks)
            .field("unique_chunks", &self.seen.len())
            .field("logical_bytes", &self.logical_bytes)
            .field("unique_bytes", &self.unique_bytes)
            .finish_non_exhaustive()
    }
}

impl DedupTally {
    /// An empty tally.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one chunk of `len` bytes named `id`; returns whether it is new (its id was not
    /// seen before), that is whether a store would keep its bytes.
    pub fn add(&mut self, id: ChunkId, len: u64) -> bool {
        self.chunks += 1;
        self.logical_bytes += len;
        let bucket = len.max(1).next_power_of_two().trailing_zeros() as usize;
        self.buckets[bucket] += 1;
        let new = self.seen.insert(id);
        if new {
            self.unique_bytes += len;
        }
        new
    }

    /// Distinct chunks so far.
    #[must_use]
    pub fn unique_chunks(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Bytes of the distinct chunks so far.
    #[must_use]
    pub fn unique_bytes(&self) -> u64 {
        self.unique_bytes
    }

    /// The estimate over everything counted so far.
    #[must_use]
    pub fn estimate(&self) -> DedupEstimate {
        DedupEstimate {
            chunks: self.chunks,
            unique_chunks: self.seen.len() as u64,
            logical_bytes: self.logical_bytes,
            unique_bytes: self.unique_bytes,
            histogram: self
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &count)| count > 0)
                .map(|(i, &count)| SizeBucket {
                    upper_bound: 1u64 << i,
                    count,
                })
                .collect(),
        }
    }
}

/// Estimates deduplication: chunks data with any chunker kind, hashes every chunk and counts
/// the distinct ones ([`DedupTally`]). Memory grows with the number of distinct chunks (one
/// id, 32 bytes plus set overhead, each).
#[derive(Debug, Clone)]
pub struct DedupEstimator {
    cutter: Cutter,
    hasher: IdHasher,
    tally: DedupTally,
}

impl DedupEstimator {
    /// An empty estimator chunking with FastCDC.
    ///
    /// # Errors
    /// The errors of [`ChunkerParams::validate`].
    pub fn new(params: ChunkerParams, hasher: IdHasher) -> Result<Self, Error> {
        Ok(Self::with_cutter(Chunker::new(params)?.into(), hasher))
    }

    /// An empty estimator chunking with `cutter` (any kind).
    #[must_use]
    pub fn with_cutter(cutter: Cutter, hasher: IdHasher) -> Self {
        Self {
            cutter,
            hasher,
            tally: DedupTally::default(),
        }
    }

    /// The chunker in use.
    #[must_use]
    pub fn cutter(&self) -> &Cutter {
        &self.cutter
    }

    /// The counters so far.
    #[must_use]
    pub fn tally(&self) -> &DedupTally {
        &self.tally
    }

    /// Adds one in-memory input (chunked on its own, like a separate file).
    pub fn add_slice(&mut self, data: &[u8]) {
        for chunk in self.cutter.chunk_slice(data) {
            self.tally.add(self.hasher.hash(chunk), chunk.len() as u64);
        }
    }

    /// Adds one chunk, cut by the caller; returns whether it is new.
    pub fn add_chunk(&mut self, chunk: &[u8]) -> bool {
        self.tally.add(self.hasher.hash(chunk), chunk.len() as u64)
    }

    /// Adds one streamed input (chunked on its own, like a separate file) and
    /// returns its length.
    ///
    /// # Errors
    /// The reader's errors ([`io::ErrorKind::Interrupted`] is retried). The
    /// chunks seen before the error stay counted.
    pub fn add_reader<R: Read>(&mut self, reader: R) -> io::Result<u64> {
        let Self {
            cutter,
            hasher,
            tally,
        } = self;
        cutter.chunk_reader(reader, |chunk| {
            tally.add(hasher.hash(chunk), chunk.len() as u64);
            Ok::<(), io::Error>(())
        })
    }

    /// The estimate over everything added so far.
    #[must_use]
    pub fn estimate(&self) -> DedupEstimate {
        self.tally.estimate()
    }
}

/// Estimates deduplication of `data` (each element chunked on its own) with
/// plain BLAKE3 ids.
///
/// # Errors
/// The errors of [`ChunkerParams::validate`].
pub fn estimate_dedup(params: ChunkerParams, data: &[&[u8]]) -> Result<DedupEstimate, Error> {
    let mut estimator = DedupEstimator::new(params, IdHasher::Plain)?;
    for item in data {
        estimator.add_slice(item);
    }
    Ok(estimator.estimate())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn noise(len: usize, mut s: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams::new(1024, 4096, 16384, 1, 0).unwrap()
    }

    #[test]
    fn empty() {
        let e = estimate_dedup(small(), &[]).unwrap();
        assert_eq!(e, DedupEstimate::default());
        assert!((e.dedup_ratio() - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn same_data_twice_halves() {
        let data = noise(300_000, 42);
        let e = estimate_dedup(small(), &[&data, &data]).unwrap();
        assert_eq!(e.logical_bytes, 600_000);
        assert_eq!(e.unique_bytes, e.logical_bytes / 2);
        assert_eq!(e.unique_chunks * 2, e.chunks);
        assert!((e.dedup_ratio() - 2.0).abs() < 1e-9);
        assert_eq!(e.histogram.iter().map(|b| b.count).sum::<u64>(), e.chunks);
        assert!(
            e.histogram
                .windows(2)
                .all(|w| w[0].upper_bound < w[1].upper_bound)
        );
        assert!(
            e.histogram
                .iter()
                .all(|b| b.count > 0 && b.upper_bound.is_power_of_two())
        );
        assert!(e.histogram.last().unwrap().upper_bound <= 16384);
    }

    #[test]
    fn reader_equals_slice() {
        let data = noise(200_000, 7);
        let mut a = DedupEstimator::new(small(), IdHasher::Keyed([1; 32])).unwrap();
        a.add_slice(&data);
        let mut b = DedupEstimator::new(small(), IdHasher::Keyed([1; 32])).unwrap();
        assert_eq!(b.add_reader(&data[..]).unwrap(), 200_000);
        assert_eq!(a.estimate(), b.estimate());
    }

    #[test]
    fn histogram_buckets() {
        let mut t = DedupTally::new();
        for len in [1usize, 2, 3, 4, 5, 4096, 4097] {
            let chunk = vec![len as u8; len];
            assert!(t.add(IdHasher::Plain.hash(&chunk), len as u64));
        }
        assert!(!t.add(IdHasher::Plain.hash(&[1]), 1), "seen before");
        let est = t.estimate();
        let got: Vec<(u64, u64)> = est
            .histogram
            .iter()
            .map(|b| (b.upper_bound, b.count))
            .collect();
        assert_eq!(got, [(1, 2), (2, 1), (4, 2), (8, 1), (4096, 1), (8192, 1)]);
        assert_eq!((est.chunks, est.unique_chunks), (8, 7));
        assert_eq!(
            (t.unique_chunks(), t.unique_bytes()),
            (7, 1 + 2 + 3 + 4 + 5 + 4096 + 4097)
        );
    }

    #[test]
    fn any_cutter_estimates() {
        let data = noise(100_000, 9);
        let fixed = crate::FixedChunker::new(1000).unwrap();
        let mut e = DedupEstimator::with_cutter(fixed.into(), IdHasher::Plain);
        e.add_slice(&data);
        assert!(!e.add_chunk(&data[..1000]), "the first chunk was seen");
        assert_eq!(e.add_reader(&data[..]).unwrap(), 100_000);
        let est = e.estimate();
        assert_eq!((est.chunks, est.unique_chunks), (201, 100));
        assert!(matches!(e.cutter(), Cutter::Fixed(_)));
        assert_eq!(e.tally().unique_bytes(), 100_000);
    }

    #[test]
    fn bad_params() {
        let p = ChunkerParams {
            normalization: 9,
            ..ChunkerParams::default()
        };
        assert!(estimate_dedup(p, &[]).is_err());
    }
}
