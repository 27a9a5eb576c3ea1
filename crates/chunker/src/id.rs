//! Chunk ids: 32-byte content addresses, their hex form and prefix lookup.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, clip};

/// 32-byte content id of a chunk or blob (a BLAKE3 hash, see
/// [`IdHasher`](crate::IdHasher)).
///
/// Ordered and hashed by its bytes. Serde encodes it as the 32 raw bytes (in
/// bincode 1: exactly 32 bytes, no length prefix). [`Display`](fmt::Display)
/// and [`ChunkId::to_hex`] give 64 lowercase hex characters, which
/// [`FromStr`] parses back (either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Wraps raw id bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether the hex form of this id starts with `hex_prefix`, compared
    /// case-insensitively. An empty prefix matches every id; a prefix with a
    /// non-hex character, or longer than 64 characters, matches none.
    #[must_use]
    pub fn has_prefix(&self, hex_prefix: &str) -> bool {
        if hex_prefix.len() > 64 {
            return false;
        }
        hex_prefix.bytes().enumerate().all(|(i, c)| {
            let byte = self.0[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            hex_value(c) == Some(nibble)
        })
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ChunkId {
    /// 64 lowercase hex characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChunkId {
    /// `ChunkId(<64 hex characters>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl FromStr for ChunkId {
    type Err = Error;

    /// Parses exactly 64 hex characters (either case).
    ///
    /// # Errors
    /// [`Error::InvalidChunkId`], showing the input, for anything else.
    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidChunkId { input: clip(s) };
        if s.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl From<[u8; 32]> for ChunkId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for ChunkId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Resolves a hex prefix (case-insensitive) to the one id among `ids` that
/// starts with it. The same id listed several times counts once.
///
/// # Errors
/// - [`Error::EmptyPrefix`] if `prefix` is empty;
/// - [`Error::InvalidPrefix`] if it has a non-hex character or more than 64;
/// - [`Error::NoMatch`] if no id starts with it;
/// - [`Error::Ambiguous`] (with the number of distinct matches) if several do.
pub fn find_by_prefix<'a>(
    ids: impl IntoIterator<Item = &'a ChunkId>,
    prefix: &str,
) -> Result<ChunkId, Error> {
    if prefix.is_empty() {
        return Err(Error::EmptyPrefix);
    }
    if prefix.len() > 64 || !prefix.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidPrefix {
            prefix: clip(prefix),
        });
    }
    let mut matches: Vec<ChunkId> = ids
        .into_iter()
        .filter(|id| id.has_prefix(prefix))
        .copied()
        .collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.as_slice() {
        [] => Err(Error::NoMatch {
            prefix: prefix.to_owned(),
        }),
        [one] => Ok(*one),
        many => Err(Error::Ambiguous {
            prefix: prefix.to_owned(),
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(first: u8, second: u8) -> ChunkId {
        let mut b = [0x11u8; 32];
        b[0] = first;
        b[1] = second;
        ChunkId(b)
    }

    #[test]
    fn hex_round_trip() {
        let a = ChunkId::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
        let h = a.to_hex();
        assert_eq!(h.len(), 64);
        assert_eq!(h, a.to_string());
        assert_eq!(h, h.to_lowercase());
        assert_eq!(h.parse::<ChunkId>().unwrap(), a);
        assert_eq!(h.to_uppercase().parse::<ChunkId>().unwrap(), a);
        assert_eq!(format!("{a:?}"), format!("ChunkId({h})"));
        assert_eq!(a.as_bytes(), &a.0);
    }

    #[test]
    fn from_str_errors() {
        for bad in ["", "abc", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            let e = bad.parse::<ChunkId>().unwrap_err();
            assert!(matches!(e, Error::InvalidChunkId { .. }));
            let m = e.to_string();
            assert!(m.contains("exactly 64 hexadecimal"), "{m}");
            assert!(m.contains(&format!("{bad:?}")), "{m}");
        }
        // Multi-byte characters must not panic.
        assert!("é".repeat(32).parse::<ChunkId>().is_err());
        let long = "x"
            .repeat(10_000)
            .parse::<ChunkId>()
            .unwrap_err()
            .to_string();
        assert!(long.len() < 400);
    }

    #[test]
    fn has_prefix_is_case_insensitive() {
        let a = id(0xab, 0xcd);
        assert!(a.has_prefix(""));
        assert!(a.has_prefix("a"));
        assert!(a.has_prefix("AbC"));
        assert!(a.has_prefix(&a.to_hex()));
        assert!(!a.has_prefix("abce"));
        assert!(!a.has_prefix("zz"));
        assert!(!a.has_prefix(&"a".repeat(65)));
    }

    #[test]
    fn prefix_lookup() {
        let ids = [
            id(0xab, 0xcd),
            id(0xab, 0xce),
            id(0x12, 0x34),
            id(0x12, 0x34),
        ];
        assert_eq!(find_by_prefix(&ids, "abcd").unwrap(), ids[0]);
        assert_eq!(find_by_prefix(&ids, "ABCE").unwrap(), ids[1]);
        // Duplicates of one id are not ambiguous.
        assert_eq!(find_by_prefix(&ids, "1").unwrap(), ids[2]);
        match find_by_prefix(&ids, "abc") {
            Err(Error::Ambiguous { prefix, count }) => {
                assert_eq!(prefix, "abc");
                assert_eq!(count, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            find_by_prefix(&ids, "ff"),
            Err(Error::NoMatch { prefix }) if prefix == "ff"
        ));
        assert!(matches!(find_by_prefix(&ids, ""), Err(Error::EmptyPrefix)));
        assert!(matches!(
            find_by_prefix(&ids, "xyz"),
            Err(Error::InvalidPrefix { .. })
        ));
        assert!(matches!(
            find_by_prefix(&ids, &"a".repeat(65)),
            Err(Error::InvalidPrefix { .. })
        ));
        assert!(matches!(
            find_by_prefix(std::iter::empty(), "a"),
            Err(Error::NoMatch { .. })
        ));
        let m = find_by_prefix(&ids, "abc").unwrap_err().to_string();
        assert!(m.contains("2 ids") && m.contains("more characters"), "{m}");
    }
}
