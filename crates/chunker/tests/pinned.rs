//! Pinned cut points: any change of fastcdc, or of how this crate drives it,
//! must fail these tests (it would silently stop new backups from
//! deduplicating against existing repositories).
//!
//! The expected values were computed once with fastcdc 5.0.0 and hard-coded.
#![allow(clippy::unwrap_used)]

mod common;

use chunker::{Chunker, ChunkerParams, CutPoints, FASTCDC_VERSION};
use common::{ShortReader, fastcdc_lengths, lengths_digest, random_bytes};

/// Chunk lengths, checked to be the same in memory, streamed (with short
/// reads and a small buffer), and from fastcdc's own iterator.
fn lengths(params: ChunkerParams, data: &[u8]) -> Vec<usize> {
    let chunker = Chunker::new(params).unwrap();
    let lens: Vec<usize> = chunker.chunk_slice(data).map(<[u8]>::len).collect();
    assert_eq!(lens, fastcdc_lengths(data, &params), "differs from fastcdc");

    let reader = ShortReader::new(data, vec![100_000, 7, 65_536, 1 << 20, 3_333]);
    let mut stream = chunker.stream_with_capacity(reader, 0);
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        streamed.push(chunk.len());
    }
    assert_eq!(stream.bytes_read(), data.len() as u64);
    assert_eq!(streamed, lens, "streaming differs from in-memory");
    lens
}

fn check(params: ChunkerParams, data: &[u8], first: &[usize], count: usize, digest: &str) {
    let lens = lengths(params, data);
    assert_eq!(&lens[..first.len()], first, "{params:?}");
    assert_eq!(lens.len(), count, "{params:?}");
    assert_eq!(lengths_digest(&lens), digest, "{params:?}");
    assert_eq!(lens.iter().sum::<usize>(), data.len());
}

fn small(normalization: u8, seed: u64) -> ChunkerParams {
    ChunkerParams::new(4096, 16384, 65536, normalization, seed).unwrap()
}

#[test]
fn version_is_recorded() {
    assert_eq!(FASTCDC_VERSION, "5.0.0");
}

#[test]
fn input_generator_is_stable() {
    assert_eq!(
        blake3::hash(&random_bytes(1 << 20, 1)).to_hex().as_str(),
        INPUT_DIGEST
    );
}
const INPUT_DIGEST: &str = "5884b8d317e0e8a32b8583a37b92447ebb3622ef64b8970ca65628fb42486608";

#[test]
fn small_params_level1_seed0() {
    check(
        small(1, 0),
        &random_bytes(4 << 20, 1),
        &[
            16594, 4854, 6680, 16852, 17387, 7368, 18027, 21446, 6470, 9809, 26573, 20507, 8036,
            12200, 40036, 15552, 16406, 18455, 21624, 12152,
        ],
        221,
        "541c831ebda842bbe0b229a7c47a586208003b7406d2dc6c1d24f90f3880caf0",
    );
}

#[test]
fn small_params_level1_seeded() {
    check(
        small(1, 0x1234_5678_9abc_def0),
        &random_bytes(4 << 20, 1),
        &[
            7229, 17372, 18986, 27169, 9102, 19237, 7475, 19663, 31045, 5864, 22405, 13413, 20407,
            5546, 20021, 16719, 25407, 13994, 25660, 17012,
        ],
        206,
        "e6b8fff0f1ba220a1b115ebb90398a0fc0aada4482b6e30d67d0c9ccbe83e0c2",
    );
}

#[test]
fn small_params_level2_seed0() {
    check(
        small(2, 0),
        &random_bytes(4 << 20, 1),
        &[
            16594, 11534, 16852, 17194, 19591, 26473, 7440, 16946, 19436, 20507, 8036, 17012,
            29972, 19946, 17264, 13958, 17056, 17615, 17079, 17373,
        ],
        227,
        "b78858f32478a7ca0ca7e1b1c9e264aceac48246c6159c4c1745d8ffbea412a3",
    );
}

#[test]
fn small_params_level2_seeded() {
    check(
        small(2, 0x1234_5678_9abc_def0),
        &random_bytes(4 << 20, 1),
        &[
            21839, 18262, 18419, 12236, 20837, 14977, 16682, 30681, 22191, 22836, 20407, 16574,
            13502, 18537, 19080, 13994, 20035, 20221, 23694, 30688,
        ],
        219,
        "694fad829989678dd9cec8284f555ffc0c16795130ee6e21d10856b2e4699256",
    );
}

#[test]
fn small_params_level0_and_level3() {
    let data = random_bytes(4 << 20, 1);
    check(
        small(0, 0),
        &data,
        &[
            28128, 65536, 16500, 22460, 19436, 8515, 11992, 9654, 4687, 5895, 65536, 6458, 11936,
            6519, 4559, 17065, 12059, 60483, 7975, 5149,
        ],
        218,
        "8a1da4416ced8805b46662c3d270bf2f4d881c56afafcb5b7f68ee66684d2424",
    );
    check(
        small(3, 0),
        &data,
        &[
            16594, 11534, 16852, 17194, 19591, 20748, 13165, 16946, 19436, 18718, 9825, 17012,
            29972, 18720, 17742, 14706, 17056, 16618, 4599, 18323,
        ],
        241,
        "d88a2c50afb7ebb55e17cf311340548d0c92d47fb451305af484c93bbe2393a4",
    );
}

/// 256 KiB / 1 MiB / 4 MiB: the default of the first repositories, which keep it.
fn first_default() -> ChunkerParams {
    ChunkerParams::new(256 << 10, 1 << 20, 4 << 20, 1, 0).unwrap()
}

#[test]
fn first_default_params_16_mib() {
    let data = random_bytes(16 << 20, 2);
    let expected = [
        1261617, 2820679, 1568514, 804029, 931142, 1241598, 1383699, 1197459, 1376132, 1273593,
        1895610, 1023144,
    ];
    let lens = lengths(first_default(), &data);
    assert_eq!(lens, expected);
    assert_eq!(lens.len(), 12);

    // The default streaming buffer too (the data spans more than one fill).
    let chunker = Chunker::new(first_default()).unwrap();
    let mut streamed = Vec::new();
    let total = chunker
        .chunk_reader(ShortReader::new(&data, vec![3 << 20, 12_345]), |c| {
            streamed.push(c.len());
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    assert_eq!(total, 16 << 20);
    assert_eq!(streamed, expected);
}

/// 128 KiB / 512 KiB / 2 MiB: the default since the sizes were chosen from the benchmark
/// scenarios.
#[test]
fn default_params_16_mib() {
    let data = random_bytes(16 << 20, 2);
    check(
        ChunkerParams::default(),
        &data,
        &[
            187800, 596650, 929569, 549970, 1818307, 656096, 817592, 560086, 278120, 556364,
            435427, 1241598,
        ],
        24,
        "4318198bfae17f6086eca844bb399c24c216ed07d817c013e462e633983e02c1",
    );
}
