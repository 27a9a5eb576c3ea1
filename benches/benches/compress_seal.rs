//! Blob encoding throughput, `ChunkStore::encode_blob`: zstd level 3 (kept raw when it does
//! not shrink the chunk) then XChaCha20-Poly1305, for every chunk of each corpus class, in an
//! encrypted repository. One thread, and across chunks with rayon.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use chunk_store::{BlobKind, Encoding, MemoryBackend};
use chunker::CutPoints;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

fn compress_seal(c: &mut Criterion) {
    let corpus = respaldo_benches::corpus();
    let repo = common::encrypted_repo(|_| Arc::new(MemoryBackend::new()));
    let store = &repo.store;

    let mut group = c.benchmark_group("compress_seal");
    group.sampling_mode(SamplingMode::Flat);
    for (name, data) in corpus.sets() {
        let chunks: Vec<&[u8]> = store.chunker().chunk_slice(data).collect();
        let items = common::with_ids(store, &chunks);

        let mut out = Vec::new();
        let (mut sealed, mut raw) = (0usize, 0usize);
        for (id, chunk) in &items {
            out.clear();
            if store
                .encode_blob(BlobKind::Data, id, chunk, &mut out)
                .expect("encoding a blob")
                == Encoding::Raw
            {
                raw += 1;
            }
            sealed += out.len();
        }
        eprintln!(
            "compress_seal/{name}: {} chunks ({} stored raw), sealed size {:.1}% of {} bytes",
            items.len(),
            raw,
            100.0 * sealed as f64 / data.len() as f64,
            data.len()
        );

        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("serial/{name}"), |b| {
            b.iter(|| {
                let mut sealed = 0usize;
                for (id, chunk) in &items {
                    out.clear();
                    store
                        .encode_blob(BlobKind::Data, id, black_box(chunk), &mut out)
                        .expect("encoding a blob");
                    sealed += out.len();
                }
                sealed
            });
        });
        group.bench_function(format!("parallel/{name}"), |b| {
            b.iter(|| {
                items
                    .par_iter()
                    .map_init(Vec::new, |out, (id, chunk)| {
                        out.clear();
                        store
                            .encode_blob(BlobKind::Data, id, black_box(chunk), out)
                            .expect("encoding a blob");
                        out.len()
                    })
                    .sum::<usize>()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = compress_seal
}
criterion_main!(benches);
