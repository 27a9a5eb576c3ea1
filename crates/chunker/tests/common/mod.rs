//! Shared helpers for the integration tests: a tiny deterministic PRNG and
//! readers that split their output into short reads.
#![allow(dead_code)]

use std::io::{self, Read};

/// SplitMix64: deterministic, dependency-free pseudo-random numbers.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `len` pseudo-random bytes from `seed` (little-endian words of SplitMix64).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A reader over `data` whose reads return at most the next value of
/// `sizes` (cycled) bytes, and that reports `Interrupted` every so often.
pub struct ShortReader<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
    calls: usize,
}

impl<'a> ShortReader<'a> {
    pub fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        assert!(!sizes.is_empty() && sizes.iter().all(|&s| s > 0));
        Self {
            data,
            sizes,
            next: 0,
            calls: 0,
        }
    }
}

impl Read for ShortReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(7) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Chunk lengths that fastcdc's own in-memory iterator produces.
pub fn fastcdc_lengths(data: &[u8], p: &chunker::ChunkerParams) -> Vec<usize> {
    use fastcdc::v2020::{FastCDC, Normalization};
    let level = match p.normalization {
        0 => Normalization::Level0,
        1 => Normalization::Level1,
        2 => Normalization::Level2,
        _ => Normalization::Level3,
    };
    FastCDC::with_level_and_seed(
        data,
        p.min_size as usize,
        p.avg_size as usize,
        p.max_size as usize,
        level,
        p.seed,
    )
    .map(|c| c.length)
    .collect()
}

/// BLAKE3 over the chunk lengths, each as a little-endian u64.
pub fn lengths_digest(lengths: &[usize]) -> String {
    let mut h = blake3::Hasher::new();
    for &l in lengths {
        h.update(&(l as u64).to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Reads `stream` to its end, checking that every chunk is the next piece of `data` and that
/// the stream read all of it; returns the chunk lengths.
pub fn drain_checked<C: chunker::CutPoints, R: std::io::Read>(
    stream: &mut chunker::CutStream<'_, C, R>,
    data: &[u8],
) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut offset = 0;
    while let Some(chunk) = stream.next_chunk().unwrap() {
        assert_eq!(
            chunk,
            &data[offset..offset + chunk.len()],
            "at offset {offset}"
        );
        offset += chunk.len();
        lengths.push(chunk.len());
    }
    assert_eq!(stream.bytes_read(), data.len() as u64);
    lengths
}
