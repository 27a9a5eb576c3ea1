//! `ls`: the nodes of a snapshot.

use chunker::ChunkId;
use snapshot_index::{Node, NodeKind, SnapshotEntry, Tree, lookup_path};

use crate::error::Result;
use crate::repository::Repository;

/// A node and its path in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedNode {
    /// Path from the snapshot root, `/`-separated, starting with `/`.
    pub path: Vec<u8>,
    /// The node.
    pub node: Node,
}

/// The components of a snapshot path (`/home/user/src`, `home/user/src/`): empty
/// components and `.` are dropped.
pub(crate) fn path_components(path: &str) -> Vec<&[u8]> {
    path.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// The short form of a snapshot id (8 hex digits), as shown in listings.
pub(crate) fn short_id(id: &ChunkId) -> String {
    id.to_hex().chars().take(8).collect()
}

/// The node at `path` of `snapshot`, or [`snapshot_index::Error::PathNotFound`].
pub(crate) fn find_node(repo: &Repository, snapshot: &SnapshotEntry, path: &str) -> Result<Node> {
    let components = path_components(path);
    lookup_path(repo.store(), &snapshot.snapshot.tree, &components)?.ok_or_else(|| {
        snapshot_index::Error::PathNotFound {
            path: path.to_string(),
            snapshot: short_id(&snapshot.id),
        }
        .into()
    })
}

impl Repository {
    /// Every node of `snapshot` below `path` (the whole snapshot when `None` or `/`), depth
    /// first in name order. The node at `path` itself comes first.
    ///
    /// Errors: `path` is not in the snapshot ([`snapshot_index::Error::PathNotFound`]); a
    /// tree cannot be read.
    pub fn ls(&self, snapshot: &SnapshotEntry, path: Option<&str>) -> Result<Vec<ListedNode>> {
        let mut out = Vec::new();
        let components = path.map(path_components).unwrap_or_default();
        if components.is_empty() {
            self.list_tree(&snapshot.snapshot.tree, b"", &mut out)?;
            return Ok(out);
        }
        let node = find_node(self, snapshot, path.unwrap_or_default())?;
        let node_path = components.iter().fold(Vec::new(), |mut acc, c| {
            acc.push(b'/');
            acc.extend_from_slice(c);
            acc
        });
        self.list_node(node, node_path, &mut out)?;
        Ok(out)
    }

    fn list_tree(&self, tree: &ChunkId, prefix: &[u8], out: &mut Vec<ListedNode>) -> Result<()> {
        for node in Tree::load(self.store(), tree)?.into_nodes() {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            self.list_node(node, path, out)?;
        }
        Ok(())
    }

    fn list_node(&self, node: Node, path: Vec<u8>, out: &mut Vec<ListedNode>) -> Result<()> {
        let subtree = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(subtree)) => Some(subtree),
            _ => None,
        };
        out.push(ListedNode {
            path: path.clone(),
            node,
        });
        if let Some(subtree) = subtree {
            self.list_tree(&subtree, &path, out)?;
        }
        Ok(())
    }
}
