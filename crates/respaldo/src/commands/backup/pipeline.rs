//! The backup pipeline: a walker, file workers and a tree assembler, running at once.
//!
//! ```text
//! walker (calling thread) ──file jobs (bounded)──► workers: read, chunk, hash, add blobs
//!        │                                              │ node with content (one-shot)
//!        └──────directories (bounded, post-order)──► assembler: wait for entries, save tree
//! ```
//! The walker visits paths depth first in name order. A file whose metadata matches the parent
//! snapshot reuses its chunk list without being read; any other file becomes a job, which the
//! walker announces to the kernel so that the disk reads it ahead of the workers. When the
//! walker leaves a directory it hands the directory's entries (ready nodes and one-shot
//! receivers) to the assembler, which saves the tree once every entry has arrived. Nothing
//! waits on the walker, and both channels are bounded, so memory stays bounded while the
//! reading of files, their compression and the saving of trees overlap.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chunk_store::{BlobChecker, BlobKind, ChunkId, ChunkStore};
use chunker::{CutPoints, FixedChunker};
use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;
use snapshot_index::{FLAG_CHANGED_WHILE_READ, Node, NodeKind, Summary, Tree};

use super::excludes::Excludes;
use super::metadata::{OwnerNames, node_from_metadata};
use super::sqlite::SqliteSources;
use super::stream;
use crate::error::{Error, Result};
use crate::progress::{Progress, Warning};

/// Files up to this size are read whole into a reused buffer and cut in memory.
const SMALL_FILE: u64 = 8 * 1024 * 1024;
/// Chunks stored together from which they are stored on several threads.
const PARALLEL_CHUNKS: usize = 64;

/// A node, or a promise of one: `Ok(None)` means it was skipped with a warning.
pub(crate) type NodeResult = Result<Option<Node>>;

/// One directory entry as the walker knows it.
pub(crate) enum Entry {
    /// Complete (boxed: most entries of a busy walk are ready, and a node is large).
    Ready(Box<Node>),
    /// Being produced by a worker or the assembler.
    Pending(Receiver<NodeResult>),
}

impl Entry {
    /// Waits for the node.
    pub(crate) fn resolve(self) -> NodeResult {
        match self {
            Entry::Ready(node) => Ok(Some(*node)),
            Entry::Pending(rx) => rx.recv().unwrap_or_else(|_| Err(aborted())),
        }
    }
}

pub(super) fn aborted() -> Error {
    Error::invalid("backup aborted after an earlier error")
}

fn one_shot() -> (Sender<NodeResult>, Receiver<NodeResult>) {
    crossbeam_channel::bounded(1)
}

pub(crate) struct FileJob {
    path: PathBuf,
    /// Read the content from this file instead (a SQLite database's consistent copy).
    source: Option<PathBuf>,
    node: Node,
    /// Whether the parent snapshot had a file at this path (changed) or not (new).
    in_parent: bool,
    done: Sender<NodeResult>,
}

pub(crate) struct DirJob {
    node: Node,
    entries: Vec<Entry>,
    done: Sender<NodeResult>,
}

/// Counters of the summary, updated from every thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    changed_while_read: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Shared state of one backup.
pub(crate) struct Context<'a> {
    pub(crate) store: &'a ChunkStore,
    pub(crate) excludes: Excludes,
    pub(crate) one_file_system: bool,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) counters: Counters,
    pub(crate) owners: OwnerNames,
    warnings: Mutex<Vec<Warning>>,
    fatal: Mutex<Option<String>>,
    abort: AtomicBool,
    /// First snapshot path of each multiply-linked file, by (device, inode).
    hardlinks: Mutex<HashMap<(u64, u64), Vec<u8>>>,
    /// SQLite databases and their consistent copies (`sqlite.rs`).
    pub(crate) sqlite: SqliteSources,
    /// Whether the repository still has an unchanged file's chunks: one index view for many
    /// files (a read transaction per file would cost more than the lookups), renewed now and
    /// then. A view too old only makes a file be read again.
    checker: Mutex<Option<(BlobChecker<'a>, Instant)>>,
    /// Workers busy with a file ([`Context::has_idle_cores`]).
    pub(super) busy_workers: AtomicUsize,
}

/// How long one index view answers for unchanged files.
const CHECKER_RENEWAL: Duration = Duration::from_secs(5);

impl<'a> Context<'a> {
    pub(crate) fn new(
        store: &'a ChunkStore,
        excludes: Excludes,
        one_file_system: bool,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            store,
            excludes,
            one_file_system,
            progress,
            counters: Counters::default(),
            owners: OwnerNames::default(),
            warnings: Mutex::new(Vec::new()),
            fatal: Mutex::new(None),
            abort: AtomicBool::new(false),
            hardlinks: Mutex::new(HashMap::new()),
            sqlite: SqliteSources::default(),
            checker: Mutex::new(None),
            busy_workers: AtomicUsize::new(0),
        }
    }

    /// Whether fewer files are being read than the thread pool has threads: then a streamed
    /// file's chunks are worth storing on the pool (`stream::store_stream`). While every core
    /// has a file of its own, handing chunks to the pool only adds copies and contention.
    pub(super) fn has_idle_cores(&self) -> bool {
        self.busy_workers.load(Ordering::Relaxed) < rayon::current_num_threads()
    }

    /// Whether the repository has every one of `ids` (see `checker`).
    fn has_all(&self, ids: &[ChunkId]) -> Result<bool> {
        let mut checker = self.checker.lock().unwrap_or_else(|e| e.into_inner());
        if checker
            .as_ref()
            .is_none_or(|(_, made)| made.elapsed() > CHECKER_RENEWAL)
        {
            *checker = Some((self.store.blob_checker()?, Instant::now()));
        }
        match checker.as_ref() {
            Some((checker, _)) => Ok(checker.contains_all(ids)?),
            None => Ok(false),
        }
    }

    pub(crate) fn warn(&self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        self.progress.warning(path, &message);
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Warning {
                path: path.to_path_buf(),
                message,
            });
    }

    /// Records a fatal error and makes every stage stop early.
    pub(super) fn fail(&self, error: &Error) {
        self.abort.store(true, Ordering::SeqCst);
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| error.to_string());
    }

    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    pub(crate) fn take_warnings(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn summary(&self) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        Summary {
            files_new: get(&c.files_new),
            files_changed: get(&c.files_changed),
            files_unchanged: get(&c.files_unchanged),
            dirs: get(&c.dirs),
            others: get(&c.others),
            total_bytes: get(&c.total_bytes),
            bytes_read: get(&c.bytes_read),
            blobs_added: get(&c.blobs_added),
            bytes_added: get(&c.bytes_added),
            errors: self.warnings.lock().map(|w| w.len() as u64).unwrap_or(0),
            files_changed_while_read: get(&c.changed_while_read),
            duration_ns: 0,
        }
    }

    /// Stores `chunk` as a data blob, appending its id to `content`.
    pub(crate) fn store_chunk(
        &self,
        chunk: &[u8],
        content: &mut Vec<chunk_store::ChunkId>,
    ) -> Result<()> {
        content.push(self.store_one(chunk)?);
        Ok(())
    }

    /// Stores `chunks` (the pages of a small database), in order, as data blobs, appending
    /// their ids to `content`; from [`PARALLEL_CHUNKS`] on, on several threads. (Streamed
    /// files go through `stream::store_stream`.)
    pub(crate) fn store_chunks(
        &self,
        chunks: &[&[u8]],
        content: &mut Vec<chunk_store::ChunkId>,
    ) -> Result<()> {
        if chunks.len() < PARALLEL_CHUNKS {
            return chunks.iter().try_for_each(|c| self.store_chunk(c, content));
        }
        content.extend(self.store_chunks_in_parallel(chunks)?);
        Ok(())
    }

    /// Stores `chunks` as data blobs on the thread pool's threads; returns their ids, in order.
    pub(super) fn store_chunks_in_parallel(
        &self,
        chunks: &[&[u8]],
    ) -> Result<Vec<chunk_store::ChunkId>> {
        chunks.par_iter().map(|c| self.store_one(c)).collect()
    }

    fn store_one(&self, chunk: &[u8]) -> Result<chunk_store::ChunkId> {
        let id = self.store.blob_id(chunk);
        let outcome = self.store.add_blob_with_id(BlobKind::Data, id, chunk)?;
        if outcome.stored {
            add(&self.counters.blobs_added, 1);
            add(&self.counters.bytes_added, outcome.stored_bytes);
        }
        add(&self.counters.bytes_read, chunk.len() as u64);
        self.progress.bytes_done(chunk.len() as u64);
        Ok(id)
    }
}

/// Counts a worker as busy with a file ([`Context::has_idle_cores`]) until dropped, also when
/// the file's backup panics.
struct BusyWorker<'c, 'a>(&'c Context<'a>);

impl<'c, 'a> BusyWorker<'c, 'a> {
    fn new(ctx: &'c Context<'a>) -> Self {
        ctx.busy_workers.fetch_add(1, Ordering::Relaxed);
        Self(ctx)
    }
}

impl Drop for BusyWorker<'_, '_> {
    fn drop(&mut self) {
        self.0.busy_workers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Worker loop: reads, chunks and stores files until the job channel closes.
pub(crate) fn run_worker(ctx: &Context<'_>, jobs: &Receiver<FileJob>) {
    let mut buffer = Vec::new();
    for job in jobs {
        let result = if ctx.aborted() {
            Err(aborted())
        } else {
            let busy = BusyWorker::new(ctx);
            let stored = backup_file(ctx, &job.path, job.source.as_deref(), job.node, &mut buffer)
                .inspect_err(|e| ctx.fail(e));
            drop(busy);
            // Count the file only once it is in the snapshot: an unreadable one is a warning.
            if let Ok(Some(_)) = &stored {
                let counter = if job.in_parent {
                    &ctx.counters.files_changed
                } else {
                    &ctx.counters.files_new
                };
                add(counter, 1);
            }
            stored
        };
        // The receiver is gone only when the backup is being abandoned.
        let _ = job.done.send(result);
    }
}

/// Stores the file at `path`, reading its content from `source` when given (a SQLite
/// database's private copy, which cannot change while read).
fn backup_file(
    ctx: &Context<'_>,
    path: &Path,
    source: Option<&Path>,
    mut node: Node,
    buffer: &mut Vec<u8>,
) -> NodeResult {
    ctx.progress.file_started(path);
    let mut file = match File::open(source.unwrap_or(path)) {
        Ok(file) => file,
        Err(e) => {
            ctx.warn(
                path,
                format!("cannot open: {e}; the file is not in the snapshot"),
            );
            return Ok(None);
        }
    };
    let mut content = Vec::new();
    let read = match read_content(ctx, &mut file, node.size, buffer, &mut content)? {
        Ok(read) => read,
        Err(e) => {
            ctx.warn(
                path,
                format!("cannot read: {e}; the file is not in the snapshot"),
            );
            return Ok(None);
        }
    };
    // A file modified while read may hold a mix of old and new content: note it.
    let changed = match std::fs::symlink_metadata(path) {
        Ok(after) => {
            use std::os::unix::fs::MetadataExt;
            let mtime = after
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(after.mtime_nsec());
            after.len() != read || node.size != read || mtime != node.mtime_ns
        }
        Err(_) => true,
    };
    if changed && source.is_none() {
        node.flags |= FLAG_CHANGED_WHILE_READ;
        add(&ctx.counters.changed_while_read, 1);
    }
    node.size = read;
    node.content = content;
    add(&ctx.counters.total_bytes, read);
    ctx.progress.file_done(path);
    Ok(Some(node))
}

/// The smallest chunk of a SQLite database: databases with smaller pages (512 B to 2 KiB) are
/// cut every few pages, so that the index does not cost more than a chunk is worth.
const MIN_DATABASE_CHUNK: u32 = 4096;

/// How a file is cut into chunks, from its first bytes: a SQLite database one chunk per page
/// (its own page size, from its header; at least [`MIN_DATABASE_CHUNK`]), anything else with
/// the repository's FastCDC chunker.
///
/// SQLite changes a database in place, a page at a time, and never shifts pages: with one
/// chunk per page, a new version stores only its changed pages, where FastCDC's larger chunks
/// each hold some changed page and are stored again (`docs/benchmarks.md`, "Chunking SQLite
/// databases"). The choice depends only on the content, so every writer cuts the same database
/// the same way (from a file or from standard input) and versions deduplicate.
fn database_pages(header: &[u8]) -> Option<FixedChunker> {
    chunker::sqlite_page_size(header)
        .and_then(|size| FixedChunker::new(size.max(MIN_DATABASE_CHUNK)).ok())
}

/// Reads, chunks and stores a file's content; returns the bytes read. The outer error is fatal
/// (the repository failed), the inner one a read error of this file.
fn read_content(
    ctx: &Context<'_>,
    file: &mut File,
    expected_size: u64,
    buffer: &mut Vec<u8>,
    content: &mut Vec<chunk_store::ChunkId>,
) -> Result<std::io::Result<u64>> {
    if expected_size <= SMALL_FILE {
        // Small files are read whole into a reused buffer: no per-file allocation.
        buffer.clear();
        // Exact: amortized growth could leave a buffer of twice the largest small file.
        buffer.reserve_exact(expected_size as usize);
        if let Err(e) = (&mut *file).take(SMALL_FILE + 1).read_to_end(buffer) {
            return Ok(Err(e));
        }
        if buffer.len() as u64 <= SMALL_FILE {
            match database_pages(buffer) {
                Some(pages) => {
                    let chunks: Vec<&[u8]> = pages.chunk_slice(buffer).collect();
                    ctx.store_chunks(&chunks, content)?;
                }
                // FastCDC's chunks of a small file are few: stored here, with no allocation.
                None => {
                    for chunk in ctx.store.chunker().chunk_slice(buffer) {
                        ctx.store_chunk(chunk, content)?;
                    }
                }
            }
            return Ok(Ok(buffer.len() as u64));
        }
        // It grew past the limit while being opened: stream it from the start instead.
        if let Err(e) = file.seek(SeekFrom::Start(0)) {
            return Ok(Err(e));
        }
    }
    store_reader(ctx, file, buffer, content)
}

/// Cuts and stores everything `reader` yields, with the cutter its first bytes call for (see
/// [`database_pages`]); returns the bytes read. The outer error is fatal (the repository
/// failed), the inner one a read error of the reader. `buffer` is the read buffer (its
/// contents do not matter), reused so that a worker holds one whatever it reads.
pub(crate) fn store_reader(
    ctx: &Context<'_>,
    mut reader: impl Read,
    buffer: &mut Vec<u8>,
    content: &mut Vec<chunk_store::ChunkId>,
) -> Result<std::io::Result<u64>> {
    let mut header = [0u8; chunker::SQLITE_HEADER_LEN];
    let peeked = match chunker::read_header(&mut reader, &mut header) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    // The peeked bytes go first: the reader need not seek (standard input cannot).
    let reader = std::io::Cursor::new(&header[..peeked]).chain(reader);
    // A small file's buffer is as large as a stream needs with the default chunk sizes (twice
    // the largest chunk): one per worker, not one of each (benchmarks.md, "One read buffer").
    let buf = std::mem::take(buffer);
    match database_pages(&header[..peeked]) {
        Some(pages) => {
            let mut stream = pages.stream_with_buffer(reader, buf);
            let stored = stream::store_stream(ctx, &mut stream, content);
            *buffer = stream.into_buffer();
            stored
        }
        None => {
            let mut stream = ctx.store.chunker().stream_with_buffer(reader, buf);
            let stored = stream::store_stream(ctx, &mut stream, content);
            *buffer = stream.into_buffer();
            stored
        }
    }
}

/// Assembler loop: saves each directory's tree once its entries are complete.
pub(crate) fn run_assembler(ctx: &Context<'_>, dirs: &Receiver<DirJob>) {
    for job in dirs {
        let result = if ctx.aborted() {
            Err(aborted())
        } else {
            assemble(ctx, job.node, job.entries).inspect_err(|e| ctx.fail(e))
        };
        let _ = job.done.send(result);
    }
}

/// Waits for `entries`, saves their tree, and returns `dir` pointing at it.
pub(crate) fn assemble(ctx: &Context<'_>, mut dir: Node, entries: Vec<Entry>) -> NodeResult {
    let mut nodes = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(node) = entry.resolve()? {
            nodes.push(node);
        }
    }
    let tree = Tree::new(nodes)?;
    dir.subtree = Some(tree.save(ctx.store)?);
    Ok(Some(dir))
}

struct Frame {
    depth: usize,
    node: Node,
    parent_tree: Option<Tree>,
    entries: Vec<Entry>,
}

/// The channels of the running stages.
pub(crate) struct Stages<'s> {
    pub(crate) jobs: &'s Sender<FileJob>,
    pub(crate) dirs: &'s Sender<DirJob>,
}

impl Stages<'_> {
    fn finish_dir(&self, frame: Frame) -> Result<Entry> {
        let (done, rx) = one_shot();
        self.dirs
            .send(DirJob {
                node: frame.node,
                entries: frame.entries,
                done,
            })
            .map_err(|_| aborted())?;
        Ok(Entry::Pending(rx))
    }
}

fn walk_error_path(error: &ignore::Error) -> Option<&Path> {
    match error {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error_path(err)
        }
        _ => None,
    }
}

fn load_subtree(ctx: &Context<'_>, earlier: Option<&Node>, path: &Path) -> Option<Tree> {
    let id = earlier.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
    match Tree::load(ctx.store, &id) {
        Ok(tree) => Some(tree),
        Err(e) => {
            // Without the parent's tree every file below is read again: slower, still right,
            // and nothing is missing from the snapshot, so this is not a backup warning.
            ctx.progress.warning(
                path,
                &format!("cannot use the parent snapshot here ({e}); reading everything below"),
            );
            None
        }
    }
}

/// Walks `root` (an absolute, clean path) and returns its entry, or `None` if it was skipped.
/// `earlier` is the node of the same path in the parent snapshot.
pub(crate) fn walk(
    ctx: &Context<'_>,
    stages: &Stages<'_>,
    root: &Path,
    earlier: Option<Node>,
) -> Result<Option<Entry>> {
    let root_name = root
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    let excludes = ctx.excludes.clone();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .same_file_system(ctx.one_file_system)
        .sort_by_file_name(|a, b| a.as_bytes().cmp(b.as_bytes()))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            entry.depth() == 0 || !excludes.excludes(entry.path(), is_dir)
        })
        .build();
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Option<Entry> = None;
    // Depth of the last entry that is not a directory frame: the walker may still descend
    // below it (a root given as a symlink is followed; a directory may vanish or turn into a
    // symlink between listing and stat), and such entries must not land in the wrong folder.
    let mut skip_below: Option<usize> = None;
    for item in walker {
        if ctx.aborted() {
            return Err(aborted());
        }
        let entry = match item {
            Ok(entry) => entry,
            Err(e) => {
                let path = walk_error_path(&e).unwrap_or(root).to_path_buf();
                ctx.warn(
                    &path,
                    format!("cannot read: {e}; it is not in the snapshot"),
                );
                continue;
            }
        };
        let depth = entry.depth();
        if skip_below.is_some_and(|limit| depth > limit) {
            continue;
        }
        while stack.last().is_some_and(|f| f.depth >= depth) {
            let frame = stack.pop().ok_or_else(aborted)?;
            let done = stages.finish_dir(frame)?;
            attach(&mut stack, &mut top, done);
        }
        let path = entry.path();
        let name = if depth == 0 {
            root_name.clone()
        } else {
            entry.file_name().as_bytes().to_vec()
        };
        // Whatever is not pushed as a frame below has no children in the snapshot.
        skip_below = Some(depth);
        if ctx.sqlite.leaves_out(path) {
            continue;
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                ctx.warn(
                    path,
                    format!("cannot read metadata: {e}; it is not in the snapshot"),
                );
                continue;
            }
        };
        let mut node = match node_from_metadata(path, &name, &meta, &ctx.owners) {
            Ok(node) => node,
            Err(e) => {
                ctx.warn(path, format!("{e}; it is not in the snapshot"));
                continue;
            }
        };
        let earlier_node = if depth == 0 {
            earlier.as_ref()
        } else {
            stack
                .last()
                .and_then(|f| f.parent_tree.as_ref())
                .and_then(|t| t.find(&name))
        };
        let item = match node.kind {
            NodeKind::Dir => {
                skip_below = None;
                add(&ctx.counters.dirs, 1);
                let parent_tree = load_subtree(ctx, earlier_node, path);
                stack.push(Frame {
                    depth,
                    node,
                    parent_tree,
                    entries: Vec::new(),
                });
                continue;
            }
            NodeKind::File => {
                if node.links > 1 {
                    let mut links = ctx.hardlinks.lock().unwrap_or_else(|e| e.into_inner());
                    match links.get(&(node.device, node.inode)) {
                        Some(first) => {
                            node.kind = NodeKind::Hardlink;
                            node.link_target = first.clone();
                        }
                        None => {
                            links.insert(
                                (node.device, node.inode),
                                path.as_os_str().as_bytes().to_vec(),
                            );
                        }
                    }
                }
                file_entry(ctx, stages, path, node, earlier_node)?
            }
            _ => {
                add(&ctx.counters.others, 1);
                Entry::Ready(Box::new(node))
            }
        };
        attach(&mut stack, &mut top, item);
    }
    while let Some(frame) = stack.pop() {
        let done = stages.finish_dir(frame)?;
        attach(&mut stack, &mut top, done);
    }
    Ok(top)
}

fn attach(stack: &mut [Frame], top: &mut Option<Entry>, entry: Entry) {
    match stack.last_mut() {
        Some(frame) => frame.entries.push(entry),
        None => *top = Some(entry),
    }
}

/// A file: reused from the parent snapshot when unchanged, otherwise a job for the workers.
fn file_entry(
    ctx: &Context<'_>,
    stages: &Stages<'_>,
    path: &Path,
    mut node: Node,
    earlier: Option<&Node>,
) -> Result<Entry> {
    // A SQLite database: its consistent copy is read instead, never reused unread.
    let source = ctx.sqlite.substitute(path, &mut node);
    ctx.progress.add_total(1, node.size);
    // An unchanged file is not read again, as long as its chunks are still in the
    // repository: `repair` may have dropped damaged ones, which reading the file restores.
    let reusable = match earlier.filter(|e| source.is_none() && node.unchanged_from(e)) {
        Some(e) if ctx.has_all(&e.content)? => Some(e),
        _ => None,
    };
    if let Some(earlier) = reusable {
        node.content = earlier.content.clone();
        node.flags = earlier.flags;
        add(&ctx.counters.files_unchanged, 1);
        add(&ctx.counters.total_bytes, node.size);
        ctx.progress.bytes_done(node.size);
        return Ok(Entry::Ready(Box::new(node)));
    }
    prefetch(source.as_deref().unwrap_or(path), node.size);
    let (done, rx) = one_shot();
    stages
        .jobs
        .send(FileJob {
            path: path.to_path_buf(),
            source,
            node,
            in_parent: earlier.is_some(),
            done,
        })
        .map_err(|_| aborted())?;
    Ok(Entry::Pending(rx))
}

/// Asks the kernel to start reading a file that a worker will read soon (its first
/// [`SMALL_FILE`] bytes; a larger file is read ahead by the kernel as it is streamed). With the
/// files not in the page cache, two workers reading one file each kept two disk requests in
/// flight: the `tree` first backup took twice as long as with the data cached. With every
/// queued file announced, the disk has many requests to serve at once (`docs/benchmarks.md`,
/// "Reading ahead of the workers"). Failures are left to the worker, which reports them.
fn prefetch(path: &Path, size: u64) {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a file replaced by a FIFO since it was listed must not stall the walk.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    if let Ok(file) = opened {
        let length = i64::try_from(size.min(SMALL_FILE)).unwrap_or(i64::MAX);
        let _ = nix::fcntl::posix_fadvise(
            &file,
            0,
            length,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
    }
}

/// The first fatal error recorded, if any.
pub(crate) fn fatal_error(ctx: &Context<'_>) -> Option<String> {
    ctx.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
