//! The one place where repository structures become bytes and back.
//!
//! Every stored structure is encoded with `bincode` 1.3.3 through [`options`]: fixed-width
//! little-endian integers, a size limit, and trailing bytes rejected, so that one value has one
//! encoding and `docs/format.md` can describe it byte by byte. Every file starts with an
//! 8-byte magic and a little-endian `u16` version ([`write_header`], [`read_header`]).

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Largest structure the decoder accepts; larger input is treated as damage.
pub(crate) const DECODE_LIMIT: u64 = 256 * 1024 * 1024;

/// Length of a file header: magic and version.
pub(crate) const HEADER_LEN: usize = 10;

/// Length of the BLAKE3 checksum that ends every plaintext file.
pub(crate) const CHECKSUM_LEN: usize = 32;

/// The bincode configuration for every stored structure, in both directions.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(DECODE_LIMIT)
        .reject_trailing_bytes()
}

/// Encodes a structure. Fails only for structures over [`DECODE_LIMIT`].
pub(crate) fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    options()
        .serialize(value)
        .map_err(|e| Error::InvalidSetting {
            name: "encoded structure",
            value: what.to_string(),
            expected: format!("an encodable value under {DECODE_LIMIT} bytes ({e})"),
        })
}

/// Decodes a structure from `bytes`, which start at `offset` in `file`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], file: &str, offset: u64) -> Result<T> {
    options()
        .deserialize(bytes)
        .map_err(|e| Error::corrupt(file, offset, format!("cannot decode: {e}")))
}

/// zstd level of compressed listings (format 2 trailers and index files).
const LISTING_ZSTD_LEVEL: i32 = 3;

/// Encodes a structure as one zstd frame of its encoding (format 2 pack trailers and index
/// files): their records are fixed width, and all but the ids compress well.
pub(crate) fn encode_compressed<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    let encoded = encode(value, what)?;
    let mut out = Vec::new();
    crate::blob::compress_into(LISTING_ZSTD_LEVEL, &encoded, &mut out)?;
    Ok(out)
}

/// Decodes a structure written by [`encode_compressed`] from `bytes`, which start at `offset`
/// in `file`; an encoding over [`DECODE_LIMIT`] is damage.
pub(crate) fn decode_compressed<T: DeserializeOwned>(
    bytes: &[u8],
    file: &str,
    offset: u64,
) -> Result<T> {
    let damage = |reason: String| Error::corrupt(file, offset, reason);
    let size = crate::blob::single_frame_size(bytes, DECODE_LIMIT)
        .map_err(|reason| damage(format!("listing: {reason}")))?;
    let encoded = crate::blob::decompress(bytes, size).map_err(|e| damage(format!("zstd: {e}")))?;
    if encoded.len() != size {
        return Err(damage(format!(
            "listing is {} bytes, its frame says {size}",
            encoded.len()
        )));
    }
    decode(&encoded, file, offset)
}

/// Appends the magic and version that start every file.
pub(crate) fn write_header(out: &mut Vec<u8>, magic: &[u8; 8], version: u16) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
}

/// Checks the magic and version at the start of `bytes` and returns the version.
///
/// A version above `supported` is [`Error::UnsupportedVersion`]; a wrong magic or a short
/// file is [`Error::Corrupt`].
pub(crate) fn read_header(
    bytes: &[u8],
    magic: &[u8; 8],
    supported: u16,
    file: &str,
) -> Result<u16> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::corrupt(
            file,
            bytes.len() as u64,
            format!("file is {} bytes, shorter than its header", bytes.len()),
        ));
    }
    if &bytes[..8] != magic {
        return Err(Error::corrupt(
            file,
            0,
            format!(
                "wrong magic number (expected {:?})",
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version == 0 {
        return Err(Error::corrupt(file, 8, "version 0 is not a valid version"));
    }
    if version > supported {
        return Err(Error::UnsupportedVersion {
            file: file.to_string(),
            found: version,
            supported,
        });
    }
    Ok(version)
}

/// Frames a plaintext file: header, `u32` body length, body, BLAKE3 of everything before.
pub(crate) fn frame_checked(magic: &[u8; 8], version: u16, body: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(body.len()).map_err(|_| Error::InvalidSetting {
        name: "file body",
        value: body.len().to_string(),
        expected: "at most 4 GiB".to_string(),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + body.len() + CHECKSUM_LEN);
    write_header(&mut out, magic, version);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// Reads a file written by [`frame_checked`]: returns its version and body after checking
/// header, length and checksum.
pub(crate) fn unframe_checked<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    supported: u16,
    file: &str,
) -> Result<(u16, &'a [u8])> {
    let version = read_header(bytes, magic, supported, file)?;
    let len_end = HEADER_LEN + 4;
    if bytes.len() < len_end + CHECKSUM_LEN {
        return Err(Error::corrupt(
            file,
            bytes.len() as u64,
            "file is truncated before its body",
        ));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[HEADER_LEN..len_end]);
    let body_len = u32::from_le_bytes(len) as usize;
    let expected_size = len_end + body_len + CHECKSUM_LEN;
    if bytes.len() != expected_size {
        return Err(Error::corrupt(
            file,
            HEADER_LEN as u64,
            format!(
                "body length says the file is {expected_size} bytes, but it is {}",
                bytes.len()
            ),
        ));
    }
    let (content, sum) = bytes.split_at(len_end + body_len);
    if blake3::hash(content).as_bytes() != sum {
        return Err(Error::corrupt(
            file,
            content.len() as u64,
            "checksum mismatch: the file was altered or damaged",
        ));
    }
    Ok((version, &content[len_end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_frame_round_trips_and_detects_every_flipped_byte() {
        let framed = frame_checked(b"RSPLTEST", 1, b"hello body").expect("frame");
        let (version, body) = unframe_checked(&framed, b"RSPLTEST", 1, "test").expect("unframe");
        assert_eq!((version, body), (1, &b"hello body"[..]));
        for i in 0..framed.len() {
            let mut damaged = framed.clone();
            damaged[i] ^= 0x01;
            assert!(
                unframe_checked(&damaged, b"RSPLTEST", 1, "test").is_err(),
                "flip at {i} undetected"
            );
        }
    }

    #[test]
    fn a_compressed_structure_round_trips_and_must_be_exactly_one_frame() {
        let value: Vec<(u64, [u8; 4])> = (0..500).map(|n| (n, [7, 7, 7, 7])).collect();
        let bytes = encode_compressed(&value, "test").expect("encode");
        assert!(
            bytes.len() < 500 * 12 / 2,
            "compressed: {} bytes",
            bytes.len()
        );
        let back: Vec<(u64, [u8; 4])> = decode_compressed(&bytes, "f", 3).expect("decode");
        assert_eq!(back, value);
        // A second frame, a byte after the frame, a cut frame, bytes that are no frame.
        let twice = [bytes.clone(), bytes.clone()].concat();
        let longer = [bytes.clone(), vec![0]].concat();
        let cut = bytes[..bytes.len() - 1].to_vec();
        for damaged in [twice, longer, cut, encode(&value, "test").expect("plain")] {
            match decode_compressed::<Vec<(u64, [u8; 4])>>(&damaged, "f", 3) {
                Err(Error::Corrupt { file, offset, .. }) => {
                    assert_eq!((file.as_str(), offset), ("f", 3))
                }
                other => panic!("expected damage, got {other:?}"),
            }
        }
    }

    #[test]
    fn newer_version_is_refused_with_its_number() {
        let framed = frame_checked(b"RSPLTEST", 7, b"x").expect("frame");
        match unframe_checked(&framed, b"RSPLTEST", 1, "test") {
            Err(Error::UnsupportedVersion {
                found: 7,
                supported: 1,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
