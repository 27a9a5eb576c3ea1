//! Sealing: authenticated encryption of everything stored, or a checksum when unencrypted.
//!
//! Encrypted: `nonce (24 random bytes) || XChaCha20-Poly1305 ciphertext || tag (16)`, with
//! associated data that binds the sealed bytes to what they are (a blob's id and kind, a pack
//! trailer, an index file), so that no sealed piece can be moved to another place unnoticed.
//! Unencrypted: `plaintext || BLAKE3(len(ad) as u64 LE || ad || plaintext)[..16]`, which
//! detects damage (not tampering) the same way; the length prefix keeps two contexts of
//! different lengths from ever producing the same input.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

/// Length of the random nonce of an encrypted seal.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the authentication tag or checksum.
pub(crate) const TAG_LEN: usize = 16;

/// Seals and opens byte strings with one key (or none).
#[derive(Clone)]
pub(crate) enum Sealer {
    /// No encryption: a truncated BLAKE3 checksum detects damage.
    Plain,
    /// XChaCha20-Poly1305 under the repository's data key.
    Encrypted(Box<XChaCha20Poly1305>),
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sealer::Plain => "Sealer::Plain",
            Sealer::Encrypted(_) => "Sealer::Encrypted",
        })
    }
}

fn plain_tag(ad: &[u8], plaintext: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(ad.len() as u64).to_le_bytes());
    hasher.update(ad);
    hasher.update(plaintext);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
    tag
}

impl Sealer {
    /// A sealer that encrypts with `key`.
    pub(crate) fn encrypted(key: &[u8; 32]) -> Self {
        Sealer::Encrypted(Box::new(XChaCha20Poly1305::new(key.into())))
    }

    /// Bytes a seal adds to its plaintext.
    pub(crate) fn overhead(&self) -> usize {
        match self {
            Sealer::Plain => TAG_LEN,
            Sealer::Encrypted(_) => NONCE_LEN + TAG_LEN,
        }
    }

    /// Appends the sealed form of `plaintext` to `out`, without intermediate buffers.
    pub(crate) fn seal_into(&self, out: &mut Vec<u8>, plaintext: &[u8], ad: &[u8]) -> Result<()> {
        out.reserve(plaintext.len() + self.overhead());
        match self {
            Sealer::Plain => {
                out.extend_from_slice(plaintext);
                out.extend_from_slice(&plain_tag(ad, plaintext));
            }
            Sealer::Encrypted(cipher) => {
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut nonce).map_err(|e| Error::Crypto {
                    context: "drawing a nonce".to_string(),
                    reason: e.to_string(),
                })?;
                out.extend_from_slice(&nonce);
                let start = out.len();
                out.extend_from_slice(plaintext);
                let tag = cipher
                    .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut out[start..])
                    .map_err(|_| Error::Crypto {
                        context: "sealing".to_string(),
                        reason: "plaintext too long for XChaCha20-Poly1305".to_string(),
                    })?;
                out.extend_from_slice(&tag);
            }
        }
        Ok(())
    }

    /// The sealed form of `plaintext`.
    pub(crate) fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(&mut out, plaintext, ad)?;
        Ok(out)
    }

    /// Opens a sealed byte string found at `offset` in `file`; any damage or a wrong key is
    /// [`Error::Corrupt`].
    pub(crate) fn open(
        &self,
        sealed: &[u8],
        ad: &[u8],
        file: &str,
        offset: u64,
    ) -> Result<Vec<u8>> {
        if sealed.len() < self.overhead() {
            return Err(Error::corrupt(
                file,
                offset,
                format!(
                    "sealed data of {} bytes is shorter than its overhead",
                    sealed.len()
                ),
            ));
        }
        match self {
            Sealer::Plain => {
                let (plaintext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
                if plain_tag(ad, plaintext) != tag {
                    return Err(Error::corrupt(file, offset, "checksum mismatch"));
                }
                Ok(plaintext.to_vec())
            }
            Sealer::Encrypted(cipher) => {
                let (nonce, rest) = sealed.split_at(NONCE_LEN);
                let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
                let mut buffer = ciphertext.to_vec();
                cipher
                    .decrypt_in_place_detached(
                        XNonce::from_slice(nonce),
                        ad,
                        &mut buffer,
                        tag.into(),
                    )
                    .map_err(|_| {
                        Error::corrupt(
                            file,
                            offset,
                            "authentication failed: the data was altered or damaged",
                        )
                    })?;
                Ok(buffer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_round_trip_and_reject_damage_and_wrong_context() {
        for sealer in [Sealer::Plain, Sealer::encrypted(&[7u8; 32])] {
            let sealed = sealer.seal(b"some plaintext", b"ad-1").expect("seal");
            assert_eq!(sealed.len(), 14 + sealer.overhead());
            let opened = sealer.open(&sealed, b"ad-1", "f", 0).expect("open");
            assert_eq!(opened, b"some plaintext");
            assert!(sealer.open(&sealed, b"ad-2", "f", 0).is_err());
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x80;
                assert!(sealer.open(&bad, b"ad-1", "f", 0).is_err(), "flip at {i}");
            }
            assert!(sealer.open(&sealed[..5], b"ad-1", "f", 0).is_err());
        }
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = Sealer::encrypted(&[1u8; 32]).seal(b"x", b"").expect("seal");
        assert!(
            Sealer::encrypted(&[2u8; 32])
                .open(&sealed, b"", "f", 0)
                .is_err()
        );
    }
}
