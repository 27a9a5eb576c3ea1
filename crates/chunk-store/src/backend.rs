//! Where repository files live: the [`Backend`] contract and its implementations.
//!
//! A repository is a set of immutable, named files grouped by [`FileKind`]. Everything above
//! this module speaks only of kinds and names; a backend maps them to a directory, an object
//! store or memory. The contract is small on purpose, so that any store offering put, get
//! (ranges), list and delete of whole objects can hold a repository.

mod local;
mod location;
mod memory;
mod object;
mod spool;

pub use local::LocalBackend;
pub use location::{Location, OPENDAL_SCHEME, OpendalLocation, S3_SCHEME, S3Access, S3Location};
pub use memory::MemoryBackend;
pub use object::{DEFAULT_PART_SIZE, ObjectBackend, RequestCounts, RequestPolicy};

use crate::error::{Error, Result};

/// The kinds of file a repository holds. Each kind is a separate namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FileKind {
    /// The single `config` file (its name is always `config`).
    Config,
    /// Key files under `keys/`.
    Key,
    /// Pack files under `packs/`.
    Pack,
    /// Index files under `index/`.
    Index,
    /// Snapshot manifests under `snapshots/`.
    Snapshot,
    /// Lock files under `locks/`.
    Lock,
}

impl FileKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FileKind; 6] = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
    ];

    /// The folder (or key prefix) that holds files of this kind; empty for the config.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "packs",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
        }
    }

    /// A short, human name of the kind, used in messages.
    pub fn label(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Pack => "pack",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
        }
    }

    /// The path of a file of this kind relative to the repository root, as used in messages
    /// (`packs/ab12…`, `config`).
    pub fn display_path(self, name: &str) -> String {
        match self {
            FileKind::Config => name.to_string(),
            _ => format!("{}/{}", self.dir(), name),
        }
    }
}

/// Storage for the immutable, named files of one repository.
///
/// Implementations must be usable from many threads at once. Names are checked with
/// [`validate_name`] by every implementation; a name never contains a path separator.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Human-readable location of the repository (a path or URL), for messages.
    fn location(&self) -> String;

    /// Stores `data` as the file `name` of `kind`.
    ///
    /// Atomic: once it returns `Ok`, the whole file is durable and visible; if it fails or the
    /// process dies, the file is either absent or a whole earlier version, never partial.
    /// Writing a name that exists replaces it atomically; callers write only content-derived
    /// names (so a rewrite has the same content) or their own lock files.
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()>;

    /// Returns the whole content of a file, or [`Error::NotFound`].
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>>;

    /// Returns exactly `len` bytes starting at `offset`. A range that extends beyond the end
    /// of the file is [`Error::ShortRead`], never a shorter buffer; a missing file is
    /// [`Error::NotFound`].
    fn read_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// The size in bytes of a file, or [`Error::NotFound`].
    fn size(&self, kind: FileKind, name: &str) -> Result<u64>;

    /// Names of all files of `kind`, sorted. Files being written (not yet visible whole) are
    /// never listed. For [`FileKind::Config`] the list is `["config"]` or empty.
    fn list(&self, kind: FileKind) -> Result<Vec<String>>;

    /// Deletes a file. Idempotent: deleting a missing file succeeds.
    fn delete(&self, kind: FileKind, name: &str) -> Result<()>;

    /// Whether the file exists.
    fn exists(&self, kind: FileKind, name: &str) -> Result<bool>;

    /// A hint that bytes `offset..offset + len` of file `name` of `kind` will be read soon: a
    /// backend may start reading them now, in the background, so that the read finds them
    /// ready. It never fails and changes nothing a read returns. Nothing unless a backend says
    /// otherwise.
    fn read_ahead(&self, kind: FileKind, name: &str, offset: u64, len: u64) {
        let _ = (kind, name, offset, len);
    }

    /// Whether every request goes over a network (an object store), so that callers should
    /// keep local copies of what they read often. `false` unless a backend says otherwise.
    fn is_remote(&self) -> bool {
        false
    }

    /// A stamp of the set of files of `kind` as it is now, when this backend can tell one
    /// cheaply: the same stamp at two moments means that no file of `kind` was added or
    /// deleted between the two calls, and that a listing made after the first call is still
    /// current. `None` when the backend cannot promise that now (it has no such stamp, or the
    /// set changed too recently for the stamp to be trusted): the caller lists. `None` unless a
    /// backend says otherwise.
    fn listing_stamp(&self, kind: FileKind) -> Option<ListingStamp> {
        let _ = kind;
        None
    }

    /// Starts a file of `kind` that is written piece by piece and named only when complete
    /// (see [`StagedFile`]), or `None` when this backend takes whole files only
    /// ([`Backend::write`]) and the caller must gather the content in memory. `None` unless
    /// a backend says otherwise.
    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn StagedFile>>> {
        let _ = kind;
        Ok(None)
    }
}

/// What [`Backend::listing_stamp`] returns: opaque bytes, compared whole, that a caller may
/// keep (locally) beside what it learned from a listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListingStamp(Vec<u8>);

impl ListingStamp {
    /// A stamp made of `bytes` (a backend's own, or one kept earlier).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The stamp's bytes, for keeping it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A file being written piece by piece, invisible until [`StagedFile::commit`] names it: how
/// packs reach a backend without being held in memory. Dropping it uncommitted discards it.
pub trait StagedFile: Send + std::fmt::Debug {
    /// Appends `data` to the content.
    fn append(&mut self, data: &[u8]) -> Result<()>;

    /// Returns the `len` bytes at `offset` of what was appended so far.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>>;

    /// Stores the content as the file `name` of the kind it was staged for, with the
    /// guarantees of [`Backend::write`]: once `Ok`, durable and visible whole; after an error
    /// or a crash, absent (a crash may leave the partial content under a name that is never
    /// listed).
    fn commit(self: Box<Self>, name: &str) -> Result<()>;
}

/// The name of the config file.
pub const CONFIG_NAME: &str = "config";

/// Checks that `name` is a plain file name that every backend can store: non-empty, at most
/// 200 bytes (room for a temporary prefix within common 255-byte limits), ASCII letters, digits, `-`, `_` and `.`, not starting with a dot (dot-names are
/// reserved for files in progress).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
        })
    }
}

/// Checks a requested range against a file size, for backends that know the size first.
pub(crate) fn check_range(
    kind: FileKind,
    name: &str,
    offset: u64,
    len: u64,
    size: u64,
) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::ShortRead {
            kind: kind.label(),
            name: name.to_string(),
            offset,
            len,
            size,
        }),
    }
}
