//! Chunk id throughput over the chunks of the mixed corpus: plain BLAKE3 (unencrypted
//! repositories) and keyed BLAKE3 (encrypted ones), on one thread and across chunks with
//! rayon (one chunk per task, as the backup pipeline hashes).

use std::hint::black_box;
use std::time::Duration;

use chunker::{Chunker, ChunkerParams, CutPoints, IdHasher};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

fn hashing(c: &mut Criterion) {
    let data = respaldo_benches::corpus().mixed();
    let chunker = Chunker::new(ChunkerParams::default()).expect("default chunker parameters");
    let chunks: Vec<&[u8]> = chunker.chunk_slice(data).collect();
    let hashers = [
        ("plain", IdHasher::Plain),
        (
            "keyed",
            IdHasher::Keyed(*blake3::hash(b"bench id key").as_bytes()),
        ),
    ];

    let mut group = c.benchmark_group("hashing");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, hasher) in &hashers {
        group.bench_function(format!("serial/{name}"), |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|chunk| hasher.hash(black_box(chunk)))
                    .collect::<Vec<_>>()
            });
        });
        group.bench_function(format!("parallel/{name}"), |b| {
            b.iter(|| {
                chunks
                    .par_iter()
                    .map(|chunk| hasher.hash(black_box(chunk)))
                    .collect::<Vec<_>>()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = hashing
}
criterion_main!(benches);
