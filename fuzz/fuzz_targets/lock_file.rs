//! Lock file decoding (format.md section 10.3): header, seal, bincode `LockRecord`.
//!
//! The first byte picks the sealing mode (bit 0) and how the rest is used (bit 1):
//! - 0: the rest is the lock file, as is;
//! - 1: the rest is a lock record's plaintext body, sealed here with the right associated
//!   data, so that the bincode decoder sees arbitrary bodies behind a valid seal.
//!
//! Whatever decodes must re-encode to a file that decodes the same, and (unencrypted, where
//! sealing is deterministic) to the same bytes.
#![no_main]

use chunk_store::fuzzing::{SealMode, decode_lock_file, encode_lock_file, seal};
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{mode_of, trace};

const LOCK_MAGIC: &[u8; 8] = b"RSPLLOCK";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = mode_of(selector);
    let file = if (selector >> 1) % 2 == 0 {
        rest.to_vec()
    } else {
        let mut ad = b"RSPLLOCK lock file".to_vec();
        ad.extend_from_slice(&1u16.to_le_bytes());
        let mut file = LOCK_MAGIC.to_vec();
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&seal(mode, rest, &ad).expect("seal"));
        file
    };
    let result = decode_lock_file(mode, "fuzz", &file);
    trace("lock file", &result);
    let Ok(info) = result else { return };
    let again = encode_lock_file(mode, &info).expect("re-encode");
    assert_eq!(
        decode_lock_file(mode, "fuzz", &again).expect("re-decode"),
        info
    );
    if mode == SealMode::Plain {
        assert_eq!(again, file, "a decoded lock file re-encodes to other bytes");
    }
});
