//! The page-aligned chunker: content-defined chunking at page granularity.
//!
//! The input is seen as a sequence of pages of `page_size` bytes (a database's pages). A chunk
//! is a run of whole pages: after each page, the chunker cuts if a 64-bit hash of *that page
//! alone* falls below a threshold (probability `1 / (avg_pages - min_pages + 1)`), never
//! before `min_pages` pages and always at `max_pages`. Cut points are thus at multiples of the
//! page size, and depend only on page contents, not offsets: a page inserted, removed or moved
//! shifts the cuts around it, and the chunking resynchronises at the next page whose hash
//! cuts (with `min_pages = 1`, right at it), so the pages after it still deduplicate. A page
//! changed in place changes its own chunk, and at most the cut after it.
//!
//! The page hash is [`page_hash`]: four 64-bit multiply-rotate lanes over little-endian words,
//! folded and finished with the murmur3 finaliser. It is not a cryptographic hash; it only
//! has to spread page contents evenly, several times faster than BLAKE3.

use crate::cut::{CutPoints, Sealed};
use crate::error::Error;
use crate::fixed::MAX_CHUNK_SIZE;

/// Page size used when a file's own page size is not known: 4096 bytes (the usual SQLite
/// default and the memory page of most systems).
pub const DEFAULT_PAGE_SIZE: u32 = 4096;
/// Smallest page size accepted (SQLite's smallest).
pub const MIN_PAGE_SIZE: u32 = 512;
/// Largest page size accepted (SQLite's largest).
pub const MAX_PAGE_SIZE: u32 = 65536;
/// Largest `max_pages` accepted: 1024 pages of the largest page size make 64 MiB, the largest
/// blob the chunk store accepts.
pub const MAX_PAGES: u32 = 1024;

const _: () = assert!(MAX_PAGES as u64 * MAX_PAGE_SIZE as u64 <= MAX_CHUNK_SIZE as u64);

/// Parameters of the page-aligned chunker.
///
/// Valid values (checked by [`PageParams::validate`] and [`PageChunker::new`]): `page_size` a
/// power of two in [`MIN_PAGE_SIZE`]`..=`[`MAX_PAGE_SIZE`];
/// `1 <= min_pages <= avg_pages <= max_pages <= `[`MAX_PAGES`]. `avg_pages` need not be a
/// power of two. `min_pages == avg_pages` cuts every `min_pages` pages (fixed size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageParams {
    /// Page size in bytes.
    pub page_size: u32,
    /// Fewest pages in a chunk (only the last chunk of an input may hold fewer).
    pub min_pages: u32,
    /// Target average number of pages in a chunk (before `max_pages` truncates).
    pub avg_pages: u32,
    /// Most pages in a chunk.
    pub max_pages: u32,
    /// Mixed into the page hash: another seed gives other cut points.
    pub seed: u64,
}

impl PageParams {
    /// Builds and validates parameters (seed 0).
    ///
    /// # Errors
    /// The errors of [`PageParams::validate`].
    pub fn new(
        page_size: u32,
        min_pages: u32,
        avg_pages: u32,
        max_pages: u32,
    ) -> Result<Self, Error> {
        let params = Self {
            page_size,
            min_pages,
            avg_pages,
            max_pages,
            seed: 0,
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// - [`Error::OutOfRange`] or [`Error::NotPowerOfTwo`] (field `page_size`) for a bad page
    ///   size; [`Error::OutOfRange`] (field `max_pages`) above [`MAX_PAGES`];
    /// - [`Error::PageOrder`] unless `1 <= min_pages <= avg_pages <= max_pages`.
    pub fn validate(&self) -> Result<(), Error> {
        check_page_size(self.page_size)?;
        if !(1 <= self.min_pages
            && self.min_pages <= self.avg_pages
            && self.avg_pages <= self.max_pages)
        {
            return Err(Error::PageOrder {
                min_pages: self.min_pages,
                avg_pages: self.avg_pages,
                max_pages: self.max_pages,
            });
        }
        if self.max_pages > MAX_PAGES {
            return Err(Error::OutOfRange {
                field: "max_pages",
                value: u64::from(self.max_pages),
                min: 1,
                max: u64::from(MAX_PAGES),
            });
        }
        Ok(())
    }

    /// Returns the same parameters with another hash seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }
}

/// Checks a page size: a power of two in [`MIN_PAGE_SIZE`]`..=`[`MAX_PAGE_SIZE`].
pub(crate) fn check_page_size(page_size: u32) -> Result<(), Error> {
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(Error::OutOfRange {
            field: "page_size",
            value: u64::from(page_size),
            min: u64::from(MIN_PAGE_SIZE),
            max: u64::from(MAX_PAGE_SIZE),
        });
    }
    if !page_size.is_power_of_two() {
        let above = u64::from(page_size).next_power_of_two();
        return Err(Error::NotPowerOfTwo {
            field: "page_size",
            value: page_size,
            below: above / 2,
            above,
        });
    }
    Ok(())
}

/// Content-defined chunking at page granularity.
///
/// The input is a sequence of pages of `page_size` bytes. After each page the chunker cuts
/// if [`page_hash`] of *that page alone* is below a threshold (probability
/// `1 / (avg_pages - min_pages + 1)`, so chunks average `avg_pages` pages before `max_pages`
/// truncates them), never before `min_pages` pages, and always at `max_pages`. Cuts depend on
/// page contents, not offsets: after a page is inserted, removed or moved, the chunking
/// resynchronises at the next page whose hash cuts (with `min_pages = 1`, right at it), so
/// the pages after it still deduplicate. A page changed in place changes its own chunk and at
/// most the cut after it.
///
/// Guarantee: every chunk but the last is a whole number of pages, `min_pages..=max_pages`
/// of them, so every cut is at a multiple of `page_size` from the start of the input; the
/// last chunk holds the rest (at most `max_pages` pages, possibly a partial page). The chunks
/// concatenate to the input; the same parameters always give the same cuts; empty input has
/// no chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageChunker {
    params: PageParams,
    page: usize,
    /// Cut after a page whose hash is at most this.
    threshold: u64,
}

impl PageChunker {
    /// Validates `params` and builds the chunker.
    ///
    /// # Errors
    /// The errors of [`PageParams::validate`].
    pub fn new(params: PageParams) -> Result<Self, Error> {
        params.validate()?;
        let spread = u64::from(params.avg_pages - params.min_pages) + 1;
        Ok(Self {
            params,
            page: params.page_size as usize,
            threshold: u64::MAX / spread,
        })
    }

    /// The parameters this chunker was built with.
    #[must_use]
    pub fn params(&self) -> &PageParams {
        &self.params
    }
}

impl Sealed for PageChunker {}

impl CutPoints for PageChunker {
    fn cut_len(&self, data: &[u8]) -> usize {
        let page = self.page;
        let min = self.params.min_pages as usize;
        let max = self.params.max_pages as usize;
        if data.len() <= min * page {
            return data.len();
        }
        // Pages 1..min cannot end a chunk: decide after pages min..=max.
        for pages in min..=max {
            let end = pages * page;
            if end >= data.len() {
                return data.len();
            }
            if pages == max || page_hash(&data[end - page..end], self.params.seed) <= self.threshold
            {
                return end;
            }
        }
        // Unreachable: the loop returns at `pages == max` at the latest.
        (max * page).min(data.len())
    }

    fn max_chunk_len(&self) -> usize {
        self.params.max_pages as usize * self.page
    }

    fn min_chunk_len(&self) -> usize {
        self.params.min_pages as usize * self.page
    }
}

/// The 64-bit hash of one page that decides whether a chunk ends after it. Depends only on
/// the page's bytes and `seed`; not cryptographic.
#[must_use]
pub fn page_hash(page: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes = [
        seed ^ 0x243f_6a88_85a3_08d3,
        seed ^ 0x1319_8a2e_0370_7344,
        seed ^ 0xa409_3822_299f_31d0,
        seed ^ 0x082e_fa98_ec4e_6c89,
    ];
    let mut blocks = page.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = (*lane ^ word_le(word)).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h = (page.len() as u64).wrapping_mul(K);
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(31);
    }
    for word in blocks.remainder().chunks(8) {
        h = (h ^ word_le(word)).wrapping_mul(K).rotate_left(31);
    }
    fmix64(h)
}

/// Up to 8 bytes as a little-endian word (missing high bytes are zero).
#[inline]
fn word_le(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

/// The murmur3 64-bit finaliser: every input bit affects every output bit.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
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

    #[test]
    fn params_are_checked() {
        assert!(PageParams::new(4096, 1, 4, 16).is_ok());
        assert!(PageParams::new(4096, 4, 4, 4).is_ok());
        let m = PageParams::new(4096, 0, 4, 16).unwrap_err().to_string();
        assert!(m.contains("min_pages = 0"), "{m}");
        let m = PageParams::new(4096, 8, 4, 16).unwrap_err().to_string();
        assert!(m.contains("min_pages <= avg_pages <= max_pages"), "{m}");
        let m = PageParams::new(4000, 1, 4, 16).unwrap_err().to_string();
        assert!(
            m.contains("page_size") && m.contains("2048") && m.contains("4096"),
            "{m}"
        );
        let m = PageParams::new(256, 1, 4, 16).unwrap_err().to_string();
        assert!(m.contains("page_size") && m.contains("512..=65536"), "{m}");
        let m = PageParams::new(4096, 1, 4, 2000).unwrap_err().to_string();
        assert!(m.contains("max_pages") && m.contains("1..=1024"), "{m}");
    }

    #[test]
    fn average_is_near_the_target() {
        let page = 512;
        let data = noise(page * 20_000, 5);
        for (min, avg) in [(1u32, 4u32), (2, 8), (1, 16)] {
            let c = PageChunker::new(PageParams::new(512, min, avg, 1024).unwrap()).unwrap();
            let chunks = c.chunk_slice(&data).count();
            let mean = 20_000.0 / chunks as f64;
            let target = f64::from(avg);
            assert!(
                (mean - target).abs() < target * 0.15,
                "min {min} avg {avg}: mean {mean} pages"
            );
        }
    }

    #[test]
    fn equal_min_and_avg_is_fixed() {
        let c = PageChunker::new(PageParams::new(512, 3, 3, 9).unwrap()).unwrap();
        let data = noise(512 * 10 + 7, 1);
        let lens: Vec<usize> = c.chunk_slice(&data).map(<[u8]>::len).collect();
        assert_eq!(lens, [1536, 1536, 1536, 512 + 7]);
    }

    #[test]
    fn hash_depends_on_every_byte_and_the_seed() {
        let page = noise(4096, 3);
        let h = page_hash(&page, 0);
        assert_ne!(h, page_hash(&page, 1));
        for at in [0, 1, 7, 8, 31, 32, 2048, 4095] {
            let mut changed = page.clone();
            changed[at] ^= 1;
            assert_ne!(h, page_hash(&changed, 0), "byte {at}");
        }
        assert_ne!(page_hash(&page[..100], 0), page_hash(&page[..101], 0));
    }
}
