//! The whole add path of a backup over the mixed corpus, into a fresh encrypted repository on
//! a memory backend: chunk (with the repository's seeded chunker), hash (keyed BLAKE3),
//! `add_blob_with_id` (index lookup, compress, seal, pack), then `flush`.
//!
//! - `serial`: one thread does everything, chunk by chunk;
//! - `parallel`: chunk the whole input first (one thread), then hash and add across chunks
//!   with rayon;
//! - `parallel_bridge`: chunking feeds rayon as it goes (`par_bridge`), so that cutting the
//!   input overlaps hashing and adding.
//!
//! Creating the repository is not timed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chunk_store::{BlobKind, ChunkStore, MemoryBackend};
use chunker::CutPoints;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

fn add_one(store: &ChunkStore, chunk: &[u8]) -> (bool, u64) {
    let id = store.blob_id(chunk);
    let outcome = store
        .add_blob_with_id(BlobKind::Data, id, chunk)
        .expect("adding a blob");
    (outcome.stored, outcome.stored_bytes)
}

fn serial(store: &ChunkStore, data: &[u8]) {
    for chunk in store.chunker().chunk_slice(data) {
        add_one(store, chunk);
    }
    store.flush().expect("flushing");
}

fn parallel(store: &ChunkStore, data: &[u8]) {
    let chunks: Vec<&[u8]> = store.chunker().chunk_slice(data).collect();
    chunks.par_iter().for_each(|chunk| {
        add_one(store, chunk);
    });
    store.flush().expect("flushing");
}

fn parallel_bridge(store: &ChunkStore, data: &[u8]) {
    store
        .chunker()
        .chunk_slice(data)
        .par_bridge()
        .for_each(|chunk| {
            add_one(store, chunk);
        });
    store.flush().expect("flushing");
}

type Run = fn(&ChunkStore, &[u8]);

/// Prints, once, what the add path stores and where the `parallel` variant spends its wall
/// time (best of three runs per phase): chunking alone, hashing and adding across chunks, and
/// the final flush.
fn report(data: &[u8]) {
    let mut phases = [Duration::MAX; 3];
    for round in 0..3 {
        let repo = common::encrypted_repo(|_| Arc::new(MemoryBackend::new()));
        let store = &repo.store;
        let start = Instant::now();
        let chunks: Vec<&[u8]> = store.chunker().chunk_slice(data).collect();
        let chunked = Instant::now();
        let (stored, stored_bytes) = chunks
            .par_iter()
            .map(|chunk| {
                let (new, bytes) = add_one(store, chunk);
                (usize::from(new), bytes)
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let added = Instant::now();
        store.flush().expect("flushing");
        let flushed = Instant::now();
        for (best, took) in
            phases
                .iter_mut()
                .zip([chunked - start, added - chunked, flushed - added])
        {
            *best = (*best).min(took);
        }
        if round > 0 {
            continue;
        }
        eprintln!(
            "add_path: {} chunks, {stored} stored, {stored_bytes} bytes sealed \
             ({:.1}% of {} bytes)",
            chunks.len(),
            100.0 * stored_bytes as f64 / data.len() as f64,
            data.len()
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "add_path: parallel breakdown (best of 3): chunking {:.1} ms, hash+add {:.1} ms, \
         flush {:.1} ms",
        ms(phases[0]),
        ms(phases[1]),
        ms(phases[2])
    );
}

fn add_path(c: &mut Criterion) {
    let data = respaldo_benches::corpus().mixed();
    report(data);

    let modes: [(&str, Run); 3] = [
        ("serial", serial),
        ("parallel", parallel),
        ("parallel_bridge", parallel_bridge),
    ];
    let mut group = c.benchmark_group("add_path");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, run) in modes {
        group.bench_function(format!("{name}/mixed"), |b| {
            b.iter_batched(
                || common::encrypted_repo(|_| Arc::new(MemoryBackend::new())),
                |repo| {
                    run(&repo.store, data);
                    // Returned so that dropping the store and its folder is not timed.
                    repo
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = add_path
}
criterion_main!(benches);
