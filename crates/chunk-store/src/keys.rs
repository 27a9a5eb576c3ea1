//! The master key and the key files that wrap it.
//!
//! A repository has one random 32-byte master key. Each file under `keys/` wraps it under a
//! key derived from one password with Argon2id, so several passwords open one repository and a
//! password change rewrites one small file and re-encrypts nothing. The key file stores the
//! Argon2id parameters and salt next to the wrapped key; a BLAKE3 checksum over the file tells
//! damage (an error naming the file) apart from a wrong password.
//!
//! The master key is never used directly: [`MasterKey`] derives sub-keys with BLAKE3's
//! `derive_key` for sealing, for chunk ids, and for the chunker seed.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec;
use crate::error::{Error, Result};
use crate::seal::Sealer;

const KEY_MAGIC: &[u8; 8] = b"RSPLKEY\0";
const KEY_VERSION: u16 = 1;
/// Associated data that binds a wrapped master key to the key-file format.
const WRAP_AD: &[u8] = b"RSPLKEY\0 v1 wrapped master key";

const CONTEXT_DATA_KEY: &str = "respaldo 2026-11-23 blob and metadata sealing key";
const CONTEXT_ID_KEY: &str = "respaldo 2026-11-23 chunk id key";
const CONTEXT_CHUNKER_SEED: &str = "respaldo 2026-11-23 chunker seed";

/// The repository's master key. Zeroed when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Crypto {
            context: "generating the master key".to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self(key))
    }

    /// The key used to seal blobs, pack trailers, index files and manifests.
    pub(crate) fn data_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(CONTEXT_DATA_KEY, &self.0))
    }

    /// The key of the keyed BLAKE3 chunk ids.
    pub fn id_key(&self) -> [u8; 32] {
        blake3::derive_key(CONTEXT_ID_KEY, &self.0)
    }

    /// The seed of the chunker's gear table, so that cut points leak nothing about content.
    pub fn chunker_seed(&self) -> u64 {
        let derived = blake3::derive_key(CONTEXT_CHUNKER_SEED, &self.0);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&derived[..8]);
        u64::from_le_bytes(seed)
    }
}

/// Cost parameters of Argon2id, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: a fraction of a second on a current machine.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Highest Argon2id costs a key file may ask for (format 1.0, `docs/format.md` section 5):
/// 4 GiB of memory, 64 passes, 64 lanes. A key file asking for more is damage, so that whoever
/// can write to `keys/` cannot make every open of the repository exhaust memory or time.
pub const MAX_KDF: KdfParams = KdfParams {
    memory_kib: 4 * 1024 * 1024,
    iterations: 64,
    parallelism: 64,
};

impl KdfParams {
    /// Whether every cost is within [`MAX_KDF`].
    pub fn within_limits(&self) -> bool {
        self.memory_kib <= MAX_KDF.memory_kib
            && self.iterations <= MAX_KDF.iterations
            && self.parallelism <= MAX_KDF.parallelism
    }

    /// The cheapest parameters Argon2 accepts: for tests only, never for real passwords.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn derive(&self, password: &[u8], salt: &[u8; 32], file: &str) -> Result<Zeroizing<[u8; 32]>> {
        if !self.within_limits() {
            return Err(Error::InvalidSetting {
                name: "Argon2id cost",
                value: format!(
                    "{} KiB, {} passes, {} lanes",
                    self.memory_kib, self.iterations, self.parallelism
                ),
                expected: format!(
                    "at most {} KiB, {} passes and {} lanes",
                    MAX_KDF.memory_kib, MAX_KDF.iterations, MAX_KDF.parallelism
                ),
            });
        }
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Crypto {
                    context: format!("Argon2id parameters of {file}"),
                    reason: e.to_string(),
                })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, out.as_mut())
            .map_err(|e| Error::Crypto {
                context: format!("deriving the key of {file}"),
                reason: e.to_string(),
            })?;
        Ok(out)
    }
}

/// The body of a key file, as encoded by the codec.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyFileBody {
    /// 1 = Argon2id version 0x13.
    kdf_algorithm: u8,
    kdf: KdfParams,
    salt: [u8; 32],
    created_unix_seconds: i64,
    hostname: String,
    username: String,
    /// Sealed [`WrappedKey`].
    wrapped: Vec<u8>,
}

/// What a key file wraps: the master key, and the repository and config it belongs to. The
/// config's hash authenticates the (plaintext) config: whoever alters it cannot make a key
/// vouch for the altered version.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct WrappedKey {
    master: [u8; 32],
    repository_id: [u8; 32],
    config_hash: [u8; 32],
}

/// Who creates a key file and when; recorded in the key file, public, shown by `key list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOrigin {
    /// Host that creates the key.
    pub hostname: String,
    /// User that creates the key.
    pub username: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_seconds: i64,
}

/// Who created a key file and when; shown by `key list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Name of the key file under `keys/`.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_seconds: i64,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
    /// Its Argon2id parameters.
    pub kdf: KdfParams,
}

/// A key file's bytes and name (the BLAKE3 hex of its content).
pub(crate) struct KeyFile {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
}

/// Wraps `master` for `repository_id` under `password`.
pub(crate) fn wrap(
    master: &MasterKey,
    repository_id: [u8; 32],
    config_hash: [u8; 32],
    password: &str,
    kdf: KdfParams,
    origin: &KeyOrigin,
) -> Result<KeyFile> {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| Error::Crypto {
        context: "drawing a salt".to_string(),
        reason: e.to_string(),
    })?;
    let wrapping = kdf.derive(password.as_bytes(), &salt, "a new key file")?;
    let payload = Zeroizing::new(codec::encode(
        &WrappedKey {
            master: master.0,
            repository_id,
            config_hash,
        },
        "wrapped key",
    )?);
    let wrapped = Sealer::encrypted(&wrapping).seal(&payload, WRAP_AD)?;
    let body = KeyFileBody {
        kdf_algorithm: 1,
        kdf,
        salt,
        created_unix_seconds: origin.created_unix_seconds,
        hostname: origin.hostname.clone(),
        username: origin.username.clone(),
        wrapped,
    };
    let bytes = codec::frame_checked(KEY_MAGIC, KEY_VERSION, &codec::encode(&body, "key file")?)?;
    Ok(KeyFile {
        name: blake3::hash(&bytes).to_hex().to_string(),
        bytes,
    })
}

fn decode_body(bytes: &[u8], file: &str) -> Result<KeyFileBody> {
    if !file.ends_with(blake3::hash(bytes).to_hex().as_str()) {
        return Err(Error::corrupt(
            file,
            0,
            "content does not match its name (the BLAKE3 of the file): the file was altered",
        ));
    }
    let (_, body) = codec::unframe_checked(bytes, KEY_MAGIC, KEY_VERSION, file)?;
    let body: KeyFileBody = codec::decode(body, file, (codec::HEADER_LEN + 4) as u64)?;
    if !body.kdf.within_limits() {
        return Err(Error::corrupt(
            file,
            15,
            format!(
                "its Argon2id cost ({} KiB, {} passes, {} lanes) exceeds what a key file may ask \
                 for ({} KiB, {} passes, {} lanes): it was altered",
                body.kdf.memory_kib,
                body.kdf.iterations,
                body.kdf.parallelism,
                MAX_KDF.memory_kib,
                MAX_KDF.iterations,
                MAX_KDF.parallelism
            ),
        ));
    }
    if body.kdf_algorithm != 1 {
        return Err(Error::corrupt(
            file,
            codec::HEADER_LEN as u64 + 4,
            format!("unknown key derivation algorithm {}", body.kdf_algorithm),
        ));
    }
    Ok(body)
}

/// Reads the public part of a key file.
pub(crate) fn info(name: &str, bytes: &[u8]) -> Result<KeyInfo> {
    let body = decode_body(bytes, &format!("keys/{name}"))?;
    Ok(KeyInfo {
        name: name.to_string(),
        created_unix_seconds: body.created_unix_seconds,
        hostname: body.hostname,
        username: body.username,
        kdf: body.kdf,
    })
}

/// A master key and what its key file says it belongs to.
pub(crate) struct UnwrappedKey {
    pub(crate) master: MasterKey,
    pub(crate) repository_id: [u8; 32],
    pub(crate) config_hash: [u8; 32],
}

/// The outcome of trying a password on one key file.
pub(crate) enum Unwrapped {
    /// The password opened it.
    Opened(UnwrappedKey),
    /// The file is intact but the password does not open it.
    WrongPassword,
}

/// Tries `password` on a key file. Damage is an error naming the file; a wrong password is
/// [`Unwrapped::WrongPassword`].
pub(crate) fn unwrap_key(name: &str, bytes: &[u8], password: &str) -> Result<Unwrapped> {
    let file = format!("keys/{name}");
    let body = decode_body(bytes, &file)?;
    let wrapping = body.kdf.derive(password.as_bytes(), &body.salt, &file)?;
    // The checksum already proved the file intact, so a failed open means a wrong password.
    let Ok(payload) = Sealer::encrypted(&wrapping).open(&body.wrapped, WRAP_AD, &file, 0) else {
        return Ok(Unwrapped::WrongPassword);
    };
    let payload = Zeroizing::new(payload);
    let wrapped: WrappedKey = codec::decode(&payload, &file, 0)?;
    Ok(Unwrapped::Opened(UnwrappedKey {
        master: MasterKey(wrapped.master),
        repository_id: wrapped.repository_id,
        config_hash: wrapped.config_hash,
    }))
}

#[cfg(test)]
mod kdf_limit_tests {
    use super::*;

    /// A key file asking for an Argon2id cost beyond `MAX_KDF`, intact otherwise.
    fn key_file_asking_for(kdf: KdfParams) -> Result<(String, Vec<u8>)> {
        let body = KeyFileBody {
            kdf_algorithm: 1,
            kdf,
            salt: [1; 32],
            created_unix_seconds: 0,
            hostname: String::new(),
            username: String::new(),
            wrapped: vec![0; 136],
        };
        let bytes =
            codec::frame_checked(KEY_MAGIC, KEY_VERSION, &codec::encode(&body, "key file")?)?;
        Ok((blake3::hash(&bytes).to_hex().to_string(), bytes))
    }

    /// Regression: a key file could make every open allocate terabytes in Argon2id.
    #[test]
    fn a_key_file_asking_for_an_absurd_argon2_cost_is_damage_and_never_derived() -> Result<()> {
        let absurd = KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        };
        let (name, bytes) = key_file_asking_for(absurd)?;
        assert!(matches!(info(&name, &bytes), Err(Error::Corrupt { .. })));
        assert!(matches!(
            unwrap_key(&name, &bytes, "password"),
            Err(Error::Corrupt { .. })
        ));
        let (name, bytes) = key_file_asking_for(MAX_KDF)?;
        assert!(info(&name, &bytes).is_ok(), "the limit itself is allowed");
        Ok(())
    }

    #[test]
    fn new_keys_beyond_the_limit_are_refused() {
        let too_many_passes = KdfParams {
            iterations: MAX_KDF.iterations + 1,
            ..KdfParams::insecure_fast()
        };
        assert!(matches!(
            too_many_passes.derive(b"p", &[0; 32], "test"),
            Err(Error::InvalidSetting { .. })
        ));
    }
}
