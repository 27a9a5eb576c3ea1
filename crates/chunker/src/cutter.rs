//! [`Cutter`]: any chunker kind behind one type.

use std::io::{self, Read};

use crate::cdc::Chunker;
use crate::cut::{self, CutPoints, CutStream, Sealed, SliceCuts};
use crate::fixed::FixedChunker;
use crate::pages::PageChunker;

/// A chunker of any kind, used interchangeably: FastCDC ([`Chunker`]), fixed-size
/// ([`FixedChunker`]) or page-aligned content-defined ([`PageChunker`]). Build one from a
/// [`ChunkingSpec`](crate::ChunkingSpec) with
/// [`ChunkingSpec::cutter`](crate::ChunkingSpec::cutter), or wrap a chunker with `From`.
///
/// Guarantee: exactly the chunks of the wrapped chunker, through the same API
/// ([`Cutter::chunk_slice`], [`Cutter::stream`] with `next_chunk` and `bytes_read`,
/// [`Cutter::chunk_reader`]); one `match` per chunk is all the wrapping costs.
#[derive(Debug, Clone)]
pub enum Cutter {
    /// Content-defined, FastCDC 2020 (the repository's chunker).
    FastCdc(Chunker),
    /// A cut every N bytes.
    Fixed(FixedChunker),
    /// Content-defined at page granularity.
    Pages(PageChunker),
}

impl Cutter {
    /// Chunks in-memory data: sub-slices of `data`, in order. Allocates nothing.
    #[must_use]
    pub fn chunk_slice<'a>(&'a self, data: &'a [u8]) -> SliceCuts<'a, Self> {
        SliceCuts::new(self, data)
    }

    /// Chunks a reader, streaming, with the default buffer (see [`CutStream`]).
    #[must_use]
    pub fn stream<R: Read>(&self, reader: R) -> CutStream<'_, Self, R> {
        CutStream::new(self, reader, None)
    }

    /// Like [`Cutter::stream`], with a buffer of `capacity` bytes (at least twice the largest
    /// chunk). Cut points do not depend on it.
    #[must_use]
    pub fn stream_with_capacity<R: Read>(
        &self,
        reader: R,
        capacity: usize,
    ) -> CutStream<'_, Self, R> {
        CutStream::new(self, reader, Some(capacity))
    }

    /// Chunks `reader`, calling `f` with each chunk in order; returns the bytes read.
    ///
    /// # Errors
    /// The first error from reading (converted with `E::from`; `Interrupted` is retried) or
    /// from `f`.
    pub fn chunk_reader<R: Read, E: From<io::Error>>(
        &self,
        reader: R,
        f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        cut::for_each_chunk(self.stream(reader), f)
    }
}

impl Sealed for Cutter {}

impl CutPoints for Cutter {
    #[inline]
    fn cut_len(&self, data: &[u8]) -> usize {
        match self {
            Cutter::FastCdc(c) => c.cut_len(data),
            Cutter::Fixed(c) => c.cut_len(data),
            Cutter::Pages(c) => c.cut_len(data),
        }
    }

    fn max_chunk_len(&self) -> usize {
        match self {
            Cutter::FastCdc(c) => c.max_chunk_len(),
            Cutter::Fixed(c) => c.max_chunk_len(),
            Cutter::Pages(c) => c.max_chunk_len(),
        }
    }

    fn min_chunk_len(&self) -> usize {
        match self {
            Cutter::FastCdc(c) => c.min_chunk_len(),
            Cutter::Fixed(c) => c.min_chunk_len(),
            Cutter::Pages(c) => c.min_chunk_len(),
        }
    }
}

impl From<Chunker> for Cutter {
    fn from(c: Chunker) -> Self {
        Cutter::FastCdc(c)
    }
}

impl From<FixedChunker> for Cutter {
    fn from(c: FixedChunker) -> Self {
        Cutter::Fixed(c)
    }
}

impl From<PageChunker> for Cutter {
    fn from(c: PageChunker) -> Self {
        Cutter::Pages(c)
    }
}
