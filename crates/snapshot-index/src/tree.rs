//! Trees: the sorted entries of one directory, stored as a tree blob.
//!
//! ```text
//! "RSPLTREE" | version u16 LE | bincode(Vec<NodeRecord>)
//! ```
//! The blob's id is the id of these bytes, so identical directories are stored once.
//! Entries are strictly sorted by name bytes and every name is validated on decode, so a tree
//! can hold neither duplicates nor a name that would escape its directory.

use serde::{Deserialize, Serialize};

use chunk_store::{BlobKind, ChunkStore};
use chunker::ChunkId;

use crate::codec;
use crate::error::{Error, Result};
use crate::node::{Node, NodeKind, validate_name};

const TREE_MAGIC: &[u8; 8] = b"RSPLTREE";
const TREE_VERSION: u16 = 1;

/// One directory's entries, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Node>,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    mtime_ns: i64,
    ctime_ns: i64,
    device: u64,
    inode: u64,
    links: u64,
    rdev: u64,
    size: u64,
    content: Vec<[u8; 32]>,
    subtree: Option<[u8; 32]>,
    link_target: Vec<u8>,
    flags: u32,
}

impl Tree {
    /// A tree of `nodes`, sorted by name. Duplicate or invalid names are refused.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for node in &nodes {
            validate_name(&node.name, "a new tree")?;
        }
        if let Some(pair) = nodes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::InvalidName {
                name: pair[0].name_lossy(),
                context: "a new tree (the name appears twice)".to_string(),
            });
        }
        Ok(Self { nodes })
    }

    /// The entries, sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Takes the entries.
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes
    }

    /// The entry named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The stored bytes of this tree.
    ///
    /// A directory without a subtree, or another node with one, is refused
    /// ([`Error::InvalidTree`] naming it): the decoder would refuse the tree, so it must never
    /// be written.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if let Some(node) = self
            .nodes
            .iter()
            .find(|n| (n.kind == NodeKind::Dir) != n.subtree.is_some())
        {
            return Err(Error::InvalidTree {
                name: node.name_lossy(),
                reason: "only directories have a subtree, and every directory has one".to_string(),
            });
        }
        let records: Vec<NodeRecord> = self
            .nodes
            .iter()
            .map(|n| NodeRecord {
                name: n.name.clone(),
                kind: n.kind.to_byte(),
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                user: n.user.clone(),
                group: n.group.clone(),
                mtime_ns: n.mtime_ns,
                ctime_ns: n.ctime_ns,
                device: n.device,
                inode: n.inode,
                links: n.links,
                rdev: n.rdev,
                size: n.size,
                content: n.content.iter().map(|c| *c.as_bytes()).collect(),
                subtree: n.subtree.map(|s| *s.as_bytes()),
                link_target: n.link_target.clone(),
                flags: n.flags,
            })
            .collect();
        codec::encode(TREE_MAGIC, TREE_VERSION, &records, "a tree")
    }

    /// Decodes a tree blob; `object` names it in errors.
    pub fn from_bytes(bytes: &[u8], object: &str) -> Result<Self> {
        let (_, body) = codec::split_header(bytes, TREE_MAGIC, TREE_VERSION, object)?;
        let records: Vec<NodeRecord> = codec::decode(body, object)?;
        let mut nodes = Vec::with_capacity(records.len());
        for r in records {
            validate_name(&r.name, object)?;
            let kind = NodeKind::from_byte(r.kind).ok_or_else(|| Error::Corrupt {
                object: object.to_string(),
                reason: format!("unknown node kind {}", r.kind),
            })?;
            if (kind == NodeKind::Dir) != r.subtree.is_some() {
                return Err(Error::Corrupt {
                    object: object.to_string(),
                    reason: format!(
                        "{:?}: only directories have a subtree",
                        String::from_utf8_lossy(&r.name)
                    ),
                });
            }
            nodes.push(Node {
                name: r.name,
                kind,
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                user: r.user,
                group: r.group,
                mtime_ns: r.mtime_ns,
                ctime_ns: r.ctime_ns,
                device: r.device,
                inode: r.inode,
                links: r.links,
                rdev: r.rdev,
                size: r.size,
                content: r.content.into_iter().map(ChunkId::from_bytes).collect(),
                subtree: r.subtree.map(ChunkId::from_bytes),
                link_target: r.link_target,
                flags: r.flags,
            });
        }
        if nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::Corrupt {
                object: object.to_string(),
                reason: "entries are not strictly sorted by name (duplicate or reordered)"
                    .to_string(),
            });
        }
        Ok(Self { nodes })
    }

    /// Stores this tree as a tree blob and returns its id (identical trees are stored once).
    pub fn save(&self, store: &ChunkStore) -> Result<ChunkId> {
        let bytes = self.to_bytes()?;
        if bytes.len() > chunk_store::MAX_BLOB_SIZE {
            return Err(Error::TreeTooLarge {
                path: String::new(),
                size: bytes.len(),
                max: chunk_store::MAX_BLOB_SIZE,
            });
        }
        Ok(store.add_blob(BlobKind::Tree, &bytes)?.id)
    }

    /// Loads tree `id` from the store, verified.
    pub fn load(store: &ChunkStore, id: &ChunkId) -> Result<Self> {
        let bytes = store.get_blob(id)?;
        Self::from_bytes(&bytes, &format!("tree {id}"))
    }
}

/// Finds the node at `path` (components from the snapshot root) below `root`.
pub fn lookup_path(store: &ChunkStore, root: &ChunkId, path: &[&[u8]]) -> Result<Option<Node>> {
    let mut tree = Tree::load(store, root)?;
    for (i, component) in path.iter().enumerate() {
        let Some(node) = tree.find(component).cloned() else {
            return Ok(None);
        };
        if i + 1 == path.len() {
            return Ok(Some(node));
        }
        match node.subtree {
            Some(subtree) if node.kind == NodeKind::Dir => tree = Tree::load(store, &subtree)?,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
