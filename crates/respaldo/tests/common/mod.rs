//! Building repositories and snapshots through the library, for the restore and browse tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use chunk_store::BlobKind;
use respaldo::{
    ChunkId, InitOptions, KdfParams, Node, NodeKind, Repository, Snapshot, SnapshotEntry,
};
use snapshot_index::Tree;

/// A fixed modification time with nanoseconds: 2020-09-13T12:26:40.123456789Z.
pub const MTIME_NS: i64 = 1_600_000_000_123_456_789;

/// A new encrypted repository in `dir/repo`, with its cache in `dir/cache`.
pub fn repository(dir: &Path) -> Repository {
    let options = InitOptions {
        password: Some("test password".to_string()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    Repository::init(&dir.join("repo"), &options, &dir.join("cache")).unwrap()
}

/// Deterministic, incompressible-looking bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Stores `chunks` as data blobs and returns their ids.
pub fn store_chunks(repo: &Repository, chunks: &[&[u8]]) -> Vec<ChunkId> {
    chunks
        .iter()
        .map(|c| repo.store().add_blob(BlobKind::Data, c).unwrap().id)
        .collect()
}

/// A file node of `chunks` (stored), mode 0644, the fixed mtime.
pub fn file(repo: &Repository, name: &str, chunks: &[&[u8]]) -> Node {
    let mut node = Node::new(name, NodeKind::File);
    node.content = store_chunks(repo, chunks);
    node.size = chunks.iter().map(|c| c.len() as u64).sum();
    node.mode = 0o644;
    node.mtime_ns = MTIME_NS;
    node.uid = nix::unistd::geteuid().as_raw();
    node.gid = nix::unistd::getegid().as_raw();
    node
}

/// A directory node holding `children` (its tree stored), mode 0755, the fixed mtime.
pub fn dir(repo: &Repository, name: &str, children: Vec<Node>) -> Node {
    let mut node = Node::new(name, NodeKind::Dir);
    node.subtree = Some(Tree::new(children).unwrap().save(repo.store()).unwrap());
    node.mode = 0o755;
    node.mtime_ns = MTIME_NS;
    node.uid = nix::unistd::geteuid().as_raw();
    node.gid = nix::unistd::getegid().as_raw();
    node
}

/// A node of `kind` with a link target (symlinks, hard links).
pub fn link(name: &str, kind: NodeKind, target: &str) -> Node {
    let mut node = Node::new(name, kind);
    node.link_target = target.as_bytes().to_vec();
    node.mode = 0o777;
    node.mtime_ns = MTIME_NS;
    node
}

/// Saves a snapshot whose root tree holds `root` (flushing first).
pub fn snapshot(repo: &Repository, root: Vec<Node>, time_ns: i64) -> SnapshotEntry {
    let tree = Tree::new(root).unwrap().save(repo.store()).unwrap();
    snapshot_of_tree(repo, tree, time_ns)
}

/// Saves a snapshot of the stored root tree `tree` (flushing first).
pub fn snapshot_of_tree(repo: &Repository, tree: ChunkId, time_ns: i64) -> SnapshotEntry {
    repo.store().flush().unwrap();
    let snapshot = Snapshot {
        time_ns,
        utc_offset_s: 0,
        hostname: "test-host".to_string(),
        username: "tester".to_string(),
        tags: Vec::new(),
        paths: vec!["/home".to_string()],
        tree,
        parent: None,
        program_version: "test".to_string(),
        summary: Default::default(),
    };
    let id = snapshot.save(repo.store()).unwrap();
    SnapshotEntry { id, snapshot }
}

/// Every path below `root` (relative, sorted), for "nothing else was written" checks.
pub fn list_all(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A local backend whose changes can be made to fail: before each write or deletion,
/// `fault(change, kind, name)` (`change` is `"write"` or `"delete"`) returns the error to
/// fail it with, or `None` to let it through. Reads always work.
pub struct FaultyBackend<F> {
    /// Where the files really are.
    pub inner: chunk_store::LocalBackend,
    /// Decides which changes fail.
    pub fault: F,
}

impl<F> std::fmt::Debug for FaultyBackend<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F> chunk_store::Backend for FaultyBackend<F>
where
    F: Fn(&str, chunk_store::FileKind, &str) -> Option<chunk_store::Error> + Send + Sync,
{
    fn location(&self) -> String {
        self.inner.location()
    }
    fn write(
        &self,
        kind: chunk_store::FileKind,
        name: &str,
        data: &[u8],
    ) -> chunk_store::Result<()> {
        match (self.fault)("write", kind, name) {
            Some(e) => Err(e),
            None => self.inner.write(kind, name, data),
        }
    }
    fn read(&self, kind: chunk_store::FileKind, name: &str) -> chunk_store::Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn read_range(
        &self,
        kind: chunk_store::FileKind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> chunk_store::Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, len)
    }
    fn size(&self, kind: chunk_store::FileKind, name: &str) -> chunk_store::Result<u64> {
        self.inner.size(kind, name)
    }
    fn list(&self, kind: chunk_store::FileKind) -> chunk_store::Result<Vec<String>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: chunk_store::FileKind, name: &str) -> chunk_store::Result<()> {
        match (self.fault)("delete", kind, name) {
            Some(e) => Err(e),
            None => self.inner.delete(kind, name),
        }
    }
    fn exists(&self, kind: chunk_store::FileKind, name: &str) -> chunk_store::Result<bool> {
        self.inner.exists(kind, name)
    }
}
