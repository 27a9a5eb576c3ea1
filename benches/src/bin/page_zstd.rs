//! How zstd compresses a file cut into pages, one frame per page, as a SQLite database is
//! stored: for each level, the time to compress and to decompress every page on one thread
//! and the bytes kept (a page stored raw when compression does not make it smaller); then
//! the same with a dictionary trained on every 50th page.
//!
//! ```sh
//! cargo run --release -p respaldo-benches --bin page_zstd -- FILE [PAGE_SIZE]
//! ```

use std::time::{Duration, Instant};

/// Levels measured: fast ones, the lowest, and the repository default (3).
const LEVELS: [i32; 5] = [-5, -1, 1, 2, 3];
/// Levels measured with the dictionary.
const DICTIONARY_LEVELS: [i32; 2] = [1, 3];
/// Size of the trained dictionary.
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Every how many pages one is a training sample.
const SAMPLE_EVERY: usize = 50;

/// Compressing and decompressing every page with one context each, and what is kept.
struct Measured {
    compress: Duration,
    decompress: Duration,
    bytes: usize,
}

fn measure(
    pages: &[&[u8]],
    compressor: &mut zstd::bulk::Compressor<'_>,
    decompressor: &mut zstd::bulk::Decompressor<'_>,
) -> std::io::Result<Measured> {
    // Timed into one reused buffer, as the store compresses; the frames are kept apart.
    let mut buffer = Vec::with_capacity(zstd::zstd_safe::compress_bound(
        pages.iter().map(|p| p.len()).max().unwrap_or(0),
    ));
    let started = Instant::now();
    for page in pages {
        buffer.clear();
        compressor.compress_to_buffer(page, &mut buffer)?;
    }
    let compress = started.elapsed();
    let frames = pages
        .iter()
        .map(|page| compressor.compress(page))
        .collect::<std::io::Result<Vec<_>>>()?;
    let bytes = frames
        .iter()
        .zip(pages)
        .map(|(frame, page)| frame.len().min(page.len()))
        .sum();
    let mut out = vec![0u8; pages.iter().map(|p| p.len()).max().unwrap_or(0)];
    let started = Instant::now();
    for (frame, page) in frames.iter().zip(pages) {
        let n = decompressor.decompress_to_buffer(frame, &mut out)?;
        if out[..n] != **page {
            return Err(std::io::Error::other("a page did not decompress to itself"));
        }
    }
    Ok(Measured {
        compress,
        decompress: started.elapsed(),
        bytes,
    })
}

fn print(label: &str, pages: usize, m: &Measured) {
    println!(
        "{label:<16} compress {:>6.3} s ({:>5.1} µs/page), decompress {:>6.3} s, {:>6.1} MB kept",
        m.compress.as_secs_f64(),
        m.compress.as_secs_f64() * 1e6 / pages.max(1) as f64,
        m.decompress.as_secs_f64(),
        m.bytes as f64 / 1e6,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: page_zstd FILE [PAGE_SIZE]")?;
    let page_size: usize = args.next().map_or(Ok(4096), |s| s.parse())?;
    if page_size == 0 {
        return Err("PAGE_SIZE must be at least 1".into());
    }
    let data = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let pages: Vec<&[u8]> = data.chunks(page_size).collect();
    println!(
        "{path}: {} pages of {page_size} bytes ({:.1} MB)",
        pages.len(),
        data.len() as f64 / 1e6
    );
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    for level in LEVELS {
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        let m = measure(&pages, &mut compressor, &mut decompressor)?;
        print(&format!("level {level}"), pages.len(), &m);
    }
    let samples: Vec<&[u8]> = pages.iter().step_by(SAMPLE_EVERY).copied().collect();
    let started = Instant::now();
    let dictionary = zstd::dict::from_samples(&samples, DICTIONARY_BYTES)?;
    println!(
        "dictionary of {} bytes trained on {} pages in {:.3} s",
        dictionary.len(),
        samples.len(),
        started.elapsed().as_secs_f64()
    );
    let mut decompressor = zstd::bulk::Decompressor::with_dictionary(&dictionary)?;
    for level in DICTIONARY_LEVELS {
        let mut compressor = zstd::bulk::Compressor::with_dictionary(level, &dictionary)?;
        let m = measure(&pages, &mut compressor, &mut decompressor)?;
        print(&format!("dict, level {level}"), pages.len(), &m);
    }
    Ok(())
}
