//! Differences between two trees.

use chunk_store::ChunkStore;
use chunker::ChunkId;

use crate::error::Result;
use crate::node::{Node, NodeKind};
use crate::tree::Tree;

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Only in the second tree.
    Added,
    /// Only in the first tree.
    Removed,
    /// Content, kind or link target differ.
    Modified,
    /// Same content; mode, owner or times differ.
    MetadataOnly,
}

impl ChangeKind {
    /// One-character marker as in restic's `diff` (`+`, `-`, `M`, `U`).
    pub fn marker(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::MetadataOnly => 'U',
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path from the snapshot root, `/`-separated, starting with `/`; directories end with `/`.
    pub path: Vec<u8>,
    /// What changed.
    pub kind: ChangeKind,
}

/// Differences from tree `a` to tree `b`, in path order. Identical subtrees (same id) are
/// skipped without being read.
pub fn diff_trees(store: &ChunkStore, a: &ChunkId, b: &ChunkId) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    diff_into(store, Some(a), Some(b), b"/", &mut changes)?;
    Ok(changes)
}

fn child_path(prefix: &[u8], node: &Node) -> Vec<u8> {
    let mut path = prefix.to_vec();
    path.extend_from_slice(&node.name);
    if node.kind == NodeKind::Dir {
        path.push(b'/');
    }
    path
}

fn diff_into(
    store: &ChunkStore,
    a: Option<&ChunkId>,
    b: Option<&ChunkId>,
    prefix: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    if a.is_some() && a == b {
        return Ok(());
    }
    let load = |id: Option<&ChunkId>| -> Result<Tree> {
        id.map_or_else(|| Ok(Tree::default()), |id| Tree::load(store, id))
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let (na, nb) = (ta.nodes(), tb.nodes());
    let (mut i, mut j) = (0, 0);
    while i < na.len() || j < nb.len() {
        let order = match (na.get(i), nb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                report_all(store, &na[i], prefix, ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                report_all(store, &nb[j], prefix, ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&na[i], &nb[j]);
                if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
                    if !metadata_equal(x, y) {
                        out.push(Change {
                            path: child_path(prefix, y),
                            kind: ChangeKind::MetadataOnly,
                        });
                    }
                    diff_into(
                        store,
                        x.subtree.as_ref(),
                        y.subtree.as_ref(),
                        &child_path(prefix, y),
                        out,
                    )?;
                } else if x.kind != y.kind || !x.same_content(y) {
                    if x.kind != y.kind {
                        report_all(store, x, prefix, ChangeKind::Removed, out)?;
                        report_all(store, y, prefix, ChangeKind::Added, out)?;
                    } else {
                        out.push(Change {
                            path: child_path(prefix, y),
                            kind: ChangeKind::Modified,
                        });
                    }
                } else if !metadata_equal(x, y) {
                    out.push(Change {
                        path: child_path(prefix, y),
                        kind: ChangeKind::MetadataOnly,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// Restorable metadata (not inode or device, which change on every copy).
fn metadata_equal(x: &Node, y: &Node) -> bool {
    x.mode == y.mode && x.uid == y.uid && x.gid == y.gid && x.mtime_ns == y.mtime_ns
}

/// Reports `node` and, for a directory, everything below it.
fn report_all(
    store: &ChunkStore,
    node: &Node,
    prefix: &[u8],
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = child_path(prefix, node);
    out.push(Change {
        path: path.clone(),
        kind,
    });
    if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
        for child in Tree::load(store, &subtree)?.nodes() {
            report_all(store, child, &path, kind, out)?;
        }
    }
    Ok(())
}
