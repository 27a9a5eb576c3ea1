//! The repository `config` file: what every reader must know before reading anything else.
//!
//! The config is written once by `init` and never changed. It is plaintext (it holds no
//! secret: the chunker seed of an encrypted repository is derived from the master key, not
//! stored) and ends with a BLAKE3 checksum. Its header version is the repository format's
//! major version: a reader refuses a newer one.

use serde::{Deserialize, Serialize};

use chunker::ChunkerParams;

use crate::codec;
use crate::error::{Error, Result};

const CONFIG_MAGIC: &[u8; 8] = b"RSPLCONF";

/// The repository format major version this build writes by default and the highest it
/// reads. Format 2 gathers tree blobs into groups and compresses trailers and index files;
/// format 1 repositories are read and written as format 1.
pub const FORMAT_MAJOR: u16 = 2;
/// The repository format minor version this build writes; minors only add optional data.
pub const FORMAT_MINOR: u16 = 0;

/// Name and version of the chunking algorithm; part of the format, since cut points depend on it.
pub const CHUNKER_ALGORITHM: &str = "fastcdc-v2020/5.0.0";

/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How content is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerConfig {
    /// Algorithm and implementation version, [`CHUNKER_ALGORITHM`].
    pub algorithm: String,
    /// Minimum chunk size in bytes.
    pub min_size: u32,
    /// Average (target) chunk size in bytes.
    pub avg_size: u32,
    /// Maximum chunk size in bytes.
    pub max_size: u32,
    /// FastCDC normalization level, 0 to 3.
    pub normalization: u8,
    /// Whether the gear seed is derived from the master key (encrypted repositories).
    pub seed_from_key: bool,
    /// The seed when it is not derived from the key.
    pub seed: u64,
}

/// How blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionConfig {
    /// zstd level; 0 disables compression.
    pub zstd_level: i32,
}

/// How the repository is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionConfig {
    /// Not encrypted: plain BLAKE3 ids, checksummed seals.
    None,
    /// Argon2id-wrapped master key, XChaCha20-Poly1305 seals, keyed BLAKE3 ids.
    XChaCha20Poly1305Argon2id,
}

/// The contents of the `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Format minor version that wrote the repository.
    pub format_minor: u16,
    /// Random id of the repository.
    pub repository_id: [u8; 32],
    /// Chunking parameters.
    pub chunker: ChunkerConfig,
    /// Compression.
    pub compression: CompressionConfig,
    /// Encryption.
    pub encryption: EncryptionConfig,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
}

impl RepoConfig {
    /// Whether blobs and metadata are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encryption != EncryptionConfig::None
    }

    /// The repository id in hex.
    pub fn repository_id_hex(&self) -> String {
        hex::encode(self.repository_id)
    }

    /// Chunker parameters with the given seed (0 or the key-derived seed).
    pub fn chunker_params(&self, seed: u64) -> Result<ChunkerParams> {
        Ok(ChunkerParams::new(
            self.chunker.min_size,
            self.chunker.avg_size,
            self.chunker.max_size,
            self.chunker.normalization,
            seed,
        )?)
    }

    /// Checks every setting; used before writing and after reading.
    pub fn validate(&self) -> Result<()> {
        if self.chunker.algorithm != CHUNKER_ALGORITHM {
            return Err(Error::InvalidSetting {
                name: "chunker.algorithm",
                value: self.chunker.algorithm.clone(),
                expected: format!("{CHUNKER_ALGORITHM:?}, the only algorithm this build knows"),
            });
        }
        self.chunker_params(self.chunker.seed)?;
        // An encrypted repository derives its seed from the key; a stored seed there (or a
        // derived one without a key) would mean the file was altered.
        if self.chunker.seed_from_key != self.is_encrypted()
            || (self.chunker.seed_from_key && self.chunker.seed != 0)
        {
            return Err(Error::InvalidSetting {
                name: "chunker.seed_from_key",
                value: format!(
                    "{} (seed {})",
                    self.chunker.seed_from_key, self.chunker.seed
                ),
                expected: "true with seed 0 exactly when the repository is encrypted".to_string(),
            });
        }
        if !(0..=22).contains(&self.compression.zstd_level) {
            return Err(Error::InvalidSetting {
                name: "compression.zstd_level",
                value: self.compression.zstd_level.to_string(),
                expected: "0 (off) to 22".to_string(),
            });
        }
        let min_pack = 1024 * 1024;
        let max_pack = 1024 * 1024 * 1024;
        if !(min_pack..=max_pack).contains(&self.pack_size) {
            return Err(Error::InvalidSetting {
                name: "pack_size",
                value: self.pack_size.to_string(),
                expected: format!("{min_pack} to {max_pack} bytes"),
            });
        }
        Ok(())
    }

    /// Encodes the config file of a repository of format `format_major`.
    pub(crate) fn to_bytes(&self, format_major: u16) -> Result<Vec<u8>> {
        if !(1..=FORMAT_MAJOR).contains(&format_major) {
            return Err(Error::InvalidSetting {
                name: "format version",
                value: format_major.to_string(),
                expected: format!("1 to {FORMAT_MAJOR}"),
            });
        }
        codec::frame_checked(CONFIG_MAGIC, format_major, &codec::encode(self, "config")?)
    }

    /// Decodes and validates a config file; returns the repository's format major version
    /// and the config. A newer major version is refused.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<(u16, Self)> {
        let (major, body) = codec::unframe_checked(bytes, CONFIG_MAGIC, FORMAT_MAJOR, "config")?;
        let config: RepoConfig = codec::decode(body, "config", (codec::HEADER_LEN + 4) as u64)?;
        config.validate()?;
        Ok((major, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_algorithm_names_the_pinned_chunker() {
        assert_eq!(
            CHUNKER_ALGORITHM,
            format!("{}/{}", chunker::ALGORITHM, chunker::FASTCDC_VERSION)
        );
    }
}
