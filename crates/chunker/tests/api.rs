//! The public API as other crates use it: ids, hashers, serde encodings and
//! dedup estimation.
#![allow(clippy::unwrap_used)]

mod common;

use chunker::{
    ChunkId, Chunker, ChunkerParams, DedupEstimator, Error, IdHasher, estimate_dedup,
    find_by_prefix,
};
use common::random_bytes;

#[test]
fn chunk_id_hex_round_trip_and_prefixes() {
    let ids: Vec<ChunkId> = (0..50u8).map(|i| IdHasher::Plain.hash(&[i])).collect();
    for id in &ids {
        let hex = id.to_hex();
        assert_eq!(hex.parse::<ChunkId>().unwrap(), *id);
        assert_eq!(find_by_prefix(&ids, &hex).unwrap(), *id);
        assert_eq!(
            find_by_prefix(&ids, &hex[..12].to_uppercase()).unwrap(),
            *id
        );
    }
    assert!(matches!(
        find_by_prefix(&ids, &ids[0].to_hex()[..1]),
        Err(Error::Ambiguous { count, .. }) if count >= 2
    ));
    let err = "not-an-id".parse::<ChunkId>().unwrap_err().to_string();
    assert!(err.contains("\"not-an-id\"") && err.contains("64"), "{err}");
}

#[test]
fn bincode_encodings_are_raw() {
    let id = ChunkId::from_bytes([0xa5; 32]);
    let bytes = bincode::serialize(&id).unwrap();
    assert_eq!(bytes, vec![0xa5; 32], "a ChunkId is its 32 raw bytes");
    assert_eq!(bincode::deserialize::<ChunkId>(&bytes).unwrap(), id);

    let p = ChunkerParams::default().with_seed(0x0102_0304_0506_0708);
    let bytes = bincode::serialize(&p).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&ChunkerParams::DEFAULT_MIN.to_le_bytes());
    expected.extend_from_slice(&ChunkerParams::DEFAULT_AVG.to_le_bytes());
    expected.extend_from_slice(&ChunkerParams::DEFAULT_MAX.to_le_bytes());
    expected.push(1);
    expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(bincode::deserialize::<ChunkerParams>(&bytes).unwrap(), p);
}

#[test]
fn hashers() {
    let data = random_bytes(100_000, 3);
    assert_eq!(
        IdHasher::Plain.hash(&data).0,
        *blake3::hash(&data).as_bytes()
    );
    let key = [42u8; 32];
    assert_eq!(
        IdHasher::Keyed(key).hash(&data).0,
        *blake3::keyed_hash(&key, &data).as_bytes()
    );
    assert_ne!(
        IdHasher::Keyed(key).hash(&data),
        IdHasher::Keyed([43u8; 32]).hash(&data)
    );
    assert!(!format!("{:?}", IdHasher::Keyed(key)).contains("42"));
}

#[test]
fn dedup_of_repeated_data() {
    let p = ChunkerParams::new(1024, 4096, 16384, 1, 0).unwrap();
    let data = random_bytes(256 * 1024, 11);
    let e = estimate_dedup(p, &[&data, &data]).unwrap();
    assert_eq!(e.logical_bytes, 2 * data.len() as u64);
    assert_eq!(e.unique_bytes, e.logical_bytes / 2);
    assert_eq!(e.histogram.iter().map(|b| b.count).sum::<u64>(), e.chunks);
    assert!((e.dedup_ratio() - 2.0).abs() < 1e-9);

    // Streaming gives the same estimate, and a keyed hasher the same counts.
    let mut est = DedupEstimator::new(p, IdHasher::Keyed([5; 32])).unwrap();
    assert_eq!(est.add_reader(&data[..]).unwrap(), data.len() as u64);
    est.add_slice(&data);
    assert_eq!(est.estimate(), e);

    // A shifted copy still deduplicates nearly entirely.
    let mut shifted = b"header".to_vec();
    shifted.extend_from_slice(&data);
    let e = estimate_dedup(p, &[&data, &shifted]).unwrap();
    assert!(e.dedup_ratio() > 1.8, "{e:?}");
}

#[test]
fn chunker_reports_its_params() {
    let p = ChunkerParams::default().with_seed(9);
    let c = Chunker::new(p).unwrap();
    assert_eq!(*c.params(), p);
    let c2 = c.clone();
    assert_eq!(c2.params(), c.params());
}
