//! What every chunker kind shares: the [`CutPoints`] rule, and the slice iterator and
//! streaming reader built on it ([`SliceCuts`], [`CutStream`]).

use std::fmt;
use std::io::{self, Read};
use std::iter::FusedIterator;

use crate::cdc::Chunker;

/// Smallest read buffer [`CutStream`] uses by default.
pub(crate) const MIN_STREAM_BUFFER: usize = 8 * 1024 * 1024;

mod sealed {
    /// Keeps [`super::CutPoints`] implemented by this crate's chunkers only, so that new
    /// methods can be added to it.
    pub trait Sealed {}
}

/// A rule that finds cut points: implemented by every chunker kind ([`Chunker`],
/// [`FixedChunker`](crate::FixedChunker), [`PageChunker`](crate::PageChunker)) and by
/// [`Cutter`](crate::Cutter), which wraps any of them. Sealed: only this crate implements it.
///
/// Contract: [`CutPoints::cut_len`] over a window that holds at least
/// [`CutPoints::max_chunk_len`] bytes, or that runs to the end of the input, returns the
/// length of the chunk that starts the window, the same as over the whole input. So
/// [`SliceCuts`], [`CutStream`] and [`MultiStream`](crate::MultiStream) all give the same
/// chunks, however the input is read.
pub trait CutPoints: sealed::Sealed {
    /// Length of the chunk at the start of `data`: `1..=max_chunk_len()`, or 0 only when
    /// `data` is empty. Exact (see the trait's contract) when `data` holds at least
    /// `max_chunk_len()` bytes or runs to the end of the input.
    fn cut_len(&self, data: &[u8]) -> usize;

    /// Largest chunk this rule makes; also how much look-ahead [`CutPoints::cut_len`] needs.
    fn max_chunk_len(&self) -> usize;

    /// Smallest chunk this rule makes, except the last chunk of an input, which may be
    /// shorter.
    fn min_chunk_len(&self) -> usize;

    /// Chunks in-memory data: non-empty sub-slices of `data`, in order, that concatenate to
    /// it. Allocates nothing.
    #[must_use]
    fn chunk_slice<'a>(&'a self, data: &'a [u8]) -> SliceCuts<'a, Self>
    where
        Self: Sized,
    {
        SliceCuts::new(self, data)
    }

    /// Chunks a reader, streaming, with the default buffer (see [`CutStream`]): the same
    /// chunks as [`CutPoints::chunk_slice`] over the whole input, however it is read.
    #[must_use]
    fn stream<R: Read>(&self, reader: R) -> CutStream<'_, Self, R>
    where
        Self: Sized,
    {
        CutStream::new(self, reader, None)
    }

    /// Like [`CutPoints::stream`], with a buffer of `capacity` bytes (raised to at least twice
    /// the largest chunk). Cut points do not depend on it; a smaller buffer saves memory at
    /// the cost of more, smaller reads.
    #[must_use]
    fn stream_with_capacity<R: Read>(&self, reader: R, capacity: usize) -> CutStream<'_, Self, R>
    where
        Self: Sized,
    {
        CutStream::new(self, reader, Some(capacity))
    }

    /// Like [`CutPoints::stream`], reading into `buffer` instead of allocating one: its
    /// contents do not matter, and it is grown to at least twice the largest chunk (to its
    /// capacity, if that is larger). Take it back with [`CutStream::into_buffer`], so that
    /// chunking many inputs allocates once. Cut points do not depend on the buffer.
    #[must_use]
    fn stream_with_buffer<R: Read>(&self, reader: R, buffer: Vec<u8>) -> CutStream<'_, Self, R>
    where
        Self: Sized,
    {
        CutStream::with_buffer(self, reader, buffer)
    }

    /// Chunks `reader`, calling `f` with each chunk in order, and returns the bytes read (the
    /// sum of the chunk lengths).
    ///
    /// # Errors
    /// Stops at, and returns, the first error: from reading (converted with `E::from`;
    /// [`io::ErrorKind::Interrupted`] is retried) or from `f`.
    fn chunk_reader<R: Read, E: From<io::Error>>(
        &self,
        reader: R,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        Self: Sized,
    {
        let mut stream = self.stream(reader);
        while let Some(chunk) = stream.next_chunk()? {
            f(chunk)?;
        }
        Ok(stream.bytes_read())
    }
}

impl sealed::Sealed for Chunker {}

impl CutPoints for Chunker {
    #[inline]
    fn cut_len(&self, data: &[u8]) -> usize {
        self.cut(data)
    }

    fn max_chunk_len(&self) -> usize {
        self.params().max_size as usize
    }

    fn min_chunk_len(&self) -> usize {
        self.params().min_size as usize
    }
}

pub(crate) use sealed::Sealed;

/// Iterator over the chunks of an in-memory slice under any [`CutPoints`] rule: non-empty
/// sub-slices of the input, in order, that concatenate to it. Allocates nothing.
#[derive(Clone)]
pub struct SliceCuts<'a, C> {
    cutter: &'a C,
    rest: &'a [u8],
}

impl<'a, C: CutPoints> SliceCuts<'a, C> {
    /// Chunks of `data` under `cutter`.
    #[must_use]
    pub fn new(cutter: &'a C, data: &'a [u8]) -> Self {
        Self { cutter, rest: data }
    }

    /// The part of the input not yet yielded.
    #[must_use]
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<C: fmt::Debug> fmt::Debug for SliceCuts<'_, C> {
    /// The rule and how much input remains, not the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceCuts")
            .field("cutter", self.cutter)
            .field("remaining", &self.rest.len())
            .finish()
    }
}

impl<'a, C: CutPoints> Iterator for SliceCuts<'a, C> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let len = self.cutter.cut_len(self.rest).clamp(1, self.rest.len());
        let (chunk, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.rest.len();
        let lower = len.div_ceil(self.cutter.max_chunk_len().max(1));
        let upper = len.div_ceil(self.cutter.min_chunk_len().max(1));
        (lower, Some(upper))
    }
}

impl<C: CutPoints> FusedIterator for SliceCuts<'_, C> {}

/// Streaming chunker over a [`Read`] under any [`CutPoints`] rule: a lending iterator. Call
/// [`CutStream::next_chunk`] until it returns `Ok(None)`; each chunk borrows the internal
/// buffer until the next call.
///
/// One buffer, allocated once, of `max(4 × max_chunk_len, 8 MiB)` bytes (or the capacity given
/// to `stream_with_capacity`, or the buffer given to `stream_with_buffer`, raised to at least
/// `2 × max_chunk_len`); the unconsumed tail
/// moves to the front on refill, so nothing is allocated per chunk. The chunks are exactly
/// those of `chunk_slice` over the whole input, however the reader splits its reads.
pub struct CutStream<'c, C, R> {
    cutter: &'c C,
    reader: R,
    /// Its length is the capacity in use; zero-filled beyond `end` the first time.
    buf: Vec<u8>,
    /// Start of the unconsumed data in `buf`.
    start: usize,
    /// End of the valid data in `buf`.
    end: usize,
    eof: bool,
    bytes_read: u64,
}

impl<C: fmt::Debug, R> fmt::Debug for CutStream<'_, C, R> {
    /// Position and buffer state, not the buffered bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CutStream")
            .field("cutter", self.cutter)
            .field("capacity", &self.buf.len())
            .field("buffered", &(self.end - self.start))
            .field("eof", &self.eof)
            .field("bytes_read", &self.bytes_read)
            .finish_non_exhaustive()
    }
}

impl<'c, C: CutPoints, R: Read> CutStream<'c, C, R> {
    /// A stream over `reader` with a buffer of `capacity` bytes (`None`: the default
    /// `max(4 × max_chunk_len, 8 MiB)`), raised to at least `2 × max_chunk_len`.
    #[must_use]
    pub fn new(cutter: &'c C, reader: R, capacity: Option<usize>) -> Self {
        let max = cutter.max_chunk_len().max(1);
        let capacity = capacity
            .unwrap_or_else(|| (4 * max).max(MIN_STREAM_BUFFER))
            .max(2 * max);
        Self {
            cutter,
            reader,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            eof: false,
            bytes_read: 0,
        }
    }

    /// A stream over `reader` that reads into `buffer`, grown to at least `2 ×
    /// max_chunk_len` bytes (to its capacity, if larger). See
    /// [`CutPoints::stream_with_buffer`].
    #[must_use]
    pub fn with_buffer(cutter: &'c C, reader: R, mut buffer: Vec<u8>) -> Self {
        let capacity = buffer.capacity().max(2 * cutter.max_chunk_len().max(1));
        // Fills the rest of the capacity with zeros: one memset per stream, against reading
        // at least as many bytes.
        buffer.resize(capacity, 0);
        Self {
            cutter,
            reader,
            buf: buffer,
            start: 0,
            end: 0,
            eof: false,
            bytes_read: 0,
        }
    }

    /// The next chunk, or `Ok(None)` at the end of the input.
    ///
    /// # Errors
    /// Any error from the reader other than [`io::ErrorKind::Interrupted`] (which is
    /// retried). Data read before the error is kept, so calling again after a transient
    /// error resumes where it stopped.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let max = self.cutter.max_chunk_len().max(1);
        while self.end - self.start < max && !self.eof {
            if self.buf.len() - self.start < max {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let data = &self.buf[self.start..self.end];
        if data.is_empty() {
            return Ok(None);
        }
        let len = self.cutter.cut_len(data).clamp(1, data.len());
        let chunk_start = self.start;
        self.start += len;
        Ok(Some(&self.buf[chunk_start..self.start]))
    }

    /// Total bytes read from the reader so far. After `next_chunk` returned `Ok(None)` this
    /// is the input length.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Gives the reader back (any buffered, unyielded data is dropped).
    #[must_use]
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Gives the buffer back, for another stream (see [`CutPoints::stream_with_buffer`]).
    #[must_use]
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}
