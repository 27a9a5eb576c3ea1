//! Content-defined chunking, chunk ids and dedup estimation for respaldo.
//!
//! # Chunker kinds
//!
//! | kind | type | cuts | spec |
//! |---|---|---|---|
//! | FastCDC 2020 (what repositories use) | [`Chunker`] | content-defined, any byte offset | `fastcdc:128K,512K,2M` |
//! | fixed-size | [`FixedChunker`] | every N bytes | `fixed:4K` |
//! | page-aligned content-defined | [`PageChunker`] | after a page whose own hash hits, at multiples of the page size | `pages:1,4,16` |
//!
//! All three implement [`CutPoints`] and offer the same API (`chunk_slice`, `stream` with
//! `next_chunk` and `bytes_read`, `chunk_reader`); [`Cutter`] wraps any of them, and
//! [`ChunkingSpec`] parses the spec syntax and builds a [`Cutter`] per file (page kinds read
//! a SQLite database's page size from its header, [`sqlite_page_size`], and use 4096-byte
//! pages for other files). [`MultiStream`] chunks one reader with several cutters while
//! reading it once, and [`DedupTally`] / [`DedupEstimator`] count what deduplicates.
//!
//! # The algorithm
//!
//! Data is cut into variable-size chunks with **FastCDC 2020** (Xia et al.,
//! "The Design of Fast Content-Defined Chunking for Data Deduplication Based
//! Storage Systems", IEEE TPDS 2020). A gear hash rolls over the bytes, two at
//! a time; a position is a cut point when the hash ANDed with a mask is zero.
//! Cut points therefore depend only on the bytes near them, not on their
//! offset: inserting or deleting bytes in a file changes the chunks around
//! the edit, and the chunking resynchronises shortly after, so the rest of the
//! file deduplicates against earlier snapshots. Three refinements keep chunks
//! in shape and the scan fast:
//!
//! - no cut is tested before `min_size` (cut-point skipping), and a cut is
//!   forced at `max_size`;
//! - *normalized chunking*: a stricter mask before `avg_size` and a looser one
//!   after it pull chunk sizes toward the average (level 0..=3);
//! - an optional `seed` XOR-ed into the gear tables, so that chunk sizes (and
//!   thus file sizes) cannot be inferred by someone who does not know it.
//!
//! Each chunk is named by its BLAKE3 hash ([`IdHasher::Plain`]) or, for
//! encrypted repositories, a keyed BLAKE3 hash ([`IdHasher::Keyed`]).
//!
//! # Why the exact `fastcdc =5.0.0` pin
//!
//! A deduplicating store only deduplicates if the same data is cut at the
//! same places every time. fastcdc releases have changed cut points (mask
//! selection, odd-size handling), so this crate pins the exact version
//! ([`FASTCDC_VERSION`]), and its tests pin expected cut points: any change of
//! fastcdc, or of how this crate drives it, fails them. The scan loop itself
//! is fastcdc's (`cut_gear`); this crate precomputes the masks and gear tables
//! once per [`Chunker`] and cuts slices of its own buffer, which avoids the
//! per-chunk `Vec` that fastcdc's `StreamCDC` allocates (about twice as fast).
//! fastcdc checks parameters only in debug builds, and never that sizes are
//! powers of two, so [`ChunkerParams::validate`] checks them all.
//!
//! # Example
//!
//! ```
//! use chunker::{Chunker, ChunkerParams, CutPoints, IdHasher};
//!
//! let params = ChunkerParams::new(4096, 16384, 65536, 1, 0)?;
//! let chunker = Chunker::new(params)?;
//! let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
//!
//! // In memory:
//! let chunks: Vec<&[u8]> = chunker.chunk_slice(&data).collect();
//! assert_eq!(chunks.concat(), data);
//!
//! // Streaming, same cut points:
//! let mut ids = Vec::new();
//! let total = chunker.chunk_reader(&data[..], |chunk| {
//!     ids.push(IdHasher::Plain.hash(chunk));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! assert_eq!(total, data.len() as u64);
//! assert_eq!(ids.len(), chunks.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cdc;
mod cut;
mod cutter;
mod error;
mod estimate;
mod fixed;
mod hasher;
mod id;
mod multi;
mod pages;
mod params;
mod spec;
mod sqlite;

pub use cdc::{ChunkStream, Chunker, SliceChunks};
pub use cut::{CutPoints, CutStream, SliceCuts};
pub use cutter::Cutter;
pub use error::Error;
pub use estimate::{DedupEstimate, DedupEstimator, DedupTally, SizeBucket, estimate_dedup};
pub use fixed::{FIXED_MIN_SIZE, FixedChunker, MAX_CHUNK_SIZE};
pub use hasher::IdHasher;
pub use id::{ChunkId, find_by_prefix};
pub use multi::MultiStream;
pub use pages::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGES, MIN_PAGE_SIZE, PageChunker, PageParams, page_hash,
};
pub use params::{ALGORITHM, ChunkerParams, FASTCDC_VERSION};
pub use spec::{ChunkingSpec, PageSize};
pub use sqlite::{SQLITE_HEADER_LEN, read_header, sqlite_page_size};
