//! The content-defined chunker: cut points over slices and over readers.

use std::borrow::Cow;
use std::fmt;

use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks};

use crate::cut::{CutStream, SliceCuts};
use crate::error::Error;
use crate::params::ChunkerParams;

/// Reusable content-defined chunker (FastCDC 2020, fastcdc `=5.0.0`).
///
/// Masks and (seeded) gear tables are computed once in [`Chunker::new`];
/// chunking then allocates nothing per chunk. Cheap to share: it is
/// `Send + Sync + Clone`, and every method takes `&self`.
///
/// Guarantee: for the same [`ChunkerParams`], [`CutPoints::chunk_slice`](crate::CutPoints::chunk_slice),
/// [`CutPoints::stream`](crate::CutPoints::stream) and [`CutPoints::chunk_reader`](crate::CutPoints::chunk_reader) all yield exactly the
/// cut points of `fastcdc::v2020::FastCDC::with_level_and_seed` over the
/// whole input held in memory, however the reader splits its reads. The
/// chunks concatenate to the input; each is at most `max_size` bytes, and
/// all but the last are at least `min_size` bytes. Empty input has no chunks.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    min_size: usize,
    avg_size: usize,
    max_size: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Chunker {
    /// Validates `params` and precomputes the masks and gear tables.
    ///
    /// # Errors
    /// The errors of [`ChunkerParams::validate`].
    pub fn new(params: ChunkerParams) -> Result<Self, Error> {
        params.validate()?;
        let avg_size = params.avg_size as usize;
        let (mask_s, mask_l) = select_masks(avg_size, params.level());
        let (gear, gear_ls) = get_gear_with_seed(params.seed);
        Ok(Self {
            params,
            min_size: params.min_size as usize,
            avg_size,
            max_size: params.max_size as usize,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        })
    }

    /// The parameters this chunker was built with.
    #[must_use]
    pub fn params(&self) -> &ChunkerParams {
        &self.params
    }

    /// Length of the next chunk at the start of `data`.
    ///
    /// Equal to the cut over the whole input only when `data` holds at least
    /// `max_size` bytes or runs to the end of the input (fastcdc looks at how
    /// much data remains when it is shorter than `avg_size`). Returns 0 only
    /// for empty `data`.
    #[inline]
    pub(crate) fn cut(&self, data: &[u8]) -> usize {
        let (_hash, len) = cut_gear(
            data,
            self.min_size,
            self.avg_size,
            self.max_size,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

impl fmt::Debug for Chunker {
    /// The parameters only (the gear tables are derived from them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Iterator over the chunks of an in-memory slice, from [`CutPoints::chunk_slice`](crate::CutPoints::chunk_slice): the
/// [`SliceCuts`] every chunker kind shares. Yields non-empty sub-slices of the input.
pub type SliceChunks<'a> = SliceCuts<'a, Chunker>;

/// Streaming chunker over a reader, from [`CutPoints::stream`](crate::CutPoints::stream): the [`CutStream`] every
/// chunker kind shares. A lending iterator: call `next_chunk` until it returns `Ok(None)`;
/// each chunk borrows the internal buffer until the next call.
pub type ChunkStream<'c, R> = CutStream<'c, Chunker, R>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cut::CutPoints;
    use std::io::{self, Read};

    fn small() -> Chunker {
        Chunker::new(ChunkerParams::new(1024, 4096, 16384, 1, 0).unwrap()).unwrap()
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let c = small();
        assert_eq!(c.chunk_slice(&[]).count(), 0);
        let mut s = c.stream(&[][..]);
        assert!(s.next_chunk().unwrap().is_none());
        assert!(s.next_chunk().unwrap().is_none());
        assert_eq!(s.bytes_read(), 0);
    }

    #[test]
    fn zeros_cut_at_max() {
        let c = small();
        let data = vec![0u8; 16384 * 3 + 100];
        let lens: Vec<usize> = c.chunk_slice(&data).map(<[u8]>::len).collect();
        assert_eq!(lens, [16384, 16384, 16384, 100]);
    }

    #[test]
    fn rejects_invalid_params() {
        let p = ChunkerParams {
            min_size: 1000,
            ..ChunkerParams::default()
        };
        assert!(Chunker::new(p).is_err());
    }

    #[test]
    fn debug_is_short() {
        let c = small();
        let data = vec![1u8; 100_000];
        assert!(format!("{c:?}").len() < 200);
        assert!(format!("{:?}", c.chunk_slice(&data)).len() < 300);
        assert!(format!("{:?}", c.stream(&data[..])).len() < 400);
    }

    #[test]
    fn is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Chunker>();
    }

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("boom"));
            }
            self.0 -= 1;
            if self.0.is_multiple_of(2) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(10);
            buf[..n].fill(1);
            Ok(n)
        }
    }

    #[test]
    fn read_errors_propagate_and_interrupted_is_retried() {
        let c = small();
        let r: Result<u64, io::Error> = c.chunk_reader(Failing(20), |_| Ok(()));
        assert_eq!(r.unwrap_err().to_string(), "boom");
    }

    #[test]
    fn callback_error_stops() {
        let c = small();
        let data = vec![0u8; 100_000];
        let mut calls = 0;
        let r: Result<u64, io::Error> = c.chunk_reader(&data[..], |_| {
            calls += 1;
            if calls == 2 {
                Err(io::Error::other("stop"))
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err().to_string(), "stop");
        assert_eq!(calls, 2);
    }

    #[test]
    fn chunk_reader_counts_bytes() {
        let c = small();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut total = 0;
        let n = c
            .chunk_reader::<_, io::Error>(&data[..], |ch| {
                total += ch.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(total, 100_000);
    }
}
