//! How chunk ids are computed from chunk contents.

use std::fmt;

use crate::id::ChunkId;

/// How chunk ids are computed: plain BLAKE3, or BLAKE3 keyed with a secret
/// 32-byte key (for encrypted repositories, so that ids reveal nothing about
/// contents to someone without the key).
///
/// The same hasher and data always give the same id; ids from different
/// variants or keys are unrelated. The [`Debug`](fmt::Debug) output never
/// shows the key.
#[derive(Clone)]
pub enum IdHasher {
    /// `blake3::hash(data)`.
    Plain,
    /// `blake3::keyed_hash(key, data)`.
    Keyed([u8; 32]),
}

impl IdHasher {
    /// The id of `data`. Never fails; about 4 GiB/s per core. For many
    /// chunks, hash them in parallel (one chunk per task) rather than
    /// splitting one chunk.
    #[must_use]
    pub fn hash(&self, data: &[u8]) -> ChunkId {
        let hash = match self {
            Self::Plain => blake3::hash(data),
            Self::Keyed(key) => blake3::keyed_hash(key, data),
        };
        ChunkId(*hash.as_bytes())
    }
}

impl fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain => f.write_str("IdHasher::Plain"),
            Self::Keyed(_) => f.write_str("IdHasher::Keyed(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_blake3() {
        for data in [&b""[..], b"hello", &[7u8; 100_000]] {
            assert_eq!(IdHasher::Plain.hash(data).0, *blake3::hash(data).as_bytes());
        }
    }

    #[test]
    fn keyed_is_blake3_keyed() {
        let key = [9u8; 32];
        let data = b"some chunk";
        assert_eq!(
            IdHasher::Keyed(key).hash(data).0,
            *blake3::keyed_hash(&key, data).as_bytes()
        );
        assert_ne!(IdHasher::Keyed(key).hash(data), IdHasher::Plain.hash(data));
        assert_ne!(
            IdHasher::Keyed(key).hash(data),
            IdHasher::Keyed([8u8; 32]).hash(data)
        );
    }

    #[test]
    fn debug_hides_key() {
        let s = format!("{:?}", IdHasher::Keyed([0xab; 32]));
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab, "),
            "{s}"
        );
        assert!(s.contains("redacted"));
        assert_eq!(format!("{:?}", IdHasher::Plain), "IdHasher::Plain");
    }
}
