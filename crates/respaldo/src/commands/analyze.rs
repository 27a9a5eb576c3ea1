//! `analyze`: how files deduplicate and compress under one or more chunker settings, without a
//! repository.
//!
//! Each PATH is a *version* (a file, or a folder walked in sorted order), replayed in the order
//! given, so later versions deduplicate against earlier ones: `analyze v1/ v2/ v3/` answers
//! "what would each backup add?". Every file is read once and fed to every spec through one
//! [`MultiStream`]; each spec cuts, hashes (plain BLAKE3) and counts its own chunks. Nothing is
//! written anywhere.
//!
//! Memory: one set of 32-byte chunk ids per spec (about 80 bytes per distinct chunk with the
//! set's overhead), so it grows with the number of distinct chunks: 1 TiB of distinct data in
//! 1 MiB chunks is about 80 MiB per spec, in 4 KiB chunks about 20 GiB. Plus one read buffer
//! of `max(8 MiB, 4 × the largest chunk)`.
//!
//! Cut points match a repository's only when it is unencrypted: an encrypted repository seeds
//! FastCDC's gear table from its key (the chunk-size distribution, and so every figure here, is
//! the same in expectation).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chunker::{
    ChunkingSpec, Cutter, DedupEstimate, DedupTally, IdHasher, MultiStream, SQLITE_HEADER_LEN,
};

use crate::error::{Error, Result};
use crate::progress::{Progress, Warning};

/// Bytes each distinct chunk adds to the index files (`index/`, on the backend): its 50-byte
/// entry record (id 32, kind 1, encoding 1, offset 8, length 4, raw length 4, fixed-width
/// bincode; `chunk_store`'s `index_file.rs` and `pack.rs`). The per-pack record (48 bytes per
/// pack of ~16 MiB) and the seal are left out. Measured: 50.0 bytes per chunk (51,532,118
/// bytes of index files for 1,030,533 chunks).
pub const INDEX_FILE_BYTES_PER_CHUNK: u64 = 50;

/// Bytes each distinct chunk adds to the local `index.redb` (in the cache folder): a 32-byte
/// key and a 50-byte location (`chunk_store`'s `index.rs`) are 82 bytes of payload in redb's
/// B-tree, whose pages are about 60% full after the splits that random keys cause. Measured:
/// one backup of 320 MB of random data with `fastcdc:64,256,1K` stored 1,030,533 distinct
/// chunks and left an `index.redb` of 142,610,432 bytes, 138 per chunk.
pub const REDB_BYTES_PER_CHUNK: u64 = 138;

/// Estimated index bytes per distinct chunk: [`INDEX_FILE_BYTES_PER_CHUNK`] (on the backend)
/// plus [`REDB_BYTES_PER_CHUNK`] (in the local cache).
pub const INDEX_BYTES_PER_CHUNK: u64 = INDEX_FILE_BYTES_PER_CHUNK + REDB_BYTES_PER_CHUNK;

/// What to analyze and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The versions, in order: each a file or a folder (walked in sorted order, symlinks and
    /// special files skipped).
    pub paths: Vec<PathBuf>,
    /// The chunker settings to compare (at least one).
    pub specs: Vec<ChunkingSpec>,
    /// zstd level of the compressed sizes; 0 counts every chunk uncompressed. The default is
    /// the repository default, [`chunk_store::DEFAULT_ZSTD_LEVEL`].
    pub zstd_level: i32,
}

impl Default for AnalyzeOptions {
    /// No paths; the repository's default FastCDC settings; the repository's zstd level.
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            specs: vec![ChunkingSpec::default()],
            zstd_level: chunk_store::DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// The figures of one spec over all versions.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecReport {
    /// The spec.
    pub spec: ChunkingSpec,
    /// Chunks, distinct chunks, logical and distinct bytes, and the chunk-size histogram
    /// (power-of-two buckets, duplicates included).
    pub estimate: DedupEstimate,
    /// Size of the distinct chunks once compressed, each on its own, at the options' zstd
    /// level; a chunk that zstd does not shrink counts at its own size, as the repository
    /// stores it raw. Encryption adds 40 bytes per chunk on top (not counted).
    pub compressed_bytes: u64,
    /// Estimated index size: distinct chunks × [`INDEX_BYTES_PER_CHUNK`].
    pub index_bytes: u64,
    /// Time spent cutting and hashing this spec's chunks, in nanoseconds (reading the files,
    /// counting and compressing are not included).
    pub cut_hash_ns: u64,
}

impl SpecReport {
    /// `logical_bytes / unique_bytes`; 1.0 when nothing was read.
    #[must_use]
    pub fn dedup_ratio(&self) -> f64 {
        self.estimate.dedup_ratio()
    }

    /// `unique_bytes / compressed_bytes`; 1.0 when nothing was read.
    #[must_use]
    pub fn zstd_ratio(&self) -> f64 {
        ratio(self.estimate.unique_bytes, self.compressed_bytes)
    }

    /// `logical_bytes / compressed_bytes`: dedup and compression together.
    #[must_use]
    pub fn total_ratio(&self) -> f64 {
        ratio(self.estimate.logical_bytes, self.compressed_bytes)
    }

    /// Cutting and hashing throughput in MB/s (10^6 bytes per second) over the logical bytes;
    /// `None` when no time was measured.
    #[must_use]
    pub fn throughput_mb_s(&self) -> Option<f64> {
        (self.cut_hash_ns > 0)
            .then(|| self.estimate.logical_bytes as f64 * 1e3 / self.cut_hash_ns as f64)
    }
}

/// What one spec's chunks of one version added to everything before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Chunks not seen in this or an earlier version.
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their compressed size (as [`SpecReport::compressed_bytes`]).
    pub compressed_bytes: u64,
}

/// One version (one PATH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReport {
    /// The PATH as given.
    pub path: PathBuf,
    /// Files read (completely or partly).
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Per spec, in the order of [`AnalyzeOptions::specs`]: what this version added.
    pub added: Vec<Added>,
}

/// The result of [`analyze`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeOutcome {
    /// Per spec, in the order given.
    pub specs: Vec<SpecReport>,
    /// Per version, in the order given.
    pub versions: Vec<VersionReport>,
    /// Files read, over all versions.
    pub files: u64,
    /// Bytes read, over all versions (the logical bytes of every spec).
    pub bytes: u64,
    /// Paths that could not be read, or only partly (the bytes read before an error count).
    pub warnings: Vec<Warning>,
    /// Wall time of the whole analysis, in nanoseconds.
    pub duration_ns: u64,
}

/// Replays `options.paths` (versions, in order) through every spec of `options.specs` and
/// reports, per spec, chunks, deduplication, compression, index size, throughput and the
/// chunk-size histogram, and per version what it added. Writes nothing; reads each file once.
///
/// # Errors
/// [`Error::InvalidArgument`] without paths or specs, or for a spec that is not valid (parsed
/// specs always are); [`Error::Io`] naming a PATH that does not exist (checked before anything
/// is read). Files and folders that cannot be read are warnings in the outcome (and reported
/// to `progress`), not errors.
pub fn analyze(options: &AnalyzeOptions, progress: &dyn Progress) -> Result<AnalyzeOutcome> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(Error::invalid("analyze needs at least one file or folder"));
    }
    if options.specs.is_empty() {
        return Err(Error::invalid(
            "analyze needs at least one chunker spec, such as fastcdc:256K,1M,4M",
        ));
    }
    for spec in &options.specs {
        spec.validate()
            .map_err(|e| Error::invalid(format!("chunker spec {spec}: {e}")))?;
    }
    for path in &options.paths {
        if let Err(e) = std::fs::metadata(path)
            && e.kind() == io::ErrorKind::NotFound
        {
            return Err(Error::Io {
                op: "cannot analyze",
                path: path.clone(),
                source: e,
            });
        }
    }

    let mut run = Run::new(options, progress)?;
    let mut versions = Vec::with_capacity(options.paths.len());
    for path in &options.paths {
        let files = run.list(path);
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        progress.add_total(files.len() as u64, total);
        let mut version = VersionReport {
            path: path.clone(),
            files: 0,
            bytes: 0,
            added: vec![Added::default(); options.specs.len()],
        };
        for (file, _) in &files {
            run.file(file, &mut version)?;
        }
        versions.push(version);
    }

    let specs = options
        .specs
        .iter()
        .zip(run.tallies)
        .map(|(spec, t)| {
            let estimate = t.tally.estimate();
            SpecReport {
                spec: *spec,
                index_bytes: estimate.unique_chunks * INDEX_BYTES_PER_CHUNK,
                estimate,
                compressed_bytes: t.compressed_bytes,
                cut_hash_ns: t.cut_hash_ns,
            }
        })
        .collect();
    Ok(AnalyzeOutcome {
        specs,
        files: versions.iter().map(|v| v.files).sum(),
        bytes: versions.iter().map(|v| v.bytes).sum(),
        versions,
        warnings: run.warnings,
        duration_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    })
}

/// One spec's running counters.
struct SpecTally {
    tally: DedupTally,
    compressed_bytes: u64,
    cut_hash_ns: u64,
}

/// The state of one analysis.
struct Run<'a> {
    specs: &'a [ChunkingSpec],
    tallies: Vec<SpecTally>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    compressed: Vec<u8>,
    buffer: Vec<u8>,
    progress: &'a dyn Progress,
    warnings: Vec<Warning>,
}

impl<'a> Run<'a> {
    fn new(options: &'a AnalyzeOptions, progress: &'a dyn Progress) -> Result<Self> {
        let compressor = if options.zstd_level == 0 {
            None
        } else {
            Some(
                zstd::bulk::Compressor::new(options.zstd_level).map_err(|e| {
                    Error::invalid(format!("zstd level {}: {e}", options.zstd_level))
                })?,
            )
        };
        Ok(Self {
            specs: &options.specs,
            tallies: options
                .specs
                .iter()
                .map(|_| SpecTally {
                    tally: DedupTally::new(),
                    compressed_bytes: 0,
                    cut_hash_ns: 0,
                })
                .collect(),
            compressor,
            compressed: Vec::new(),
            buffer: Vec::new(),
            progress,
            warnings: Vec::new(),
        })
    }

    fn warn(&mut self, path: &Path, message: String) {
        self.progress.warning(path, &message);
        self.warnings.push(Warning {
            path: path.to_path_buf(),
            message,
        });
    }

    /// The regular files of `root` with their sizes: `root` itself, or the files below it in
    /// sorted order (by name bytes, depth first), without following symlinks below the root.
    fn list(&mut self, root: &Path) -> Vec<(PathBuf, u64)> {
        let mut files = Vec::new();
        let meta = match std::fs::metadata(root) {
            Ok(meta) => meta,
            Err(e) => {
                self.warn(root, format!("cannot read it: {e}"));
                return files;
            }
        };
        if meta.is_file() {
            files.push((root.to_path_buf(), meta.len()));
            return files;
        }
        if !meta.is_dir() {
            self.warn(root, "not a regular file or a folder: skipped".to_string());
            return files;
        }
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    self.warn(&dir, format!("cannot list the folder: {e}"));
                    continue;
                }
            };
            let mut children = Vec::new();
            for entry in entries {
                match entry {
                    Ok(entry) => children.push(entry),
                    Err(e) => self.warn(&dir, format!("cannot list the folder: {e}")),
                }
            }
            children.sort_by(|a, b| {
                a.file_name()
                    .as_encoded_bytes()
                    .cmp(b.file_name().as_encoded_bytes())
            });
            let mut subdirs = Vec::new();
            for child in children {
                let path = child.path();
                match child.metadata() {
                    Ok(meta) if meta.is_dir() => subdirs.push(path),
                    Ok(meta) if meta.is_file() => files.push((path, meta.len())),
                    Ok(_) => {}
                    Err(e) => self.warn(&path, format!("cannot read it: {e}")),
                }
            }
            // Files of a folder first, then its subfolders in order: the stack pops the first.
            stack.extend(subdirs.into_iter().rev());
        }
        files
    }

    /// Reads `path` once, feeding every spec; a read error is a warning.
    fn file(&mut self, path: &Path, version: &mut VersionReport) -> Result<()> {
        self.progress.file_started(path);
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                self.warn(path, format!("cannot open it: {e}"));
                return Ok(());
            }
        };
        let mut header = [0u8; SQLITE_HEADER_LEN];
        let header_len = match chunker::read_header(&mut file, &mut header) {
            Ok(n) => n,
            Err(e) => {
                self.warn(path, format!("cannot read it: {e}"));
                return Ok(());
            }
        };
        let header = &header[..header_len];
        let cutters = self
            .specs
            .iter()
            .map(|spec| spec.cutter(header))
            .collect::<std::result::Result<Vec<Cutter>, _>>()
            .map_err(|e| Error::invalid(e.to_string()))?;

        let read_ns = Cell::new(0u64);
        let reader = TimedReader {
            inner: header.chain(file),
            spent: &read_ns,
        };
        let buffer = std::mem::take(&mut self.buffer);
        let mut stream = MultiStream::with_buffer(&cutters, reader, buffer);
        version.files += 1;
        let mut done = 0u64;
        loop {
            let read_before = read_ns.get();
            let start = Instant::now();
            let (index, chunk) = match stream.next_chunk() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    let read = stream.bytes_read();
                    self.buffer = stream.into_buffer();
                    version.bytes += read;
                    self.warn(
                        path,
                        format!("read error after {read} bytes (those are counted): {e}"),
                    );
                    return Ok(());
                }
            };
            let id = IdHasher::Plain.hash(chunk);
            let elapsed = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let len = chunk.len() as u64;
            let spec = &mut self.tallies[index];
            spec.cut_hash_ns += elapsed.saturating_sub(read_ns.get() - read_before);
            if spec.tally.add(id, len) {
                let stored = compressed_len(self.compressor.as_mut(), &mut self.compressed, chunk);
                spec.compressed_bytes += stored;
                let added = &mut version.added[index];
                added.chunks += 1;
                added.bytes += len;
                added.compressed_bytes += stored;
            }
            if index == 0 {
                self.progress.bytes_done(len);
                done += len;
            }
        }
        let read = stream.bytes_read();
        self.buffer = stream.into_buffer();
        version.bytes += read;
        // Bytes of a file that grew while read, beyond its size when listed.
        self.progress.bytes_done(read.saturating_sub(done));
        self.progress.file_done(path);
        Ok(())
    }
}

/// How many bytes the repository would store for `chunk`: zstd's output when smaller,
/// else the chunk itself (stored raw); the chunk's size without a compressor.
fn compressed_len(
    compressor: Option<&mut zstd::bulk::Compressor<'static>>,
    out: &mut Vec<u8>,
    chunk: &[u8],
) -> u64 {
    let raw = chunk.len() as u64;
    let Some(compressor) = compressor else {
        return raw;
    };
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(chunk.len()));
    match compressor.compress_to_buffer(chunk, out) {
        Ok(n) => (n as u64).min(raw),
        // The buffer holds the bound, so this does not happen; count the chunk raw if it does.
        Err(_) => raw,
    }
}

/// A reader that adds the time spent in `read` to `spent` (nanoseconds), so that reading can
/// be told apart from cutting.
struct TimedReader<'a, R> {
    inner: R,
    spent: &'a Cell<u64>,
}

impl<R: Read> Read for TimedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        let result = self.inner.read(buf);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent.set(self.spent.get().saturating_add(ns));
        result
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::progress::NoProgress;
    use crate::test_data::noise;

    fn specs(texts: &[&str]) -> Vec<ChunkingSpec> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn run(paths: Vec<PathBuf>, texts: &[&str]) -> AnalyzeOutcome {
        let options = AnalyzeOptions {
            paths,
            specs: specs(texts),
            ..AnalyzeOptions::default()
        };
        analyze(&options, &NoProgress).unwrap()
    }

    #[test]
    fn versions_dedup_against_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
        for v in [&v1, &v2] {
            std::fs::create_dir_all(v.join("sub")).unwrap();
        }
        let big = noise(3 << 20, 1);
        let text: Vec<u8> = b"the same line again\n".repeat(50_000);
        std::fs::write(v1.join("big.bin"), &big).unwrap();
        std::fs::write(v1.join("sub/text.txt"), &text).unwrap();
        // v2: the big file with 100 bytes inserted in the middle, the text unchanged.
        let mut changed = big.clone();
        changed.splice(1 << 20..1 << 20, [7u8; 100]);
        std::fs::write(v2.join("big.bin"), &changed).unwrap();
        std::fs::write(v2.join("sub/text.txt"), &text).unwrap();

        let out = run(
            vec![v1.clone(), v2.clone()],
            &["fastcdc:16K,64K,256K", "fixed:64K"],
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(out.files, 4);
        let logical = 2 * (big.len() + text.len()) as u64 + 100;
        assert_eq!(out.bytes, logical);
        assert_eq!(out.versions.len(), 2);
        assert_eq!(out.versions[0].path, v1);
        assert_eq!(out.versions[1].files, 2);
        let (cdc, fixed) = (&out.specs[0], &out.specs[1]);
        for (i, s) in out.specs.iter().enumerate() {
            assert_eq!(s.estimate.logical_bytes, logical);
            let added: u64 = out.versions.iter().map(|v| v.added[i].bytes).sum();
            assert_eq!(s.estimate.unique_bytes, added);
            assert_eq!(
                s.estimate.histogram.iter().map(|b| b.count).sum::<u64>(),
                s.estimate.chunks
            );
            assert_eq!(
                s.index_bytes,
                s.estimate.unique_chunks * INDEX_BYTES_PER_CHUNK
            );
            assert!(s.compressed_bytes <= s.estimate.unique_bytes);
            assert!(s.throughput_mb_s().is_some());
        }
        // The repeated text compresses; random data does not.
        assert!(cdc.zstd_ratio() > 1.05, "{}", cdc.zstd_ratio());
        // FastCDC resynchronises after the insertion; fixed-size chunks do not.
        let cdc_added = out.versions[1].added[0].bytes;
        let fixed_added = out.versions[1].added[1].bytes;
        assert!(cdc_added < 600_000, "fastcdc added {cdc_added}");
        assert!(fixed_added > 1_500_000, "fixed added {fixed_added}");
        assert!(cdc.dedup_ratio() > fixed.dedup_ratio());
        assert!(cdc.dedup_ratio() > 1.5);
    }

    #[test]
    fn page_specs_detect_a_sqlite_page_size() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let mut data = noise(1 << 20, 3);
        data[..16].copy_from_slice(b"SQLite format 3\0");
        data[16..18].copy_from_slice(&[0x04, 0x00]); // 1024-byte pages
        std::fs::write(&db, &data).unwrap();
        let out = run(vec![db], &["pages-fixed:1", "pages-fixed:1@4K"]);
        assert_eq!(out.specs[0].estimate.chunks, 1024);
        assert_eq!(out.specs[1].estimate.chunks, 256);
    }

    #[test]
    fn missing_path_is_an_error_and_unreadable_files_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let options = AnalyzeOptions {
            paths: vec![dir.path().to_path_buf(), missing.clone()],
            ..AnalyzeOptions::default()
        };
        let err = analyze(&options, &NoProgress).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");

        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"hidden").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        let mut paths = vec![dir.path().to_path_buf()];
        let bad = if File::open(&secret).is_ok() {
            // Root reads a mode-000 file; /proc/self/mem opens, but reading its start fails.
            std::fs::remove_file(&secret).unwrap();
            let mem = PathBuf::from("/proc/self/mem");
            if !mem.exists() {
                return;
            }
            paths.push(mem.clone());
            mem
        } else {
            secret
        };
        let out = run(paths, &["fastcdc"]);
        assert_eq!(out.files, 1);
        assert_eq!(out.bytes, 5);
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert_eq!(out.warnings[0].path, bad);
    }

    #[test]
    fn options_are_checked() {
        let none = AnalyzeOptions::default();
        assert!(analyze(&none, &NoProgress).is_err());
        let no_specs = AnalyzeOptions {
            paths: vec![PathBuf::from("/")],
            specs: Vec::new(),
            ..AnalyzeOptions::default()
        };
        let err = analyze(&no_specs, &NoProgress).unwrap_err().to_string();
        assert!(err.contains("chunker spec"), "{err}");
    }
}
