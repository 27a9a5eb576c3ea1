//! `config` decoding (`RepoConfig`, format.md section 4): header, size, checksum, bincode body,
//! validation.
//!
//! The first byte picks how the rest is used:
//! - 0: the rest is the file, as is (header, length and checksum checks);
//! - 1: the rest is a body, framed here with a header version and a correct checksum (the
//!   bincode decoder and validation, with arbitrary bytes);
//! - 2: a mostly valid `RepoConfig` drawn from the rest and written by the real encoder
//!   (validation of each setting, and decode(encode(c)) = c exactly when c is valid).
//!
//! Whatever decodes must be valid, of a format major this version reads, and re-encode to the
//! same bytes.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::fuzzing::{decode_config, encode_config, frame_checked};
use chunk_store::{ChunkerConfig, CompressionConfig, EncryptionConfig, FORMAT_MAJOR, RepoConfig};
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{CHUNKER_ALGORITHM, CONFIG_MAGIC, Draw, draw_version, trace};

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws a valid config: proves the harness matches the format.
        let config = structured(&mut Unstructured::new(&[]));
        config.validate().expect("the harness draws valid configs");
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    match selector % 3 {
        0 => check_decoded(rest),
        1 => {
            let version = draw_version(&mut u);
            let framed = frame_checked(CONFIG_MAGIC, version, u.take_rest()).expect("frame");
            check_decoded(&framed);
        }
        _ => {
            structured(&mut u);
        }
    }
});

/// Draws a config, writes it with the real encoder and decodes it: it must come back equal
/// exactly when it is valid.
fn structured(u: &mut Unstructured<'_>) -> RepoConfig {
    let config = draw_config(u);
    let bytes = encode_config(&config, FORMAT_MAJOR).expect("encode");
    match decode_config(&bytes) {
        Ok((major, decoded)) => {
            assert_eq!(major, FORMAT_MAJOR);
            assert_eq!(decoded, config, "decode(encode(c)) != c");
        }
        Err(e) => assert!(
            config.validate().is_err(),
            "a valid config was refused: {e}\n{config:?}"
        ),
    }
    check_decoded(&bytes);
    config
}

/// Decodes `bytes`; what decodes must be valid and canonical.
fn check_decoded(bytes: &[u8]) {
    let result = decode_config(bytes);
    trace("config", &result);
    if let Ok((major, config)) = result {
        assert!(
            (1..=FORMAT_MAJOR).contains(&major),
            "only majors 1 to {FORMAT_MAJOR} can be read, not {major}"
        );
        config.validate().expect("a decoded config is valid");
        assert_eq!(
            encode_config(&config, major).expect("re-encode"),
            bytes,
            "a decoded config re-encodes to other bytes"
        );
    }
}

/// A power of two, mostly in chunker range, sometimes anything.
fn draw_size(u: &mut Unstructured<'_>, valid_shift: u64) -> u32 {
    if u.chance(1, 8) {
        u.any()
    } else {
        1u32 << (valid_shift + u.below(3)).min(31)
    }
}

fn draw_config(u: &mut Unstructured<'_>) -> RepoConfig {
    let encrypted = u.chance(1, 2);
    let seed_from_key = u.mostly(encrypted);
    let algorithm = if u.chance(1, 16) {
        u.any()
    } else {
        CHUNKER_ALGORITHM.to_string()
    };
    RepoConfig {
        format_minor: u.any(),
        repository_id: u.any(),
        chunker: ChunkerConfig {
            algorithm,
            min_size: draw_size(u, 8),
            avg_size: draw_size(u, 12),
            max_size: draw_size(u, 16),
            normalization: {
                let valid = u.below(4) as u8;
                u.mostly(valid)
            },
            seed_from_key,
            seed: if seed_from_key { u.mostly(0) } else { u.any() },
        },
        compression: CompressionConfig {
            zstd_level: {
                let valid = u.below(23) as i32;
                u.mostly(valid)
            },
        },
        encryption: if encrypted {
            EncryptionConfig::XChaCha20Poly1305Argon2id
        } else {
            EncryptionConfig::None
        },
        pack_size: {
            let valid = (1 << 20) + u.below(1 << 30) as u32;
            u.mostly(valid)
        },
    }
}
