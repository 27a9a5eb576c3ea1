//! The fixed-size chunker: a cut every `size` bytes.

use crate::cut::{CutPoints, Sealed};
use crate::error::Error;

/// Smallest fixed chunk size accepted.
pub const FIXED_MIN_SIZE: u32 = 64;
/// Largest chunk any chunker kind other than FastCDC makes: 64 MiB, the largest blob the
/// chunk store accepts.
pub const MAX_CHUNK_SIZE: u32 = 64 * 1024 * 1024;

/// Cuts at every multiple of `size` bytes from the start of the input.
///
/// Guarantee: every chunk is exactly `size` bytes except the last, which holds the
/// `1..=size` remaining bytes; the chunks concatenate to the input; empty input has no chunks.
/// Cheapest of the kinds, and the best for data changed in place at fixed offsets (database
/// pages, disk images), but one byte inserted or removed shifts every later cut, so nothing
/// after it deduplicates. With `size` a multiple of a database's page size, every chunk is a
/// whole number of pages (`pages-fixed:N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedChunker {
    size: u32,
}

impl FixedChunker {
    /// A fixed-size chunker.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] (field `size`) unless `size` is in
    /// [`FIXED_MIN_SIZE`]`..=`[`MAX_CHUNK_SIZE`]. Any size in that range is accepted, a power
    /// of two or not.
    pub fn new(size: u32) -> Result<Self, Error> {
        if !(FIXED_MIN_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
            return Err(Error::OutOfRange {
                field: "size",
                value: u64::from(size),
                min: u64::from(FIXED_MIN_SIZE),
                max: u64::from(MAX_CHUNK_SIZE),
            });
        }
        Ok(Self { size })
    }

    /// The chunk size in bytes.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }
}

impl Sealed for FixedChunker {}

impl CutPoints for FixedChunker {
    #[inline]
    fn cut_len(&self, data: &[u8]) -> usize {
        data.len().min(self.size as usize)
    }

    fn max_chunk_len(&self) -> usize {
        self.size as usize
    }

    fn min_chunk_len(&self) -> usize {
        self.size as usize
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cuts_every_size_bytes() {
        let c = FixedChunker::new(100).unwrap();
        let data = vec![7u8; 350];
        let lens: Vec<usize> = c.chunk_slice(&data).map(<[u8]>::len).collect();
        assert_eq!(lens, [100, 100, 100, 50]);
        assert_eq!(c.chunk_slice(&[]).count(), 0);
        let mut s = c.stream(&data[..]);
        let mut n = 0;
        while let Some(chunk) = s.next_chunk().unwrap() {
            assert!(chunk.len() == 100 || chunk.len() == 50);
            n += 1;
        }
        assert_eq!((n, s.bytes_read()), (4, 350));
    }

    #[test]
    fn size_is_checked() {
        assert!(FixedChunker::new(63).is_err());
        let m = FixedChunker::new(MAX_CHUNK_SIZE + 1)
            .unwrap_err()
            .to_string();
        assert!(m.contains("`size`") && m.contains("64..=67108864"), "{m}");
        assert_eq!(FixedChunker::new(4000).unwrap().size(), 4000);
    }
}
