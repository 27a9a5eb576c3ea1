//! `backup`: capture files into a new snapshot.

mod excludes;
mod metadata;
mod pipeline;
mod sqlite;
mod stream;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use chunk_store::ChunkId;
use snapshot_index::{
    Catalog, Node, NodeKind, Snapshot, SnapshotEntry, SnapshotFilter, Summary, Tree, lookup_path,
};

use self::excludes::Excludes;
use self::metadata::node_from_metadata;
use self::pipeline::{Context, Entry, Stages};
use crate::error::{Error, Result};
use crate::events::Operation;
use crate::lock::{LockKind, RepositoryLock};
use crate::progress::{Progress, Warning};
use crate::repository::{Repository, hostname, username};

/// Folders the walker may hand to the tree assembler before it waits for it.
const DIRS_IN_FLIGHT: usize = 256;

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Files and folders to back up (made absolute).
    pub paths: Vec<PathBuf>,
    /// Tags of the snapshot.
    pub tags: Vec<String>,
    /// Host name recorded (default: this machine's).
    pub host: Option<String>,
    /// Exclude patterns, gitignore syntax.
    pub excludes: Vec<String>,
    /// Files holding exclude patterns, one per line.
    pub exclude_files: Vec<PathBuf>,
    /// Skip folders that contain a file of one of these names.
    pub exclude_if_present: Vec<String>,
    /// Do not cross file system boundaries below the given paths.
    pub one_file_system: bool,
    /// The snapshot to compare with (id or prefix); default: the newest of the same host and
    /// paths.
    pub parent: Option<String>,
    /// Snapshot time, nanoseconds since the Unix epoch (default: now).
    pub time_ns: Option<i64>,
    /// Live SQLite databases to capture consistently while other processes write to them
    /// (SQLite's online backup API), each stored at its own path and flagged
    /// [`snapshot_index::FLAG_SQLITE`]. A database may be the only source or lie inside one of
    /// `paths`; its `-wal`, `-shm` and `-journal` files are left out. One that cannot be
    /// copied is a [`Warning`].
    pub sqlite: Vec<PathBuf>,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The new snapshot's id.
    pub snapshot_id: ChunkId,
    /// The new snapshot.
    pub snapshot: Snapshot,
    /// Sources that could not be read; the snapshot holds everything else.
    pub warnings: Vec<Warning>,
}

impl Repository {
    /// Backs up `options.paths` into a new snapshot.
    ///
    /// A missing or unreadable path is a [`Warning`] and the backup goes on; if no given path
    /// exists at all, it is an error and no snapshot is written. The snapshot manifest is
    /// written last, after every blob it refers to is stored.
    pub fn backup(
        &self,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupOutcome> {
        let run = || self.backup_files(options, progress);
        self.observed(Operation::Backup, None, run)
    }

    fn backup_files(
        &self,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupOutcome> {
        let started = std::time::Instant::now();
        let time_ns = options.time_ns.unwrap_or_else(now_ns);
        let databases = clean_paths(&options.sqlite)?;
        let paths = clean_paths(&[options.paths.as_slice(), &databases].concat())?;
        let lock = self.lock(LockKind::Shared, "backup")?;
        if paths.is_empty() {
            return Err(Error::invalid("nothing to back up: give at least one path"));
        }
        let host = options.host.clone().unwrap_or_else(hostname);
        let path_names: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let parent = self.find_parent(options, &host, &path_names)?;
        let excludes = Excludes::new(
            &options.excludes,
            &options.exclude_files,
            &options.exclude_if_present,
        )?;
        let mut ctx = Context::new(self.store(), excludes, options.one_file_system, progress);
        ctx.sqlite = sqlite::SqliteSources::capture(&ctx, &databases, self.cache_dir())?;

        let mut present = 0;
        let root = std::thread::scope(|scope| -> Result<Option<ChunkId>> {
            let workers = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2);
            // The walker announces each queued file to the kernel (`pipeline::prefetch`): a
            // longer queue keeps more disk reads in flight when the files are not cached (4 per
            // worker: 4.0 s for the `tree` backup from disk; 16: 3.5 s; 32: 3.4 s).
            let (job_tx, job_rx) = crossbeam_channel::bounded(workers * 16);
            // Each folder waiting for the assembler holds its files' nodes: a bound on them is
            // a bound on the walk's lead, and on memory (benchmarks.md, "How cost grows").
            let (dir_tx, dir_rx) = crossbeam_channel::bounded(DIRS_IN_FLIGHT);
            for _ in 0..workers {
                let job_rx = job_rx.clone();
                let ctx = &ctx;
                scope.spawn(move || pipeline::run_worker(ctx, &job_rx));
            }
            let ctx_ref = &ctx;
            scope.spawn(move || pipeline::run_assembler(ctx_ref, &dir_rx));
            let stages = Stages {
                jobs: &job_tx,
                dirs: &dir_tx,
            };
            let mut top = TopDir::default();
            let result = (|| -> Result<Option<ChunkId>> {
                for path in &paths {
                    let components = path_components(path);
                    let is_dir = path.is_dir();
                    if !path.exists() && path.symlink_metadata().is_err() {
                        ctx.warn(path, "does not exist; it is not in the snapshot");
                        continue;
                    }
                    present += 1;
                    if ctx.excludes.excludes_with_parents(path, is_dir) {
                        continue;
                    }
                    let earlier = match &parent {
                        Some(p) if !components.is_empty() => {
                            lookup_path(self.store(), &p.snapshot.tree, &components)?
                        }
                        // Backing up "/": the parent's root tree is the earlier version.
                        Some(p) => {
                            let mut root = Node::new(Vec::new(), NodeKind::Dir);
                            root.subtree = Some(p.snapshot.tree);
                            Some(root)
                        }
                        None => None,
                    };
                    if let Some(entry) = pipeline::walk(&ctx, &stages, path, earlier)? {
                        top.insert(&ctx, path, &components, entry);
                    }
                }
                top.save(&ctx)
            })();
            // Closing the channels ends the workers and the assembler.
            drop(job_tx);
            drop(dir_tx);
            result
        });
        if let Some(fatal) = pipeline::fatal_error(&ctx) {
            return Err(Error::invalid(format!("backup failed: {fatal}")));
        }
        let root = root?;
        if present == 0 {
            return Err(Error::Source {
                path: paths[0].clone(),
                reason: "none of the given paths exists; no snapshot was written".to_string(),
            });
        }
        let root = match root {
            Some(root) => root,
            None => Tree::default().save(self.store())?,
        };
        let mut summary = ctx.summary();
        summary.duration_ns = started.elapsed().as_nanos() as u64;
        self.commit(
            &lock,
            options,
            host,
            path_names,
            root,
            parent.map(|p| p.id),
            summary,
            time_ns,
            ctx.take_warnings(),
        )
    }

    /// Backs up everything `reader` yields as one file named `filename` at the snapshot root.
    pub fn backup_stdin(
        &self,
        options: &BackupOptions,
        filename: &str,
        reader: &mut dyn Read,
        progress: &dyn Progress,
    ) -> Result<BackupOutcome> {
        let run = || self.backup_reader(options, filename, reader, progress);
        self.observed(Operation::Backup, None, run)
    }

    fn backup_reader(
        &self,
        options: &BackupOptions,
        filename: &str,
        reader: &mut dyn Read,
        progress: &dyn Progress,
    ) -> Result<BackupOutcome> {
        let started = std::time::Instant::now();
        let time_ns = options.time_ns.unwrap_or_else(now_ns);
        snapshot_index::validate_name(filename.as_bytes(), "--stdin-filename")?;
        let lock = self.lock(LockKind::Shared, "backup")?;
        let host = options.host.clone().unwrap_or_else(hostname);
        let excludes = Excludes::new(&[], &[], &[])?;
        let ctx = Context::new(self.store(), excludes, false, progress);
        let mut content = Vec::new();
        let read = pipeline::store_reader(&ctx, reader, &mut Vec::new(), &mut content)?
            .map_err(Error::io("read standard input for", format!("/{filename}")))?;
        let mut node = Node::new(filename.as_bytes().to_vec(), NodeKind::File);
        node.mode = 0o644;
        node.size = read;
        node.mtime_ns = time_ns;
        node.ctime_ns = time_ns;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        node.user = username();
        node.content = content;
        let root = Tree::new(vec![node])?.save(self.store())?;
        let mut summary = ctx.summary();
        summary.files_new = 1;
        summary.total_bytes = read;
        summary.duration_ns = started.elapsed().as_nanos() as u64;
        self.commit(
            &lock,
            options,
            host,
            vec![format!("/{filename}")],
            root,
            None,
            summary,
            time_ns,
            Vec::new(),
        )
    }

    fn find_parent(
        &self,
        options: &BackupOptions,
        host: &str,
        paths: &[String],
    ) -> Result<Option<SnapshotEntry>> {
        // Neither needs the whole catalog while the kept one is current.
        match &options.parent {
            Some(spec) => Ok(Some(Catalog::find(
                self.store(),
                spec,
                &SnapshotFilter::default(),
            )?)),
            None => Ok(Catalog::find_parent(self.store(), host, paths)?),
        }
    }

    /// Flushes the store, then writes the manifest: the last step of every backup.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        lock: &RepositoryLock,
        options: &BackupOptions,
        hostname: String,
        paths: Vec<String>,
        tree: ChunkId,
        parent: Option<ChunkId>,
        summary: Summary,
        time_ns: i64,
        warnings: Vec<Warning>,
    ) -> Result<BackupOutcome> {
        self.store().flush()?;
        // Had the lock been lost, a prune could have deleted packs this snapshot refers to.
        lock.ensure_held()?;
        let snapshot = Snapshot {
            time_ns,
            utc_offset_s: utc_offset(time_ns),
            hostname,
            username: username(),
            tags: options.tags.clone(),
            paths,
            tree,
            parent,
            program_version: format!("respaldo {}", env!("CARGO_PKG_VERSION")),
            summary,
        };
        let snapshot_id = snapshot.save(self.store())?;
        Ok(BackupOutcome {
            snapshot_id,
            snapshot,
            warnings,
        })
    }
}

fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

fn utc_offset(time_ns: i64) -> i32 {
    jiff::Timestamp::from_nanosecond(i128::from(time_ns))
        .map(|t| jiff::tz::TimeZone::system().to_offset(t).seconds())
        .unwrap_or(0)
}

/// Absolute, lexically clean paths, without those inside another given path: the paths a
/// snapshot records.
pub(crate) fn clean_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut cleaned = Vec::new();
    for path in paths {
        let absolute = std::path::absolute(path).map_err(Error::io("resolve path", path))?;
        let mut clean = PathBuf::new();
        for component in absolute.components() {
            match component {
                Component::RootDir => clean.push("/"),
                Component::Normal(part) => clean.push(part),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::CurDir | Component::Prefix(_) => {}
            }
        }
        cleaned.push(clean);
    }
    cleaned.sort();
    cleaned.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for path in cleaned {
        if !kept.iter().any(|k| path.starts_with(k)) {
            kept.push(path);
        }
    }
    Ok(kept)
}

fn path_components(path: &Path) -> Vec<&[u8]> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.as_bytes()),
            _ => None,
        })
        .collect()
}

/// The folders above the given paths, up to the root, with the entries the walks produced.
#[derive(Default)]
struct TopDir {
    node: Option<Box<Node>>,
    children: BTreeMap<Vec<u8>, TopEntry>,
}

enum TopEntry {
    Dir(TopDir),
    Leaf(Entry),
}

impl TopDir {
    fn insert(&mut self, ctx: &Context<'_>, path: &Path, components: &[&[u8]], entry: Entry) {
        let Some((last, parents)) = components.split_last() else {
            // The path is "/": its tree is the snapshot root.
            self.children.insert(Vec::new(), TopEntry::Leaf(entry));
            return;
        };
        let mut dir = self;
        let mut ancestor = PathBuf::from("/");
        for part in parents {
            ancestor.push(std::ffi::OsStr::from_bytes(part));
            let next = dir.children.entry(part.to_vec()).or_insert_with(|| {
                TopEntry::Dir(TopDir {
                    node: Some(Box::new(ancestor_node(ctx, &ancestor, part))),
                    children: BTreeMap::new(),
                })
            });
            dir = match next {
                TopEntry::Dir(d) => d,
                // clean_paths removed paths inside other paths, so an ancestor is never a leaf.
                TopEntry::Leaf(_) => {
                    unreachable!("{} is inside another backup path", path.display())
                }
            };
        }
        dir.children.insert(last.to_vec(), TopEntry::Leaf(entry));
    }

    /// Saves the trees from the bottom up; returns the root tree, or `None` if nothing was
    /// backed up.
    fn save(self, ctx: &Context<'_>) -> Result<Option<ChunkId>> {
        let mut nodes = Vec::new();
        for (name, child) in self.children {
            let node = match child {
                TopEntry::Leaf(entry) if name.is_empty() => {
                    // Backing up "/" itself.
                    return Ok(entry.resolve()?.and_then(|n| n.subtree));
                }
                TopEntry::Leaf(entry) => entry.resolve()?,
                TopEntry::Dir(dir) => {
                    let node = dir.node.clone();
                    match (dir.save(ctx)?, node) {
                        (Some(subtree), Some(mut node)) => {
                            node.subtree = Some(subtree);
                            Some(*node)
                        }
                        _ => None,
                    }
                }
            };
            nodes.extend(node);
        }
        if nodes.is_empty() {
            return Ok(None);
        }
        Ok(Some(Tree::new(nodes)?.save(ctx.store)?))
    }
}

/// The node of a folder above a backup path (its metadata, or plain defaults if unreadable).
fn ancestor_node(ctx: &Context<'_>, path: &Path, name: &[u8]) -> Node {
    match std::fs::symlink_metadata(path)
        .map(|meta| node_from_metadata(path, name, &meta, &ctx.owners))
    {
        Ok(Ok(mut node)) if node.kind == NodeKind::Dir => {
            node.size = 0;
            node
        }
        _ => {
            let mut node = Node::new(name.to_vec(), NodeKind::Dir);
            node.mode = 0o755;
            node
        }
    }
}
