//! The storage layer of respaldo: backends, packs, blob encoding, keys and the chunk index.
//!
//! A repository is a set of immutable, content-named files on a [`Backend`]: one `config`,
//! key files under `keys/`, pack files under `packs/` and index files under `index/`.
//! [`ChunkStore`] turns blobs (chunks of file content, trees) into those files:
//!
//! 1. the blob's id is its BLAKE3 hash (keyed with a key derived from the master key when the
//!    repository is encrypted), and a blob whose id is known stores nothing;
//! 2. a new blob is compressed with zstd (kept raw when that does not shrink it) and sealed
//!    with XChaCha20-Poly1305 bound to its id and kind;
//! 3. sealed blobs are appended to packs of about 16 MiB, data and trees apart, each ending
//!    with a sealed trailer that lists its blobs;
//! 4. each flush writes an index file listing the new packs, and records them in the fast
//!    index `index.redb`, which can always be rebuilt from index files or pack trailers.
//!
//! Every read is verified against the blob's id; damage is reported with the file and offset.
//! `docs/format.md` specifies every file byte by byte.
//!
//! ```
//! use std::sync::Arc;
//! use chunk_store::{BlobKind, ChunkStore, InitOptions, KdfParams, MemoryBackend};
//!
//! let dir = tempfile::tempdir()?;
//! let backend = Arc::new(MemoryBackend::new());
//! let options = InitOptions {
//!     password: Some("secret".into()),
//!     kdf: KdfParams::insecure_fast(),
//!     ..InitOptions::default()
//! };
//! let store = ChunkStore::init(backend.clone(), &options, dir.path().join("index.redb"))?;
//! let added = store.add_blob(BlobKind::Data, b"hello")?;
//! store.flush()?;
//! drop(store);
//!
//! let store = ChunkStore::open(backend, Some("secret"), dir.path().join("index.redb"))?;
//! assert_eq!(store.get_blob(&added.id)?, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod blob;
mod codec;
mod config;
mod error;
mod group;
mod index;
mod index_file;
mod keys;
mod lock_file;
mod pack;
mod pack_cache;
mod seal;
mod store;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use backend::{
    Backend, CONFIG_NAME, DEFAULT_PART_SIZE, FileKind, ListingStamp, LocalBackend, Location,
    MemoryBackend, OPENDAL_SCHEME, ObjectBackend, OpendalLocation, RequestCounts, RequestPolicy,
    S3_SCHEME, S3Access, S3Location, StagedFile, validate_name,
};
pub use blob::{BlobKind, BlobLocation, Encoding};
pub use chunker::ChunkId;
pub use config::{
    CHUNKER_ALGORITHM, ChunkerConfig, CompressionConfig, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL,
    EncryptionConfig, FORMAT_MAJOR, FORMAT_MINOR, RepoConfig,
};
pub use error::{Error, Result};
pub use index_file::{IndexedPack, index_file_batches};
pub use keys::{KdfParams, KeyInfo, KeyOrigin, MAX_KDF, MasterKey};
pub use lock_file::LockInfo;
pub use pack::PackEntry;
pub use store::{
    AddOutcome, BlobChecker, BlobLocator, ChunkStore, InitOptions, KeptValues, KeptView,
    ListedSnapshotFile, MAX_BLOB_SIZE, MAX_INDEX_FILE_ENTRIES, PackReport,
};
