//! Key file decoding (format.md section 5): name, header, size, checksum, bincode body, KDF
//! algorithm; and unwrapping with a fixed password.
//!
//! The first byte picks how the rest is used:
//! - 0: the rest is the key file, as is;
//! - 1: the rest is a body, framed here with a header version and a correct checksum;
//! - 2: a mostly valid body drawn from the rest, written in the format's layout, framed.
//!
//! The public part is always decoded (`key list`). Unwrapping runs Argon2id with the
//! parameters the file states, so it is tried only when they are tiny (at most 256 KiB,
//! 2 passes, 4 lanes): a file asking for a huge cost is still decoded, but Argon2 is not run on
//! it, so that no input takes seconds. A file whose public part does not decode must not
//! unwrap either (both decode the same body, before any Argon2).
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::fuzzing::{frame_checked, key_file_info, unwrap_key_file};
use chunk_store::{Error, KdfParams};
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{Bin, Draw, KEY_MAGIC, draw_version, trace};

const PASSWORD: &str = "fuzz password";

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws a valid body: proves the harness matches the format.
        let (body, valid) = draw_body(&mut Unstructured::new(&[]));
        assert!(valid);
        check(&frame_checked(KEY_MAGIC, 1, &body).expect("frame"), true);
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    match selector % 3 {
        0 => check(rest, false),
        1 => {
            let version = draw_version(&mut u);
            check(
                &frame_checked(KEY_MAGIC, version, u.take_rest()).expect("frame"),
                false,
            );
        }
        _ => {
            let version = draw_version(&mut u);
            let (body, valid) = draw_body(&mut u);
            let valid = valid && version == 1;
            check(
                &frame_checked(KEY_MAGIC, version, &body).expect("frame"),
                valid,
            );
        }
    }
});

/// Argon2id parameters cheap enough to run on every input.
fn tiny(kdf: &KdfParams) -> bool {
    kdf.memory_kib <= 256 && kdf.iterations <= 2 && kdf.parallelism <= 4
}

fn check(bytes: &[u8], valid: bool) {
    let info = key_file_info(bytes);
    trace("key file info", &info);
    match info {
        Ok(info) => {
            if tiny(&info.kdf) {
                let unwrapped = unwrap_key_file(bytes, PASSWORD);
                trace("key file unwrap", &unwrapped);
                match unwrapped {
                    // Opening needs a wrapped key sealed under the password: not forgeable.
                    Ok(_) => {}
                    // Argon2 may refuse the parameters (fewer than 8 KiB per lane, ...), but
                    // the file decoded once, so it is not damage.
                    Err(e) => assert!(
                        !matches!(e, Error::Corrupt { .. }),
                        "the body decoded for `info` but not for unwrapping: {e}"
                    ),
                }
            }
        }
        Err(e) => {
            assert!(!valid, "a valid key file was refused: {e}");
            // The body does not decode: unwrapping must fail the same way, before Argon2.
            assert!(unwrap_key_file(bytes, PASSWORD).is_err());
        }
    }
}

/// A key file body (`KeyFileBody`); `true` when it is valid.
fn draw_body(u: &mut Unstructured<'_>) -> (Vec<u8>, bool) {
    let mut valid = true;
    let mut body = Bin::default();
    let algorithm: u8 = u.mostly(1);
    valid &= algorithm == 1;
    body.u8(algorithm);
    // Mostly tiny parameters, so that unwrapping runs; sometimes anything (then it does not).
    body.u32({
        let valid = 8 + u.below(249) as u32;
        u.mostly(valid)
    })
    .u32({
        let valid = 1 + u.below(2) as u32;
        u.mostly(valid)
    })
    .u32(u.mostly(1));
    body.raw(&u.any::<[u8; 32]>()).i64(u.any());
    for _ in 0..2 {
        // host and user names: UTF-8, sometimes not
        if u.chance(1, 8) {
            let name = u.bytes_up_to(64);
            valid &= std::str::from_utf8(&name).is_ok();
            body.bytes(&name);
        } else {
            body.bytes(u.any::<String>().as_bytes());
        }
    }
    let wrapped = if u.chance(1, 4) {
        u.bytes_up_to(300)
    } else {
        u.bytes_up_to(136)
    };
    body.bytes(&wrapped);
    if u.chance(1, 16) {
        // trailing or missing bytes
        valid = false;
        if u.chance(1, 2) {
            body.0.extend(u.bytes_up_to(8));
        } else {
            let keep = u.below(body.0.len() as u64) as usize;
            body.0.truncate(keep);
        }
    }
    (body.0, valid)
}
