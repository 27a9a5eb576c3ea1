//! How the chunk index scales: fills a repository's index with N synthetic blob entries
//! (index files, as backups write them), then measures what a backup's lookups cost against
//! it: the time to absorb the entries into `index.redb` (with the compaction that follows an
//! absorb of a million entries or more), its size per entry, lookup
//! throughput for present and absent ids, and the peak RSS of the process.
//!
//! ```sh
//! cargo run --release -p respaldo-benches --bin index_scale -- 1000000 [DIR]
//! ```
//!
//! Run once per size, each in its own process, so that the peak RSS is that size's. DIR
//! (default: a temporary folder) must have room for about 300 bytes per entry.

use std::sync::Arc;
use std::time::Instant;

use chunk_store::{
    BlobKind, ChunkId, ChunkStore, Encoding, IndexedPack, InitOptions, LocalBackend, PackEntry,
};

/// Blobs per synthetic pack: 16 MiB packs of 64 KiB blobs.
const BLOBS_PER_PACK: u64 = 256;
/// Entries per index file, as backups write them.
const ENTRIES_PER_FILE: u64 = 65_536;
/// Lookups timed for each kind (present, absent).
const LOOKUPS: u64 = 200_000;

/// A deterministic id for blob number `n` (`salt` tells present ids from absent ones).
fn id(n: u64, salt: u8) -> ChunkId {
    let mut input = [0u8; 9];
    input[..8].copy_from_slice(&n.to_le_bytes());
    input[8] = salt;
    ChunkId::from_bytes(*blake3::hash(&input).as_bytes())
}

/// Peak resident set size of this process so far, in MiB (from /proc).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let entries: u64 = args
        .next()
        .ok_or("usage: index_scale ENTRIES [DIR]")?
        .parse()?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let backend = Arc::new(LocalBackend::new(dir.join("repo")));
    let index_path = dir.join("index.redb");
    // Unencrypted: the index holds the same records either way.
    let store = ChunkStore::init(backend.clone(), &InitOptions::default(), &index_path)?;
    drop(store);

    // Index files, as backups leave them (not timed: that is the backups' work). One writer
    // for all: each open absorbs the index files written so far.
    let writer = ChunkStore::open(backend.clone(), None, dir.join("writer.redb"))?;
    let mut n = 0;
    while n < entries {
        let end = (n + ENTRIES_PER_FILE).min(entries);
        let mut packs = Vec::new();
        let mut blob = n;
        while blob < end {
            let last = (blob + BLOBS_PER_PACK).min(end);
            packs.push(IndexedPack {
                pack: id(blob, 1),
                size: (last - blob) * 65_536,
                blobs: (blob..last)
                    .map(|b| PackEntry {
                        id: id(b, 0),
                        kind: BlobKind::Data,
                        encoding: Encoding::Zstd,
                        offset: (b - blob) * 65_536,
                        length: 65_536,
                        raw_length: 131_072,
                    })
                    .collect(),
            });
            blob = last;
        }
        writer.write_index_file(&packs)?;
        n = end;
    }
    drop(writer);
    let _ = std::fs::remove_file(dir.join("writer.redb"));

    // Opening absorbs every index file into index.redb.
    let started = Instant::now();
    let store = ChunkStore::open(backend, None, &index_path)?;
    let absorb = started.elapsed();
    let indexed = store.indexed_blob_count()?;
    assert_eq!(indexed, entries, "every entry is indexed");
    let rss_after_absorb = peak_rss_mib();
    drop(store);
    // Measured closed: redb trims the file's free tail on close.
    let index_bytes = std::fs::metadata(&index_path)?.len();

    // A fresh open, as the next backup's, then the lookups a backup makes.
    let store = ChunkStore::open(
        Arc::new(LocalBackend::new(dir.join("repo"))),
        None,
        &index_path,
    )?;
    let step = (entries / LOOKUPS).max(1);
    let checker = store.blob_checker()?;
    let started = Instant::now();
    let mut found = 0u64;
    for i in 0..LOOKUPS {
        if checker.contains_all(&[id((i * step) % entries, 0)])? {
            found += 1;
        }
    }
    let present = started.elapsed();
    assert_eq!(found, LOOKUPS, "every present id is found");
    let started = Instant::now();
    for i in 0..LOOKUPS {
        if checker.contains_all(&[id(i, 2)])? {
            found += 1;
        }
    }
    let absent = started.elapsed();
    assert_eq!(found, LOOKUPS, "no absent id is found");

    println!(
        "entries {entries}: absorb {:.1} s ({:.0} entries/s), index.redb {:.1} MiB ({:.0} B/entry), \
         lookups present {:.0}/s, absent {:.0}/s, peak RSS {} MiB (after absorbing: {} MiB)",
        absorb.as_secs_f64(),
        entries as f64 / absorb.as_secs_f64(),
        index_bytes as f64 / 1048576.0,
        index_bytes as f64 / entries as f64,
        LOOKUPS as f64 / present.as_secs_f64(),
        LOOKUPS as f64 / absent.as_secs_f64(),
        peak_rss_mib(),
        rss_after_absorb,
    );
    Ok(())
}
