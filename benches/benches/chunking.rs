//! Content-defined chunking throughput over the mixed corpus, default parameters
//! (128 KiB / 512 KiB / 2 MiB, normalization 1): cutting an in-memory slice, and streaming
//! through a `Read` (which copies the input through the chunker's buffer).

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use chunker::{Chunker, ChunkerParams, CutPoints};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

fn chunking(c: &mut Criterion) {
    let data = respaldo_benches::corpus().mixed();
    let chunker = Chunker::new(ChunkerParams::default()).expect("default chunker parameters");
    let count = chunker.chunk_slice(data).count();
    eprintln!(
        "chunking: {} chunks, mean {} KiB",
        count,
        data.len() / count.max(1) / 1024
    );

    let mut group = c.benchmark_group("chunking");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("chunk_slice/mixed", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for chunk in chunker.chunk_slice(black_box(data)) {
                total += black_box(chunk).len();
            }
            total
        });
    });
    group.bench_function("stream/mixed", |b| {
        b.iter(|| {
            let mut stream = chunker.stream(Cursor::new(black_box(data)));
            let mut total = 0usize;
            while let Some(chunk) = stream.next_chunk().expect("reading from memory") {
                total += black_box(chunk).len();
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = chunking
}
criterion_main!(benches);
