//! The store's write path for chunks whose ids are already known: `add_blob_with_id` (index
//! lookup, compress, seal, append to a pack, write full packs) of every chunk of the mixed
//! corpus into a fresh encrypted repository, then `flush` (last packs, index file, fast index).
//! On a memory backend and on a local folder (each file synced, renamed, folder synced); one
//! thread, and across chunks with rayon. Creating the repository and hashing are not timed.

mod common;

use std::path::Path;
use std::sync::Arc;

use chunk_store::{Backend, BlobKind, ChunkId, ChunkStore, LocalBackend, MemoryBackend};
use chunker::{Chunker, ChunkerParams, CutPoints};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

fn add_serial(store: &ChunkStore, items: &[(ChunkId, &[u8])]) {
    for (id, chunk) in items {
        store
            .add_blob_with_id(BlobKind::Data, *id, chunk)
            .expect("adding a blob");
    }
    store.flush().expect("flushing");
}

fn add_parallel(store: &ChunkStore, items: &[(ChunkId, &[u8])]) {
    items.par_iter().for_each(|(id, chunk)| {
        store
            .add_blob_with_id(BlobKind::Data, *id, chunk)
            .expect("adding a blob");
    });
    store.flush().expect("flushing");
}

type Add = fn(&ChunkStore, &[(ChunkId, &[u8])]);
type MakeBackend = fn(&Path) -> Arc<dyn Backend>;

fn pack_writing(c: &mut Criterion) {
    let data = respaldo_benches::corpus().mixed();
    let chunker = Chunker::new(ChunkerParams::default()).expect("default chunker parameters");
    let chunks: Vec<&[u8]> = chunker.chunk_slice(data).collect();
    let memory = |_: &Path| -> Arc<dyn Backend> { Arc::new(MemoryBackend::new()) };
    let local =
        |dir: &Path| -> Arc<dyn Backend> { Arc::new(LocalBackend::new(dir.join("repository"))) };
    let backends: [(&str, MakeBackend); 2] = [("memory", memory), ("local", local)];
    let modes: [(&str, Add); 2] = [("serial", add_serial), ("parallel", add_parallel)];

    let mut group = c.benchmark_group("pack_writing");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (backend_name, backend) in backends {
        for (mode_name, add) in modes {
            group.bench_function(format!("{mode_name}/{backend_name}"), |b| {
                b.iter_batched(
                    || {
                        let repo = common::encrypted_repo(backend);
                        let items = common::with_ids(&repo.store, &chunks);
                        (repo, items)
                    },
                    |(repo, items)| {
                        add(&repo.store, &items);
                        // Returned so that dropping the store and its folder is not timed.
                        (repo, items)
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = pack_writing
}
criterion_main!(benches);
