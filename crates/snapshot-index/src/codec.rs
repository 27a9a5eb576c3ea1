//! The one place where trees and snapshot manifests become bytes and back.
//!
//! Same conventions as the chunk store's codec: `bincode` 1.3.3 with fixed-width little-endian
//! integers, a size limit and no trailing bytes; every structure starts with an 8-byte magic
//! and a little-endian `u16` version.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Largest structure the decoder accepts.
const DECODE_LIMIT: u64 = 256 * 1024 * 1024;

/// Length of magic and version.
pub(crate) const HEADER_LEN: usize = 10;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(DECODE_LIMIT)
        .reject_trailing_bytes()
}

/// `magic || version || bincode(value)`.
pub(crate) fn encode<T: Serialize>(
    magic: &[u8; 8],
    version: u16,
    value: &T,
    object: &str,
) -> Result<Vec<u8>> {
    let body = options().serialize(value).map_err(|e| Error::Corrupt {
        object: object.to_string(),
        reason: format!("cannot encode: {e}"),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks magic and version; returns the version and the rest.
pub(crate) fn split_header<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    supported: u16,
    object: &str,
) -> Result<(u16, &'a [u8])> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(Error::Corrupt {
            object: object.to_string(),
            reason: format!("missing magic number {:?}", String::from_utf8_lossy(magic)),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version == 0 {
        return Err(Error::Corrupt {
            object: object.to_string(),
            reason: "version 0 is not valid".to_string(),
        });
    }
    if version > supported {
        return Err(Error::UnsupportedVersion {
            object: object.to_string(),
            found: version,
            supported,
        });
    }
    Ok((version, &bytes[HEADER_LEN..]))
}

/// Decodes a body.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], object: &str) -> Result<T> {
    options().deserialize(body).map_err(|e| Error::Corrupt {
        object: object.to_string(),
        reason: format!("cannot decode: {e}"),
    })
}
