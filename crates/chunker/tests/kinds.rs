//! Property tests of every chunker kind (FastCDC, fixed, page-aligned) through [`Cutter`]:
//! chunks reassemble the input and respect the bounds, streaming equals slicing, page cuts
//! fall on page boundaries, the page chunker resynchronises after an inserted page,
//! [`MultiStream`] equals each chunker alone, and specs round-trip through their text form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chunker::{
    ChunkerParams, ChunkingSpec, CutPoints, Cutter, FixedChunker, MultiStream, PageChunker,
    PageParams, PageSize,
};
use common::{ShortReader, SplitMix64, drain_checked, random_bytes};
use proptest::prelude::*;

/// A spec of any kind with small sizes, so that inputs of ≤ 256 KiB give many chunks.
fn spec() -> impl Strategy<Value = ChunkingSpec> {
    let fastcdc = (6u32..=10, 1u32..=3, 1u32..=3, 0u8..=3).prop_map(|(min, a, b, level)| {
        ChunkingSpec::FastCdc(
            ChunkerParams::new(
                1 << min,
                1 << (min + a).max(8),
                1 << (min + a + b).max(10),
                level,
                0,
            )
            .unwrap(),
        )
    });
    let fixed = (64u32..=20_000).prop_map(|size| ChunkingSpec::Fixed { size });
    let page_size = prop_oneof![
        Just(PageSize::Detect),
        (9u32..=12).prop_map(|s| PageSize::Bytes(1 << s)),
    ];
    let pages = (1u32..=4, 0u32..=6, 0u32..=12, page_size.clone()).prop_map(
        |(min_pages, more, most, page_size)| ChunkingSpec::Pages {
            min_pages,
            avg_pages: min_pages + more,
            max_pages: min_pages + more + most,
            page_size,
        },
    );
    let pages_fixed = (1u32..=8, page_size)
        .prop_map(|(pages, page_size)| ChunkingSpec::PagesFixed { pages, page_size });
    prop_oneof![fastcdc, fixed, pages, pages_fixed]
}

/// Inputs up to 256 KiB: random, low-entropy, or with repeated pages; sometimes starting with
/// a SQLite header (page size 1024) so that page kinds detect it.
fn input() -> impl Strategy<Value = Vec<u8>> {
    (0usize..=256 * 1024, any::<u64>(), 0u8..3, any::<bool>()).prop_map(
        |(len, seed, kind, sqlite)| {
            let mut data = random_bytes(len, seed);
            match kind {
                0 => {}
                1 => data.iter_mut().for_each(|b| *b &= 1),
                _ => {
                    let page = random_bytes(512, seed ^ 1);
                    let mut rng = SplitMix64(seed);
                    for slot in data.chunks_mut(512) {
                        if rng.next_u64().is_multiple_of(3) {
                            let n = slot.len();
                            slot.copy_from_slice(&page[..n]);
                        }
                    }
                }
            }
            if sqlite && data.len() >= 18 {
                data[..16].copy_from_slice(b"SQLite format 3\0");
                data[16..18].copy_from_slice(&[0x04, 0x00]);
            }
            data
        },
    )
}

fn lengths(cutter: &Cutter, data: &[u8]) -> Vec<usize> {
    cutter.chunk_slice(data).map(<[u8]>::len).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn chunks_concatenate_and_respect_bounds(spec in spec(), data in input()) {
        let cutter = spec.cutter(&data).unwrap();
        let chunks: Vec<&[u8]> = cutter.chunk_slice(&data).collect();
        prop_assert_eq!(chunks.concat(), data.clone());
        let (min, max) = (cutter.min_chunk_len(), cutter.max_chunk_len());
        if let Some((last, rest)) = chunks.split_last() {
            prop_assert!(!last.is_empty() && last.len() <= max);
            for c in rest {
                prop_assert!(c.len() >= min && c.len() <= max, "{} not in {min}..={max}", c.len());
            }
        } else {
            prop_assert!(data.is_empty());
        }
        match spec {
            ChunkingSpec::Fixed { size } => {
                prop_assert!(rest_all(&chunks, |c| c.len() == size as usize));
            }
            ChunkingSpec::Pages { .. } | ChunkingSpec::PagesFixed { .. } => {
                let page = spec.page_size_for(&data).unwrap() as usize;
                let detect = matches!(
                    spec,
                    ChunkingSpec::Pages { page_size: PageSize::Detect, .. }
                        | ChunkingSpec::PagesFixed { page_size: PageSize::Detect, .. }
                );
                if detect && data.len() >= 18 && &data[..16] == b"SQLite format 3\0" {
                    prop_assert_eq!(page, 1024);
                }
                let mut offset = 0;
                for c in &chunks[..chunks.len().saturating_sub(1)] {
                    offset += c.len();
                    prop_assert_eq!(offset % page, 0, "cut at {} with pages of {}", offset, page);
                }
            }
            ChunkingSpec::FastCdc(_) => {}
        }
    }

    #[test]
    fn stream_equals_slice(
        spec in spec(),
        data in input(),
        sizes in prop::collection::vec(1usize..=20_000, 1..8),
        capacity in 0usize..=300_000,
    ) {
        let cutter = spec.cutter(&data).unwrap();
        let expected = lengths(&cutter, &data);

        let mut stream = cutter.stream_with_capacity(ShortReader::new(&data, sizes.clone()), capacity);
        prop_assert_eq!(&drain_checked(&mut stream, &data), &expected);

        let mut streamed = Vec::new();
        let total = cutter
            .chunk_reader(ShortReader::new(&data, sizes), |c| {
                streamed.push(c.len());
                Ok::<(), std::io::Error>(())
            })
            .unwrap();
        prop_assert_eq!(total, data.len() as u64);
        prop_assert_eq!(streamed, expected);
    }

    /// A reused buffer, holding another input's bytes, changes no cut point; it comes back
    /// at least as large as it went in, and large enough for the next stream.
    #[test]
    fn stream_with_a_reused_buffer_equals_slice(
        spec in spec(),
        data in input(),
        sizes in prop::collection::vec(1usize..=20_000, 1..8),
        stale in prop::collection::vec(any::<u8>(), 0..2_000),
        capacity in 0usize..=300_000,
    ) {
        let cutter = spec.cutter(&data).unwrap();
        let expected = lengths(&cutter, &data);
        let mut buffer = Vec::with_capacity(capacity.max(stale.len()));
        buffer.extend_from_slice(&stale);
        let capacity_in = buffer.capacity();

        for _ in 0..2 {
            let mut stream = cutter.stream_with_buffer(ShortReader::new(&data, sizes.clone()), buffer);
            prop_assert_eq!(&drain_checked(&mut stream, &data), &expected);
            buffer = stream.into_buffer();
            prop_assert!(buffer.len() >= capacity_in);
            prop_assert!(buffer.len() >= 2 * cutter.max_chunk_len());
        }
    }

    #[test]
    fn the_wrapped_chunkers_agree_with_the_cutter(spec in spec(), data in input()) {
        let cutter = spec.cutter(&data).unwrap();
        let direct: Vec<usize> = match &cutter {
            Cutter::FastCdc(c) => c.chunk_slice(&data).map(<[u8]>::len).collect(),
            Cutter::Fixed(c) => {
                let mut s = c.stream(&data[..]);
                let mut v = Vec::new();
                while let Some(chunk) = s.next_chunk().unwrap() {
                    v.push(chunk.len());
                }
                v
            }
            Cutter::Pages(c) => {
                let mut v = Vec::new();
                c.chunk_reader(&data[..], |chunk| {
                    v.push(chunk.len());
                    Ok::<(), std::io::Error>(())
                })
                .unwrap();
                v
            }
        };
        prop_assert_eq!(direct, lengths(&cutter, &data));
    }

    #[test]
    fn multi_stream_equals_each_chunker_alone(
        specs in prop::collection::vec(spec(), 1..5),
        data in input(),
        sizes in prop::collection::vec(1usize..=70_000, 1..6),
    ) {
        let cutters: Vec<Cutter> = specs.iter().map(|s| s.cutter(&data).unwrap()).collect();
        let mut got: Vec<Vec<usize>> = vec![Vec::new(); cutters.len()];
        let mut offsets = vec![0usize; cutters.len()];
        let mut multi = MultiStream::new(&cutters, ShortReader::new(&data, sizes));
        while let Some((i, chunk)) = multi.next_chunk().unwrap() {
            prop_assert_eq!(chunk, &data[offsets[i]..offsets[i] + chunk.len()]);
            offsets[i] += chunk.len();
            got[i].push(chunk.len());
        }
        prop_assert_eq!(multi.bytes_read(), data.len() as u64);
        for (cutter, lens) in cutters.iter().zip(&got) {
            prop_assert_eq!(lens, &lengths(cutter, &data));
        }

        // A reused buffer (full of the previous input) gives the same chunks.
        let buffer = multi.into_buffer();
        let mut again: Vec<Vec<usize>> = vec![Vec::new(); cutters.len()];
        let mut multi = MultiStream::with_buffer(&cutters, &data[..], buffer);
        while let Some((i, chunk)) = multi.next_chunk().unwrap() {
            again[i].push(chunk.len());
        }
        prop_assert_eq!(again, got);
    }

    /// With `min_pages = 1` a page whose hash cuts ends a chunk whatever came before it, so
    /// after an inserted page the cuts agree again from the first such page on: only the
    /// chunks between the last cut before the insertion and that page differ.
    #[test]
    fn page_chunker_resynchronises_after_an_inserted_page(
        seed in any::<u64>(),
        avg in 2u32..=8,
        extra in 0u32..=16,
        at in 0usize..200,
    ) {
        let page = 512usize;
        let c = PageChunker::new(PageParams::new(512, 1, avg, avg + extra).unwrap()).unwrap();
        let old = random_bytes(page * 200, seed);
        let mut new = old.clone();
        let inserted = random_bytes(page, !seed);
        new.splice(at * page..at * page, inserted.iter().copied());

        let cuts = |data: &[u8]| -> Vec<usize> {
            c.chunk_slice(data)
                .scan(0, |end, chunk| {
                    *end += chunk.len();
                    Some(*end)
                })
                .collect()
        };
        let (a, b) = (cuts(&old), cuts(&new));
        let before = |v: &[usize]| v.iter().copied().filter(|&e| e <= at * page).collect::<Vec<_>>();
        prop_assert_eq!(before(&a), before(&b), "cuts before the insertion moved");

        // The first page at or after the insertion point whose hash cuts, in the old data.
        let first_hit = (at..200).find(|&p| {
            let h = chunker::page_hash(&old[p * page..(p + 1) * page], 0);
            h <= u64::MAX / u64::from(avg)
        });
        if let Some(p) = first_hit {
            let sync = (p + 1) * page;
            let tail_a: Vec<usize> = a.iter().copied().filter(|&e| e >= sync).collect();
            let tail_b: Vec<usize> = b
                .iter()
                .copied()
                .filter(|&e| e >= sync + page)
                .map(|e| e - page)
                .collect();
            prop_assert_eq!(&tail_a, &tail_b, "no resynchronisation after page {}", p);
            prop_assert!(tail_a.first() == Some(&sync));
        }
    }

    #[test]
    fn specs_round_trip_through_their_text(spec in spec()) {
        let text = spec.to_string();
        prop_assert_eq!(text.parse::<ChunkingSpec>().unwrap(), spec);
    }

    #[test]
    fn sqlite_detection_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Some(size) = chunker::sqlite_page_size(&bytes) {
            prop_assert!(size.is_power_of_two() && (512..=65536).contains(&size));
            prop_assert_eq!(&bytes[..16], b"SQLite format 3\0");
        }
    }
}

/// Whether every element but the last satisfies `f`.
fn rest_all(chunks: &[&[u8]], f: impl Fn(&[u8]) -> bool) -> bool {
    chunks
        .split_last()
        .is_none_or(|(_, rest)| rest.iter().all(|c| f(c)))
}

/// Pages moved in a file still deduplicate under the page chunker, not under fixed-size
/// chunking: a deterministic witness of why the page kind is content-defined.
#[test]
fn inserted_page_dedups_with_pages_but_not_with_fixed() {
    let page = 4096;
    let old = random_bytes(page * 2000, 77);
    let mut new = old.clone();
    new.splice(600 * page..600 * page, random_bytes(page, 78));
    let unique_fraction = |cutter: Cutter| {
        let mut e = chunker::DedupEstimator::with_cutter(cutter, chunker::IdHasher::Plain);
        e.add_slice(&old);
        let before = e.tally().unique_bytes();
        e.add_slice(&new);
        (e.tally().unique_bytes() - before) as f64 / new.len() as f64
    };
    let pages = unique_fraction(
        ChunkingSpec::parse("pages:2,8,32")
            .unwrap()
            .cutter(&old)
            .unwrap(),
    );
    let fixed = unique_fraction(FixedChunker::new(8 * 4096).unwrap().into());
    assert!(pages < 0.05, "pages: {pages}");
    assert!(fixed > 0.6, "fixed: {fixed}");
}
