//! Helpers shared by the benchmarks that need a repository.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chunk_store::{Backend, ChunkId, ChunkStore, InitOptions, KdfParams};
use criterion::Criterion;
use rayon::prelude::*;
use tempfile::TempDir;

/// Criterion settings for every benchmark: few samples and short runs, since each iteration
/// processes the whole corpus.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

/// A fresh encrypted repository and the temporary folder that holds its fast index (and, for a
/// local backend, its files). Dropping it deletes the folder.
pub struct Repo {
    /// The store.
    pub store: ChunkStore,
    _dir: TempDir,
}

/// Creates an encrypted repository (cheap key derivation) on the backend `backend` builds in a
/// new temporary folder, with its fast index in the same folder.
pub fn encrypted_repo(backend: impl FnOnce(&Path) -> Arc<dyn Backend>) -> Repo {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let options = InitOptions {
        password: Some("benchmark".into()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let store = ChunkStore::init(backend(dir.path()), &options, dir.path().join("index.redb"))
        .expect("creating the repository");
    Repo { store, _dir: dir }
}

#[allow(dead_code, reason = "not every benchmark pre-hashes")]
/// The ids `store` gives `chunks`, computed in parallel, paired with the chunks.
pub fn with_ids<'a>(store: &ChunkStore, chunks: &[&'a [u8]]) -> Vec<(ChunkId, &'a [u8])> {
    chunks
        .par_iter()
        .map(|chunk| (store.blob_id(chunk), *chunk))
        .collect()
}
