//! Pack trailer reading (format.md section 8) over a `MemoryBackend` holding the input as a
//! pack: size, header, footer magic, trailer length, seal, bincode records, record checks.
//!
//! The first byte picks the sealing mode (bit 0: unencrypted or encrypted with a fixed key)
//! and how the rest is used (the rest of the byte, modulo 2):
//! - 0: the rest is the pack, as is;
//! - 1: a pack built here: a blob area, a trailer plaintext (arbitrary bytes, or records that
//!   are mostly valid: known kind and encoding, inside the blob area), sealed with the right
//!   associated data, and a footer whose length and magic are mostly right.
//!
//! A valid built pack must be read back exactly; whatever is read must point inside the blob
//! area.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::PackEntry;
use chunk_store::fuzzing::{SealMode, read_pack_trailer, seal};
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{
    Bin, Draw, PACK_FOOTER_MAGIC, PACK_MAGIC, draw_version, header, mode_of, pack_trailer_ad, trace,
};

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws the smallest valid pack: proves the harness matches the format.
        for mode in [SealMode::Plain, SealMode::Encrypted] {
            built(mode, &mut Unstructured::new(&[]));
        }
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = mode_of(selector);
    if (selector >> 1) % 2 == 0 {
        check_bounds(rest, read_pack_trailer(mode, rest));
    } else {
        built(mode, &mut Unstructured::new(rest));
    }
});

/// Every entry read points inside the blob area.
fn check_bounds(bytes: &[u8], result: chunk_store::Result<Vec<PackEntry>>) {
    trace("pack trailer", &result);
    let Ok(entries) = result else { return };
    let size = bytes.len() as u64;
    let t = u32::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap());
    let blobs_end = size - 12 - u64::from(t);
    for e in entries {
        assert!(e.offset >= 10, "entry before the blob area: {e:?}");
        assert!(
            e.offset + u64::from(e.length) <= blobs_end,
            "entry past the blob area: {e:?}"
        );
    }
}

/// Builds a pack from `u`, reads its trailer, and checks the outcome.
fn built(mode: SealMode, u: &mut Unstructured<'_>) {
    let version = draw_version(u);
    let mut valid = version == 1;
    let area_len = u.below(4096);
    let area_end = 10 + area_len;
    let mut expected = Vec::new();
    let plaintext = if u.chance(1, 16) {
        valid = false;
        u.bytes_up_to(1024)
    } else {
        let count = u.below(16);
        let mut records = Bin::default();
        let stated = u.mostly(count);
        valid &= stated == count;
        records.u64(stated);
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
            let offset = {
                let valid = 10 + u.below(area_len + 1);
                u.mostly(valid)
            };
            let room = area_end.saturating_sub(offset);
            let length = {
                let valid = u.below(room + 1) as u32;
                u.mostly(valid)
            };
            let raw_length: u32 = u.any();
            valid &= kind < 2
                && encoding < 2
                && offset >= 10
                && offset
                    .checked_add(u64::from(length))
                    .is_some_and(|end| end <= area_end);
            records
                .raw(&id)
                .u8(kind)
                .u8(encoding)
                .u64(offset)
                .u32(length)
                .u32(raw_length);
            expected.push((id, kind, encoding, offset, length, raw_length));
        }
        records.0
    };
    let sealed = seal(mode, &plaintext, &pack_trailer_ad(version)).expect("seal");
    let mut pack = header(PACK_MAGIC, version);
    pack.resize(area_end as usize, 0);
    pack.extend_from_slice(&sealed);
    let trailer_len = u.mostly(sealed.len() as u32);
    valid &= trailer_len as usize == sealed.len();
    pack.extend_from_slice(&trailer_len.to_le_bytes());
    let footer: [u8; 8] = u.mostly(*PACK_FOOTER_MAGIC);
    valid &= &footer == PACK_FOOTER_MAGIC;
    pack.extend_from_slice(&footer);

    let result = read_pack_trailer(mode, &pack);
    if valid {
        let entries = match &result {
            Ok(entries) => entries,
            Err(e) => panic!("a valid pack was refused: {e}"),
        };
        let read: Vec<_> = entries
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
        assert_eq!(read, expected, "a valid pack was read wrong");
    }
    check_bounds(&pack, result);
}
