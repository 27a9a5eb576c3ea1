//! A chunk store over memory for the crate's unit tests.

use std::sync::Arc;

use chunk_store::{ChunkStore, InitOptions, KdfParams, MemoryBackend};

/// A new repository in memory, encrypted with `password` or not, its index in the returned
/// folder (kept alive as long as the store is used).
pub(crate) fn memory_store(password: Option<&str>) -> (tempfile::TempDir, ChunkStore) {
    let cache = tempfile::tempdir().expect("a temporary folder for the index");
    let options = InitOptions {
        password: password.map(str::to_string),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let store = ChunkStore::init(
        Arc::new(MemoryBackend::new()),
        &options,
        cache.path().join("i.redb"),
    )
    .expect("a repository in memory");
    (cache, store)
}
