//! [`Cutter`]: any chunker kind behind one type.

use crate::cdc::Chunker;
use crate::cut::{CutPoints, Sealed};
use crate::fixed::FixedChunker;
use crate::pages::PageChunker;

/// A chunker of any kind, used interchangeably: FastCDC ([`Chunker`]), fixed-size
/// ([`FixedChunker`]) or page-aligned content-defined ([`PageChunker`]). Build one from a
/// [`ChunkingSpec`](crate::ChunkingSpec) with
/// [`ChunkingSpec::cutter`](crate::ChunkingSpec::cutter), or wrap a chunker with `From`.
///
/// Guarantee: exactly the chunks of the wrapped chunker, through the same API (the methods of
/// [`CutPoints`]); one `match` per chunk is all the wrapping costs.
#[derive(Debug, Clone)]
pub enum Cutter {
    /// Content-defined, FastCDC 2020 (the repository's chunker).
    FastCdc(Chunker),
    /// A cut every N bytes.
    Fixed(FixedChunker),
    /// Content-defined at page granularity.
    Pages(PageChunker),
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
