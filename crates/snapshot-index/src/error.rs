//! The one error type of the snapshot index.

use chunker::ChunkId;

/// What can go wrong with trees, snapshots and the catalog. Every variant names the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chunk store failed (I/O, damage, missing blob).
    #[error(transparent)]
    Store(#[from] chunk_store::Error),
    /// A tree blob or snapshot file could not be decoded or is invalid.
    #[error("{object} is damaged: {reason}. Run `check` to see what it affects")]
    Corrupt {
        /// The tree (`tree <id>`) or snapshot (`snapshots/<id>`).
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// A tree or snapshot was written by a newer version.
    #[error(
        "{object} uses format version {found}, but this version of respaldo reads at most version {supported}: upgrade respaldo"
    )]
    UnsupportedVersion {
        /// The object.
        object: String,
        /// Version found.
        found: u16,
        /// Highest version understood.
        supported: u16,
    },
    /// A node name that cannot be stored or restored safely.
    #[error(
        "invalid file name {name:?} in {context}: names must be non-empty, not '.' or '..', and contain no '/' or NUL byte"
    )]
    InvalidName {
        /// The name, lossily decoded.
        name: String,
        /// Where it was found.
        context: String,
    },
    /// A tree about to be written breaks a rule its decoder checks (a bug of the caller).
    #[error(
        "refusing to write a tree with node {name:?}: {reason}; it could not be read back \
         (this is a bug in respaldo: please report it)"
    )]
    InvalidTree {
        /// The offending node's name, lossily decoded.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {spec:?}: list them with `respaldo snapshots`")]
    NoSnapshot {
        /// What was asked for.
        spec: String,
    },
    /// A prefix matches several snapshots.
    #[error("snapshot prefix {prefix:?} matches {count} snapshots: give more characters")]
    AmbiguousSnapshot {
        /// The prefix.
        prefix: String,
        /// How many match.
        count: usize,
    },
    /// A path does not exist in a snapshot.
    #[error("{path} is not in snapshot {snapshot}: list its contents with `respaldo ls`")]
    PathNotFound {
        /// The path asked for.
        path: String,
        /// The snapshot.
        snapshot: String,
    },
    /// A tree is larger than a blob may be.
    #[error(
        "directory {path} has too many entries to store as one tree ({size} bytes encoded, at most {max})"
    )]
    TreeTooLarge {
        /// The directory.
        path: String,
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A tree node refers to a subtree that is missing.
    #[error("tree {tree}: directory {name:?} has no subtree")]
    MissingSubtree {
        /// The tree holding the node.
        tree: ChunkId,
        /// The node's name.
        name: String,
    },
}

/// Result with the snapshot index's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
