//! Index file decoding (format.md section 9): name, header, seal, bincode `Vec<PackRecord>`,
//! kind and encoding bytes.
//!
//! The first byte picks the sealing mode (bit 0: unencrypted or encrypted with a fixed key)
//! and how the rest is used (the rest of the byte, modulo 2):
//! - 0: the rest is the index file, as is;
//! - 1: an index file built here: a header version and a body plaintext (arbitrary bytes, or
//!   mostly valid pack records), sealed with the right associated data.
//!
//! A valid built file must decode to what was written. Whatever decodes must re-encode to a
//! file of its version that decodes the same, and (version 1 unencrypted, where sealing is
//! deterministic and the body is not compressed) to the same bytes.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::IndexedPack;
use chunk_store::fuzzing::{SealMode, decode_index_file, encode_index_file, seal};
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{Bin, Draw, INDEX_MAGIC, draw_version, header, index_body_ad, mode_of, trace};

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws the smallest valid file: proves the harness matches the format.
        for mode in [SealMode::Plain, SealMode::Encrypted] {
            built(mode, &mut Unstructured::new(&[]));
        }
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = mode_of(selector);
    if (selector >> 1) % 2 == 0 {
        check_decoded(mode, rest, decode_index_file(mode, rest));
    } else {
        built(mode, &mut Unstructured::new(rest));
    }
});

fn check_decoded(mode: SealMode, bytes: &[u8], result: chunk_store::Result<Vec<IndexedPack>>) {
    trace("index file", &result);
    let Ok(packs) = result else { return };
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let (_, again) = encode_index_file(mode, version, &packs).expect("re-encode");
    assert_eq!(decode_index_file(mode, &again).expect("re-decode"), packs);
    // A version 2 body is a zstd frame, and other frames decode to the same listing.
    if mode == SealMode::Plain && version == 1 {
        assert_eq!(
            again, bytes,
            "a decoded index file re-encodes to other bytes"
        );
    }
}

/// (pack, size, [(id, kind, encoding, offset, length, raw_length)])
type Expected = Vec<([u8; 32], u64, Vec<([u8; 32], u8, u8, u64, u32, u32)>)>;

fn built(mode: SealMode, u: &mut Unstructured<'_>) {
    let version = draw_version(u);
    let mut valid = version == 1;
    let mut expected: Expected = Vec::new();
    let body = if u.chance(1, 16) {
        valid = false;
        u.bytes_up_to(2048)
    } else {
        let mut body = Bin::default();
        let packs = u.below(8);
        body.u64(packs);
        for _ in 0..packs {
            let pack: [u8; 32] = u.any();
            let size: u64 = u.any();
            let count = u.below(8);
            let stated = u.mostly(count);
            valid &= stated == count;
            body.raw(&pack).u64(size).u64(stated);
            let mut blobs = Vec::new();
            for _ in 0..count {
                let id: [u8; 32] = u.any();
                let kind = {
                    let valid = u.below(2) as u8;
                    u.mostly(valid)
                };
                let encoding = {
                    let valid = u.below(2) as u8;
                    u.mostly(valid)
                };
                let (offset, length, raw_length) = u.any::<(u64, u32, u32)>();
                valid &= kind < 2 && encoding < 2;
                body.raw(&id)
                    .u8(kind)
                    .u8(encoding)
                    .u64(offset)
                    .u32(length)
                    .u32(raw_length);
                blobs.push((id, kind, encoding, offset, length, raw_length));
            }
            expected.push((pack, size, blobs));
        }
        if u.chance(1, 16) {
            valid = false;
            body.0.push(u.any());
        }
        body.0
    };
    let mut file = header(INDEX_MAGIC, version);
    file.extend_from_slice(&seal(mode, &body, &index_body_ad(version)).expect("seal"));

    let result = decode_index_file(mode, &file);
    if valid {
        let packs = match &result {
            Ok(packs) => packs,
            Err(e) => panic!("a valid index file was refused: {e}"),
        };
        let read: Expected = packs
            .iter()
            .map(|p| {
                let blobs = p
                    .blobs
                    .iter()
                    .map(|e| {
                        (
                            *e.id.as_bytes(),
                            e.kind.to_byte(),
                            e.encoding.to_byte(),
                            e.offset,
                            e.length,
                            e.raw_length,
                        )
                    })
                    .collect();
                (*p.pack.as_bytes(), p.size, blobs)
            })
            .collect();
        assert_eq!(read, expected, "a valid index file was read wrong");
    }
    check_decoded(mode, &file, result);
}
