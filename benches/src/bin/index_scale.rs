//! How the chunk index scales: fills a repository's index with N synthetic blob entries
//! (index files, as backups write them), then measures what a backup's lookups cost against
//! it: the time to absorb the entries into `index.redb` (with the compaction that follows an
//! absorb of a million entries or more), its size per entry, lookup
//! throughput for present and absent ids, and the peak RSS of the process.
//!
//! ```sh
//! cargo run --release -p respaldo-benches --bin index_scale -- 1000000 [DIR] [--clustered]
//! ```
//!
//! Run once per size, each in its own process, so that the peak RSS is that size's. DIR
//! (default: a temporary folder) must have room for about 300 bytes per entry.
//!
//! `--clustered` gives each index file a run of consecutive ids instead of random ones, so
//! that absorbing appends to the B-tree instead of rewriting its leaves: how an index of 100M
//! entries can be built in minutes rather than hours. The index it leaves has the same
//! records and depth; its absorb time is not a real one, and its pages are fuller or emptier
//! than random inserts leave them (its size per entry is printed all the same). Lookups are
//! of random entries either way.

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
    ChunkId::from_bytes(hash(n, salt))
}

/// BLAKE3 of `n` and `salt`: random-looking, and the same on every run.
fn hash(n: u64, salt: u8) -> [u8; 32] {
    let mut input = [0u8; 9];
    input[..8].copy_from_slice(&n.to_le_bytes());
    input[8] = salt;
    *blake3::hash(&input).as_bytes()
}

/// How the present ids are made: random, or in increasing order of `n` (`--clustered`).
#[derive(Clone, Copy)]
struct Ids {
    entries: u64,
    clustered: bool,
}

impl Ids {
    /// The id of present blob number `n` (`n < entries`).
    // Big-endian on purpose: ids sort by their bytes, so these grow with `n`.
    #[allow(clippy::big_endian_bytes)]
    fn present(self, n: u64) -> ChunkId {
        if !self.clustered {
            return id(n, 0);
        }
        // The first 8 bytes grow with `n`, spread over the whole range; the rest is random.
        let mut bytes = hash(n, 0);
        let step = u64::MAX / self.entries;
        bytes[..8].copy_from_slice(&(n * step).to_be_bytes());
        ChunkId::from_bytes(bytes)
    }

    /// Present blob number `i` of a lookup sequence: spread at random over all entries, so
    /// that lookups do not walk the B-tree in order.
    fn lookup(self, i: u64) -> ChunkId {
        let n = u64::from_le_bytes(hash(i, 3)[..8].try_into().unwrap_or([0; 8])) % self.entries;
        self.present(n)
    }
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
    let (flags, mut args): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.starts_with("--"));
    let clustered = match flags.as_slice() {
        [] => false,
        [flag] if flag == "--clustered" => true,
        _ => return Err("usage: index_scale ENTRIES [DIR] [--clustered]".into()),
    };
    args.reverse();
    let entries: u64 = args
        .pop()
        .ok_or("usage: index_scale ENTRIES [DIR] [--clustered]")?
        .parse()?;
    if entries == 0 {
        return Err("ENTRIES must be at least 1".into());
    }
    let ids = Ids { entries, clustered };
    let temp = tempfile::tempdir()?;
    let dir = args
        .pop()
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
                        id: ids.present(b),
                        kind: BlobKind::Data,
                        encoding: Encoding::Zstd,
                        offset: (b - blob) * 65_536,
                        length: 65_536,
                        raw_length: 131_072,
                        member_offset: 0,
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
    let checker = store.blob_checker()?;
    let started = Instant::now();
    let mut found = 0u64;
    for i in 0..LOOKUPS {
        if checker.contains_all(&[ids.lookup(i)])? {
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
        "entries {entries}{}: absorb {:.1} s ({:.0} entries/s), index.redb {:.1} MiB ({:.0} B/entry), \
         lookups present {:.0}/s, absent {:.0}/s, peak RSS {} MiB (after absorbing: {} MiB)",
        if clustered { " (clustered)" } else { "" },
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
