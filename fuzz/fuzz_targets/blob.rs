//! Blob decoding (format.md section 7): open the seal bound to id, format major and kind,
//! decompress (zstd, output capped at `raw_length`), check the length and the id.
//!
//! The first byte picks the sealing mode (bit 0: unencrypted with plain BLAKE3 ids, or
//! encrypted and keyed with fixed keys) and how the rest is used (the rest of the byte,
//! modulo 3):
//! - 0: a location drawn from the rest, and the rest as the sealed bytes;
//! - 1: a blob of fuzzer content written by the real encoder (zstd level 0 to 9), then read
//!   with a location that is mostly right (sometimes another kind, encoding, length or id, or a
//!   flipped byte in the sealed bytes);
//! - 2: an arbitrary plaintext (most often fed to zstd as a frame) sealed here with the right
//!   associated data, read with an arbitrary `raw_length`.
//!
//! A blob read with its own location must come back equal; whatever is read must be
//! `raw_length` bytes that hash to the id asked for.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::fuzzing::{SealMode, blob_id, decode_blob, encode_blob, seal};
use chunk_store::{BlobKind, BlobLocation, Encoding};
use chunker::ChunkId;
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{Draw, mode_of, trace};

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws the empty blob, read back: proves the harness matches the format.
        for mode in [SealMode::Plain, SealMode::Encrypted] {
            encoded(mode, &mut Unstructured::new(&[]));
            sealed_here(mode, &mut Unstructured::new(&[]));
        }
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = mode_of(selector);
    let mut u = Unstructured::new(rest);
    match (selector >> 1) % 3 {
        0 => {
            let id = ChunkId::from_bytes(u.any());
            let location = draw_location(&mut u, 0);
            let sealed = u.take_rest();
            let location = BlobLocation {
                length: sealed.len() as u32,
                ..location
            };
            check(mode, &id, &location, sealed, None);
        }
        1 => encoded(mode, &mut u),
        _ => sealed_here(mode, &mut u),
    }
});

fn kind_of(tree: bool) -> BlobKind {
    if tree { BlobKind::Tree } else { BlobKind::Data }
}

fn encoding_of(zstd: bool) -> Encoding {
    if zstd { Encoding::Zstd } else { Encoding::Raw }
}

fn draw_location(u: &mut Unstructured<'_>, raw_length: u32) -> BlobLocation {
    BlobLocation {
        pack: ChunkId::from_bytes([0; 32]),
        offset: 10,
        length: 0,
        raw_length,
        kind: kind_of(u.any()),
        encoding: encoding_of(u.any()),
        member_offset: 0,
    }
}

/// Decodes; `expected` is the content when the location is right.
fn check(
    mode: SealMode,
    id: &ChunkId,
    location: &BlobLocation,
    sealed: &[u8],
    expected: Option<&[u8]>,
) {
    let result = decode_blob(mode, id, location, sealed);
    trace("blob", &result);
    match (&result, expected) {
        (Ok(content), _) => {
            assert_eq!(content.len(), location.raw_length as usize, "wrong length");
            assert_eq!(
                blob_id(mode, content),
                *id,
                "content does not hash to its id"
            );
            if let Some(expected) = expected {
                assert_eq!(content.as_slice(), expected);
            }
        }
        (Err(e), Some(_)) => panic!("a blob read with its own location was refused: {e}"),
        (Err(_), None) => {}
    }
}

fn encoded(mode: SealMode, u: &mut Unstructured<'_>) {
    let level = u.below(10) as i32;
    let tree: bool = u.any();
    let content = if u.chance(1, 2) {
        // something zstd can shrink
        let unit = u.bytes_up_to(16);
        let times = u.below(256) as usize;
        unit.repeat(times)
    } else {
        u.bytes_up_to(4096)
    };
    let id = blob_id(mode, &content);
    let (encoding, mut sealed) =
        encode_blob(mode, level, &id, kind_of(tree), &content).expect("encode");
    let mut right = true;
    let mut location = BlobLocation {
        pack: ChunkId::from_bytes([0; 32]),
        offset: 10,
        length: sealed.len() as u32,
        raw_length: content.len() as u32,
        kind: kind_of(tree),
        encoding,
        member_offset: 0,
    };
    if u.chance(1, 4) {
        right = false;
        match u.below(5) {
            0 => location.kind = kind_of(!tree),
            1 => {
                location.encoding = match encoding {
                    Encoding::Raw => Encoding::Zstd,
                    _ => Encoding::Raw,
                }
            }
            2 => location.raw_length = u.any(),
            3 if !sealed.is_empty() => {
                let at = u.below(sealed.len() as u64) as usize;
                sealed[at] ^= 1 << u.below(8);
            }
            _ => {
                let other = ChunkId::from_bytes(u.any());
                let id = if other == id { id } else { other };
                check(mode, &id, &location, &sealed, None);
                return;
            }
        }
    }
    check(mode, &id, &location, &sealed, right.then_some(&content[..]));
}

/// The associated data of a blob's seal (format.md section 7): id, format major (the one the
/// fuzzing wrappers decode with), kind.
fn blob_ad(id: &ChunkId, kind: BlobKind) -> Vec<u8> {
    let mut ad = id.as_bytes().to_vec();
    ad.extend_from_slice(&chunk_store::FORMAT_MAJOR.to_le_bytes());
    ad.push(kind.to_byte());
    ad
}

fn sealed_here(mode: SealMode, u: &mut Unstructured<'_>) {
    let tree: bool = u.any();
    let zstd = !u.chance(1, 4);
    let raw_length: u32 = if u.chance(1, 2) {
        u.below(1 << 16) as u32
    } else {
        u.any()
    };
    let plaintext = u.bytes_up_to(4096);
    // Mostly the id of what the plaintext stands for when it is stored raw.
    let id = if u.chance(1, 4) {
        ChunkId::from_bytes(u.any())
    } else {
        blob_id(mode, &plaintext)
    };
    let sealed = seal(mode, &plaintext, &blob_ad(&id, kind_of(tree))).expect("seal");
    let location = BlobLocation {
        pack: ChunkId::from_bytes([0; 32]),
        offset: 10,
        length: sealed.len() as u32,
        raw_length,
        kind: kind_of(tree),
        encoding: encoding_of(zstd),
        member_offset: 0,
    };
    let right = !zstd && raw_length as usize == plaintext.len() && id == blob_id(mode, &plaintext);
    check(
        mode,
        &id,
        &location,
        &sealed,
        right.then_some(&plaintext[..]),
    );
}
