//! Snapshots of file trees on top of the chunk store.
//!
//! A snapshot is a manifest (time, host, paths, tags, summary) pointing at a root [`Tree`].
//! A tree lists one directory's [`Node`]s sorted by name; a directory node points at its own
//! tree, a file node lists its content chunks. Trees are tree blobs in the chunk store, so an
//! unchanged directory costs nothing in a new snapshot. The manifest is written last, under
//! `snapshots/`, named by its own hash.
//!
//! The [`Catalog`] lists snapshots, filters them and picks one by id, prefix, `latest` or point
//! in time; [`diff_trees`] compares two trees without reading identical subtrees.

mod catalog;
mod codec;
mod diff;
mod error;
mod kept_catalog;
mod node;
mod retention;
mod snapshot;
#[cfg(test)]
mod test_store;
mod tree;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use catalog::{Catalog, SnapshotEntry, SnapshotFilter};
pub use diff::{Change, ChangeKind, diff_trees};
pub use error::{Error, Result};
pub use node::{FLAG_CHANGED_WHILE_READ, FLAG_SQLITE, Node, NodeKind, validate_name};
pub use retention::{
    Decision, GroupBy, GroupKey, KeepReason, ParseGroupByError, Period, RetentionPolicy,
    apply_policy, group_snapshots,
};
pub use snapshot::{Snapshot, Summary};
pub use tree::{Tree, lookup_path};
