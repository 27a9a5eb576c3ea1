//! `diff`: what changed between two snapshots.

use snapshot_index::{ChangeKind, SnapshotEntry, diff_trees};

use crate::error::Result;
use crate::repository::Repository;

/// One difference, with the path as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// Path from the snapshot root (lossy UTF-8), directories end with `/`.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
}

impl Repository {
    /// Differences from snapshot `a` to snapshot `b`, in path order. Identical subtrees are
    /// skipped without being read. A folder whose contents changed is not itself reported
    /// unless its own metadata changed (as restic does).
    pub fn diff(&self, a: &SnapshotEntry, b: &SnapshotEntry) -> Result<Vec<DiffEntry>> {
        Ok(
            diff_trees(self.store(), &a.snapshot.tree, &b.snapshot.tree)?
                .into_iter()
                .map(|change| DiffEntry {
                    path: String::from_utf8_lossy(&change.path).into_owned(),
                    kind: change.kind,
                })
                .collect(),
        )
    }
}
