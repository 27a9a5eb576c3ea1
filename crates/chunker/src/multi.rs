//! [`MultiStream`]: one reader chunked by several chunkers at once, read once.

use std::fmt;
use std::io::{self, Read};

use crate::cut::{CutPoints, MIN_STREAM_BUFFER};

/// Chunks one reader with several chunkers at once, reading the input only once: what
/// comparing chunkers over large files needs.
///
/// One shared buffer of `max(4 × L, 8 MiB)` bytes, where `L` is the largest
/// [`CutPoints::max_chunk_len`] of the chunkers, allocated once; each chunker keeps its own
/// position in it. [`MultiStream::next_chunk`] yields `(index, chunk)` pairs: the chunks of
/// chunker `index`, in order, are exactly those its own `chunk_slice` gives over the whole
/// input. Chunks of different chunkers interleave in an unspecified order.
pub struct MultiStream<'c, C, R> {
    cutters: &'c [C],
    reader: R,
    buf: Vec<u8>,
    /// End of the valid data in `buf`.
    end: usize,
    /// Start of each chunker's next chunk in `buf`.
    pos: Vec<usize>,
    /// The largest look-ahead of the chunkers.
    lookahead: usize,
    eof: bool,
    bytes_read: u64,
}

impl<C: fmt::Debug, R> fmt::Debug for MultiStream<'_, C, R> {
    /// Positions and buffer state, not the buffered bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiStream")
            .field("cutters", &self.cutters)
            .field("capacity", &self.buf.len())
            .field("end", &self.end)
            .field("positions", &self.pos)
            .field("eof", &self.eof)
            .field("bytes_read", &self.bytes_read)
            .finish_non_exhaustive()
    }
}

impl<'c, C: CutPoints, R: Read> MultiStream<'c, C, R> {
    /// A stream over `reader` for each of `cutters`, with a buffer of its own.
    #[must_use]
    pub fn new(cutters: &'c [C], reader: R) -> Self {
        Self::with_buffer(cutters, reader, Vec::new())
    }

    /// Like [`MultiStream::new`], reusing `buffer` (its contents do not matter; it is grown
    /// to the size needed), so that chunking many files allocates once. Take it back with
    /// [`MultiStream::into_buffer`].
    #[must_use]
    pub fn with_buffer(cutters: &'c [C], reader: R, mut buffer: Vec<u8>) -> Self {
        let lookahead = cutters
            .iter()
            .map(CutPoints::max_chunk_len)
            .max()
            .unwrap_or(1)
            .max(1);
        let capacity = (4 * lookahead).max(MIN_STREAM_BUFFER);
        if buffer.len() < capacity {
            buffer.resize(capacity, 0);
        }
        Self {
            cutters,
            reader,
            buf: buffer,
            end: 0,
            pos: vec![0; cutters.len()],
            lookahead,
            eof: false,
            bytes_read: 0,
        }
    }

    /// The next chunk of some chunker, with that chunker's index in the slice given to
    /// [`MultiStream::new`]; `Ok(None)` once every chunker has reached the end of the input.
    /// Reads only when no chunker can cut from what is buffered.
    ///
    /// # Errors
    /// Any error from the reader other than [`io::ErrorKind::Interrupted`] (which is
    /// retried). Data read before the error is kept, so calling again resumes.
    pub fn next_chunk(&mut self) -> io::Result<Option<(usize, &[u8])>> {
        loop {
            let mut found = None;
            for (index, cutter) in self.cutters.iter().enumerate() {
                let start = self.pos[index];
                let available = self.end - start;
                if available > 0 && (self.eof || available >= cutter.max_chunk_len()) {
                    let data = &self.buf[start..self.end];
                    let len = cutter.cut_len(data).clamp(1, available);
                    found = Some((index, start, len));
                    break;
                }
            }
            if let Some((index, start, len)) = found {
                self.pos[index] = start + len;
                return Ok(Some((index, &self.buf[start..start + len])));
            }
            if self.eof {
                return Ok(None);
            }
            self.refill()?;
        }
    }

    /// Reads once more (retrying `Interrupted`), first moving the data still needed to the
    /// front when the free space is short.
    fn refill(&mut self) -> io::Result<()> {
        if self.buf.len() - self.end < self.lookahead {
            let keep = self.pos.iter().copied().min().unwrap_or(self.end);
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            for p in &mut self.pos {
                *p -= keep;
            }
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
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

    /// Gives the buffer back, for [`MultiStream::with_buffer`] over the next input.
    #[must_use]
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}
