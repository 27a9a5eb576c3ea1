//! File contents: every pack read once, files written in place by offset.
//!
//! 1. **Plan** ([`ContentPlan::build`]): every chunk of every file is located through one
//!    index view ([`chunk_store::BlobLocator`]); the raw lengths give each chunk's offset in
//!    its file. Each distinct blob is listed once, with every place it goes (file, offset):
//!    a chunk repeated in a file, or shared by several files, is read and decoded once. The
//!    blobs are grouped by pack and sorted by offset, and cut into reads (see
//!    [`MAX_GAP`], [`MAX_READ_LOCAL`] and [`MIN_READ`] for the rule).
//! 2. **Read and write** ([`restore_contents`]): the reads run in parallel (rayon), one
//!    buffer per thread at a time. Each blob is cut out of its read, opened and verified
//!    ([`chunk_store::ChunkStore::open_blob`]) and written to every place it goes with a
//!    positioned write into the file's temporary file (created beside the destination at its
//!    first write); all-zero chunks are not written, they stay holes. When the last chunk of
//!    a file is written, the file is finished on the spot ([`write::finish_file`]: length,
//!    verification, metadata, SQLite checks, rename into place). Empty files are finished
//!    without reading anything.
//!
//! At most [`MAX_OPEN_FILES`] temporary files stay open between writes; a file beyond that is
//! opened for each write and closed after it, so a tree of any size restores under a low
//! limit of open files.
//!
//! The first error stops the restore: no new read starts, the reads under way stop at their
//! next blob, every temporary file of an unfinished file is removed, and the error is
//! returned (a warning names each file whose content could not be read). Files finished
//! before the error stay in place.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chunk_store::{BlobLocation, ChunkId, FileKind};
use rayon::prelude::*;
use tempfile::TempPath;

use super::Context;
use super::plan::Entry;
use super::write;
use crate::error::{Error, Result};

/// A gap larger than this between two needed blobs of a pack starts a new read: reading
/// over it would cost more than another request. Restoring one file from a big pack thus
/// reads only the part holding that file's blobs.
pub(super) const MAX_GAP: u64 = 1024 * 1024;

/// A read from an object store takes no further blob once it spans this many bytes (the
/// default pack size): one request covers a whole default pack, and a read of a pack bigger
/// than that (the pack size is a repository setting, up to 1 GiB) is cut, so that a thread
/// never holds more than this plus one blob.
pub(super) const MAX_READ_REMOTE: u64 = 16 * 1024 * 1024;

/// The same bound for a local repository, where a read costs a system call, not a request:
/// smaller reads hold less memory (a thread's read buffer) for the same speed
/// (benchmarks.md, "A restore's memory").
pub(super) const MAX_READ_LOCAL: u64 = 4 * 1024 * 1024;

/// When the restore is small, reads are made shorter, down to this, so that there are about
/// [`READS_PER_THREAD`] reads per thread to share out: a restore that needs a single pack
/// still uses every core, and no thread is left alone with a long last read.
pub(super) const MIN_READ: u64 = 1024 * 1024;

/// Reads per thread a restore is cut into when that keeps them above [`MIN_READ`]: with
/// reads handed out one at a time, the last one leaves the other threads idle for about half
/// a read, so about 3% of the run here (with four reads a thread, a 500 MB restore on 2 cores
/// took 10% longer than with one task per file; with sixteen, it is as fast).
pub(super) const READS_PER_THREAD: u64 = 16;

/// Reads after its own that a thread asks the backend to read ahead ([`Backend::read_ahead`]).
///
/// [`Backend::read_ahead`]: chunk_store::Backend::read_ahead
pub(super) const READ_AHEAD: usize = 2;

/// Temporary files kept open between writes (the others are opened for each write). Far
/// below the usual limit of 1024 open files, leaving room for packs, the index and SQLite.
pub(super) const MAX_OPEN_FILES: usize = 64;

/// One place a blob goes: file `file` (an index into the restored files), at `offset`.
#[derive(Debug, Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
}

/// A blob the restore needs, where it is and where it goes.
#[derive(Debug)]
struct PlannedBlob {
    id: ChunkId,
    location: BlobLocation,
    targets: Vec<Target>,
}

/// One ranged read of a pack: `length` bytes at `offset`, holding `blobs` (indices into
/// [`ContentPlan::blobs`], sorted by offset).
#[derive(Debug)]
struct PackRead {
    pack: ChunkId,
    offset: u64,
    length: u64,
    blobs: Vec<usize>,
}

/// A file to write: its chunks (indices into [`ContentPlan::blobs`]) and its length.
#[derive(Debug)]
struct FilePlan {
    chunks: Vec<usize>,
    size: u64,
}

/// What to read, in which reads, and where each blob goes.
#[derive(Debug)]
pub(super) struct ContentPlan {
    files: Vec<FilePlan>,
    blobs: Vec<PlannedBlob>,
    reads: Vec<PackRead>,
}

impl ContentPlan {
    /// Locates every chunk of `files` and plans the reads.
    ///
    /// Errors: a chunk the repository does not have ([`chunk_store::Error::BlobNotFound`]
    /// naming it, with a warning naming the file), or an unreadable index. Nothing is written.
    pub(super) fn build(ctx: &Context<'_>, files: &[Entry]) -> Result<Self> {
        let (mut blobs, index_of) = locate_blobs(ctx, files)?;
        let mut plans = Vec::with_capacity(files.len());
        for (file, entry) in files.iter().enumerate() {
            let mut chunks = Vec::with_capacity(entry.node.content.len());
            let mut offset = 0u64;
            for id in &entry.node.content {
                // Every id of `files` was located above.
                let Some(&blob) = index_of.get(id) else {
                    let missing = chunk_store::Error::BlobNotFound { id: *id };
                    ctx.unreadable(&entry.dest, &missing);
                    return Err(missing.into());
                };
                let planned = &mut blobs[blob];
                planned.targets.push(Target { file, offset });
                offset += u64::from(planned.location.raw_length);
                chunks.push(blob);
            }
            plans.push(FilePlan {
                chunks,
                size: offset,
            });
        }
        let max_read = if ctx.store.backend().is_remote() {
            MAX_READ_REMOTE
        } else {
            MAX_READ_LOCAL
        };
        let reads = plan_reads(&blobs, rayon::current_num_threads(), max_read);
        Ok(ContentPlan {
            files: plans,
            blobs,
            reads,
        })
    }
}

/// The location of a planned blob until it is located (never returned as one).
const NOT_LOCATED: BlobLocation = BlobLocation {
    pack: ChunkId::from_bytes([0; 32]),
    offset: 0,
    length: 0,
    raw_length: 0,
    kind: chunk_store::BlobKind::Data,
    encoding: chunk_store::Encoding::Raw,
    member_offset: 0,
};

/// Every distinct blob of `files`, in the order the files first need them, with where it is
/// (no targets yet), and the position of each id in that list.
///
/// The index is asked in id order: its B-tree is then walked leaf after leaf, each page read
/// once, instead of at random (restoring a database of 82,000 pages read its 68 MB index 2.5
/// times over; benchmarks.md, "Restore locates blobs in id order").
///
/// Errors: a blob the repository does not have, with a warning naming the first file that
/// needs it; an unreadable index.
fn locate_blobs(
    ctx: &Context<'_>,
    files: &[Entry],
) -> Result<(Vec<PlannedBlob>, HashMap<ChunkId, usize>)> {
    // Distinct blobs in first-need order (located below), and the first file needing each.
    let mut position_of: HashMap<ChunkId, usize> = HashMap::new();
    let mut blobs: Vec<PlannedBlob> = Vec::new();
    let mut first_file: Vec<usize> = Vec::new();
    for (file, entry) in files.iter().enumerate() {
        for id in &entry.node.content {
            position_of.entry(*id).or_insert_with(|| {
                blobs.push(PlannedBlob {
                    id: *id,
                    location: NOT_LOCATED,
                    targets: Vec::new(),
                });
                first_file.push(file);
                blobs.len() - 1
            });
        }
    }
    let mut by_id: Vec<usize> = (0..blobs.len()).collect();
    by_id.sort_unstable_by(|&a, &b| blobs[a].id.as_bytes().cmp(blobs[b].id.as_bytes()));
    let locator = ctx.store.blob_locator()?;
    for position in by_id {
        let blob = &mut blobs[position];
        let id = blob.id;
        blob.location = locator
            .locate(&id)
            .and_then(|found| found.ok_or(chunk_store::Error::BlobNotFound { id }))
            .inspect_err(|e| ctx.unreadable(&files[first_file[position]].dest, e))?;
    }
    Ok((blobs, position_of))
}

/// Cuts the blobs into reads: grouped by pack (packs in the order the files first need
/// them, so that a file's chunks come close together in time), sorted by offset; a read ends
/// at a gap over [`MAX_GAP`] or once it spans the read size: `max_read`, or less for a
/// small restore (the bytes per thread over [`READS_PER_THREAD`], at least [`MIN_READ`]).
fn plan_reads(blobs: &[PlannedBlob], threads: usize, max_read: u64) -> Vec<PackRead> {
    let mut pack_order: HashMap<ChunkId, usize> = HashMap::new();
    let mut by_pack: Vec<Vec<usize>> = Vec::new();
    for (index, blob) in blobs.iter().enumerate() {
        let next = by_pack.len();
        let order = *pack_order.entry(blob.location.pack).or_insert(next);
        if order == next {
            by_pack.push(Vec::new());
        }
        by_pack[order].push(index);
    }
    let total: u64 = blobs.iter().map(|b| u64::from(b.location.length)).sum();
    let shares = (threads.max(1) as u64).saturating_mul(READS_PER_THREAD);
    let read_size = (total / shares).clamp(MIN_READ, max_read.max(MIN_READ));

    let mut reads = Vec::new();
    for mut members in by_pack {
        members.sort_by_key(|&b| blobs[b].location.offset);
        let mut current: Option<PackRead> = None;
        for b in members {
            let location = &blobs[b].location;
            let end = location.offset + u64::from(location.length);
            if let Some(read) = current.as_mut() {
                let read_end = read.offset + read.length;
                if location.offset.saturating_sub(read_end) <= MAX_GAP && read.length < read_size {
                    read.length = read_end.max(end) - read.offset;
                    read.blobs.push(b);
                    continue;
                }
            }
            reads.extend(current.replace(PackRead {
                pack: location.pack,
                offset: location.offset,
                length: u64::from(location.length),
                blobs: vec![b],
            }));
        }
        reads.extend(current);
    }
    reads
}

/// A file being written.
#[derive(Debug, Default)]
struct FileState {
    /// Chunk writes still to come.
    remaining: usize,
    /// The length of the temporary file: the end of the last byte written to it.
    written: u64,
    /// The temporary file, once created (removed when dropped unless renamed into place).
    temp: Option<TempPath>,
    /// Its open handle, when kept between writes (counted in [`Writer::open_handles`]);
    /// shared, so that writers write without holding the file's lock.
    handle: Option<Arc<File>>,
    /// Finished and renamed into place.
    done: bool,
}

/// One unit of parallel work.
enum Work<'p> {
    /// Finish an empty file.
    Empty(usize),
    /// Read part of a pack and write its blobs.
    Read(&'p PackRead),
}

/// The shared state of the write phase.
struct Writer<'a, 'p> {
    ctx: &'a Context<'a>,
    entries: &'a [Entry],
    plan: &'p ContentPlan,
    files: Vec<Mutex<FileState>>,
    /// Handles held in [`FileState::handle`].
    open_handles: AtomicUsize,
    /// Set by the first error: nothing new starts.
    failed: AtomicBool,
    first_error: Mutex<Option<Error>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent before it can fail.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer<'_, '_> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert(e);
    }

    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn run(&self, work: &Work<'_>) -> Result<()> {
        match work {
            Work::Empty(file) => self.finish_empty(*file),
            Work::Read(read) => self.read(read),
        }
    }

    /// Creates and finishes a file without content.
    fn finish_empty(&self, file: usize) -> Result<()> {
        let entry = &self.entries[file];
        let mut state = lock(&self.files[file]);
        self.ctx.progress.file_started(&entry.dest);
        let (handle, temp) = write::create_temp(&entry.dest)?;
        state.done = true;
        write::finish_file(self.ctx, entry, &handle, temp, (0, 0), &[])
    }

    /// Reads `read` and writes each of its blobs wherever it goes.
    fn read(&self, read: &PackRead) -> Result<()> {
        let name = read.pack.to_hex();
        let bytes = self
            .ctx
            .store
            .backend()
            .read_range(FileKind::Pack, &name, read.offset, read.length)
            .inspect_err(|e| self.warn_unreadable(read.blobs.iter().copied(), e))?;
        for &b in &read.blobs {
            if self.stopped() {
                return Ok(());
            }
            let blob = &self.plan.blobs[b];
            let data = self
                .open(blob, read, &bytes)
                .inspect_err(|e| self.warn_unreadable([b], e))?;
            let zero = write::is_zero(&data);
            for target in &blob.targets {
                self.write(*target, &data, zero)?;
            }
        }
        Ok(())
    }

    /// Cuts blob `blob` out of the bytes of `read`, opens and verifies it.
    fn open(&self, blob: &PlannedBlob, read: &PackRead, bytes: &[u8]) -> Result<Vec<u8>> {
        let location = &blob.location;
        let sealed = location
            .offset
            .checked_sub(read.offset)
            .and_then(|start| usize::try_from(start).ok())
            .and_then(|start| bytes.get(start..start.checked_add(location.length as usize)?))
            .ok_or_else(|| chunk_store::Error::ShortRead {
                kind: FileKind::Pack.label(),
                name: read.pack.to_hex(),
                offset: location.offset,
                len: u64::from(location.length),
                size: read.offset + bytes.len() as u64,
            })?;
        Ok(self.ctx.store.open_blob(&blob.id, location, sealed)?)
    }

    /// Warns, once for each, about the files that `blobs` go to.
    fn warn_unreadable(&self, blobs: impl IntoIterator<Item = usize>, e: &dyn std::fmt::Display) {
        let mut files: Vec<usize> = blobs
            .into_iter()
            .flat_map(|b| self.plan.blobs[b].targets.iter().map(|t| t.file))
            .collect();
        files.sort_unstable();
        files.dedup();
        for file in files {
            self.ctx.unreadable(&self.entries[file].dest, e);
        }
    }

    /// Writes `data` (`zero`: all zero bytes, left as a hole) to its place `target`, and
    /// finishes the file if that was its last chunk.
    fn write(&self, target: Target, data: &[u8], zero: bool) -> Result<()> {
        let entry = &self.entries[target.file];
        let dest = &entry.dest;
        let handle = {
            let mut state = lock(&self.files[target.file]);
            match &state.handle {
                Some(handle) => handle.clone(),
                None => Arc::new(self.open_temp(dest, &mut state.temp)?),
            }
        };
        // Positioned writes to distinct places need no lock: the chunks of one big file are
        // written by every thread at once.
        if !zero {
            handle
                .write_all_at(data, target.offset)
                .map_err(Error::io("write", dest))?;
        }
        self.ctx.progress.bytes_done(data.len() as u64);
        let mut state = lock(&self.files[target.file]);
        if !zero {
            state.written = state.written.max(target.offset + data.len() as u64);
        }
        state.remaining = state.remaining.saturating_sub(1);
        if state.remaining > 0 {
            if state.handle.is_none() && self.reserve_handle() {
                state.handle = Some(handle);
            }
            return Ok(());
        }
        if state.handle.take().is_some() {
            self.open_handles.fetch_sub(1, Ordering::Relaxed);
        }
        let Some(temp) = state.temp.take() else {
            return Err(Error::invalid(format!(
                "restore of {}: its temporary file was lost",
                dest.display()
            )));
        };
        state.done = true;
        let plan = &self.plan.files[target.file];
        let lengths: Vec<u64> = plan
            .chunks
            .iter()
            .map(|&b| u64::from(self.plan.blobs[b].location.raw_length))
            .collect();
        let lengths_now = (state.written, plan.size);
        write::finish_file(self.ctx, entry, &handle, temp, lengths_now, &lengths)
    }

    /// Takes one of the [`MAX_OPEN_FILES`] places for a handle kept open, if one is free.
    fn reserve_handle(&self) -> bool {
        self.open_handles
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_OPEN_FILES).then_some(n + 1)
            })
            .is_ok()
    }

    /// Opens the temporary file of `dest` for writing (and reading back), creating it at the
    /// first write.
    fn open_temp(&self, dest: &Path, temp: &mut Option<TempPath>) -> Result<File> {
        if let Some(path) = temp {
            return OpenOptions::new()
                .read(true)
                .write(true)
                .open(&**path)
                .map_err(Error::io("open the temporary file of", dest));
        }
        self.ctx.progress.file_started(dest);
        let (handle, path) = write::create_temp(dest)?;
        *temp = Some(path);
        Ok(handle)
    }
}

/// Writes the content of `entries` as `plan` says (see the module documentation); returns
/// the bytes written, holes included.
pub(super) fn restore_contents(
    ctx: &Context<'_>,
    entries: &[Entry],
    plan: &ContentPlan,
) -> Result<u64> {
    let files = plan
        .files
        .iter()
        .map(|f| {
            Mutex::new(FileState {
                remaining: f.chunks.len(),
                ..FileState::default()
            })
        })
        .collect();
    let writer = Writer {
        ctx,
        entries,
        plan,
        files,
        open_handles: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        first_error: Mutex::new(None),
    };
    let work: Vec<Work<'_>> = plan
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.chunks.is_empty())
        .map(|(file, _)| Work::Empty(file))
        .chain(plan.reads.iter().map(Work::Read))
        .collect();
    // One task per unit: their costs differ wildly (an empty file, a read of 16 MiB), and
    // rayon's default splitting would leave runs of reads to a single thread.
    work.par_iter()
        .enumerate()
        .with_max_len(1)
        .for_each(|(index, unit)| {
            // Each thread takes the units of its share in order: the disk reads the next
            // ones while this one is decoded and written.
            for next in work.iter().skip(index + 1).take(READ_AHEAD) {
                if let Work::Read(read) = next {
                    ctx.store.backend().read_ahead(
                        FileKind::Pack,
                        &read.pack.to_hex(),
                        read.offset,
                        read.length,
                    );
                }
            }
            if !writer.stopped()
                && let Err(e) = writer.run(unit)
            {
                writer.fail(e);
            }
        });

    let first_error = writer
        .first_error
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let mut unfinished = None;
    for (file, state) in writer.files.into_iter().enumerate() {
        let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
        if state.done {
            continue;
        }
        unfinished.get_or_insert(file);
        drop(state.handle);
        if let Some(temp) = state.temp {
            let path = temp.to_path_buf();
            if let Err(e) = temp.close() {
                ctx.warn(
                    &path,
                    format!("could not remove this temporary file of an unfinished restore: {e}"),
                );
            }
        }
    }
    match (first_error, unfinished) {
        (Some(e), _) => Err(e),
        (None, Some(file)) => Err(Error::invalid(format!(
            "restore of {}: not all of its content was written (internal error)",
            entries[file].dest.display()
        ))),
        (None, None) => Ok(plan.files.iter().map(|f| f.size).sum()),
    }
}

#[cfg(test)]
mod tests {
    use chunk_store::{BlobKind, Encoding};

    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A blob of `length` sealed bytes at `offset` of pack `pack`.
    fn blob(pack: u8, offset: u64, length: u32) -> PlannedBlob {
        PlannedBlob {
            id: ChunkId::from_bytes([0; 32]),
            location: BlobLocation {
                pack: ChunkId::from_bytes([pack; 32]),
                offset,
                length,
                raw_length: length,
                kind: BlobKind::Data,
                encoding: Encoding::Raw,
                member_offset: 0,
            },
            targets: Vec::new(),
        }
    }

    /// Each read as (pack byte, offset, length, blobs).
    fn reads(blobs: &[PlannedBlob], threads: usize) -> Vec<(u8, u64, u64, Vec<usize>)> {
        plan_reads(blobs, threads, MAX_READ_REMOTE)
            .into_iter()
            .map(|r| (r.pack.as_bytes()[0], r.offset, r.length, r.blobs))
            .collect()
    }

    #[test]
    fn close_blobs_are_one_read_sorted_by_offset() {
        let blobs = [
            blob(1, 5_000, 1_000),
            blob(1, 0, 1_000),
            blob(1, 2_000, 500),
        ];
        assert_eq!(reads(&blobs, 2), vec![(1, 0, 6_000, vec![1, 2, 0])]);
    }

    #[test]
    fn a_gap_over_one_mib_starts_a_new_read() {
        let at_limit = 1_000 + MIB;
        let blobs = [
            blob(1, 0, 1_000),
            blob(1, at_limit, 1_000),
            blob(1, at_limit + 1_000 + MIB + 1, 1_000),
        ];
        assert_eq!(
            reads(&blobs, 1),
            vec![
                (1, 0, at_limit + 1_000, vec![0, 1]),
                (1, at_limit + 1_000 + MIB + 1, 1_000, vec![2]),
            ]
        );
    }

    #[test]
    fn packs_come_in_the_order_files_first_need_them() {
        let blobs = [blob(9, 0, 10), blob(3, 0, 10), blob(9, 10, 10)];
        let packs: Vec<u8> = reads(&blobs, 1).iter().map(|r| r.0).collect();
        assert_eq!(packs, vec![9, 3]);
    }

    #[test]
    fn reads_are_cut_at_the_read_size() {
        // 64 blobs of 1 MiB back to back in a 64 MiB pack.
        let blobs: Vec<PlannedBlob> = (0..64).map(|i| blob(1, i * MIB, MIB as u32)).collect();
        // One thread: 64 MiB over 16 reads is 4 MiB a read.
        let one = reads(&blobs, 1);
        assert_eq!(one.len(), 16);
        assert!(one.iter().all(|r| r.2 == 4 * MIB && r.3.len() == 4));
        // Many threads: never below 1 MiB.
        assert_eq!(reads(&blobs, 64).len(), 64);
        // A big restore: never above 16 MiB (plus the blob that crosses it).
        let big: Vec<PlannedBlob> = (0..1024)
            .map(|i| blob(1, i * 3 * MIB, 3 * MIB as u32))
            .collect();
        let cut = reads(&big, 1);
        assert!(
            cut.iter().all(|r| r.2 <= MAX_READ_REMOTE + 3 * MIB),
            "{:?}",
            cut[0]
        );
        assert_eq!(cut[0].3.len(), 6);
        let covered: usize = cut.iter().map(|r| r.3.len()).sum();
        assert_eq!(covered, big.len());
        // A local repository: never above 4 MiB (plus the blob that crosses it).
        let local = plan_reads(&big, 1, MAX_READ_LOCAL);
        assert!(local.iter().all(|r| r.length <= MAX_READ_LOCAL + 3 * MIB));
        assert_eq!(local[0].blobs.len(), 2);
        assert_eq!(
            local.iter().map(|r| r.blobs.len()).sum::<usize>(),
            big.len()
        );
    }
}
