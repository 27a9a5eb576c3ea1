//! Lock files under `locks/`: who holds the repository, how, and since when.
//!
//! ```text
//! header  "RSPLLOCK" | version u16
//! body    seal(bincode(LockRecord))   (associated data: "RSPLLOCK lock file" | version u16)
//! ```
//! A lock file is named by 64 random hex digits drawn by its owner, who rewrites it (same name,
//! newer `refreshed` time) while the lock is held and deletes it when done. This module only
//! encodes and decodes; the protocol (who may hold what at once, when a lock is stale) belongs
//! to the layer that takes locks.

use serde::{Deserialize, Serialize};

use crate::backend::FileKind;
use crate::codec;
use crate::error::{Error, Result};
use crate::seal::Sealer;

const LOCK_MAGIC: &[u8; 8] = b"RSPLLOCK";
const LOCK_VERSION: u16 = 1;

/// What one lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// An exclusive lock (prune, repair) excludes every other lock; a shared one (backup,
    /// restore, check) excludes only exclusive ones.
    pub exclusive: bool,
    /// Host the owner runs on.
    pub hostname: String,
    /// User the owner runs as.
    pub username: String,
    /// Process id of the owner on its host.
    pub pid: u32,
    /// What the owner is doing (`backup`, `prune`, ...), for messages.
    pub operation: String,
    /// When the lock was taken, nanoseconds since the Unix epoch (owner's clock).
    pub created_ns: i64,
    /// When the owner last rewrote the lock, nanoseconds since the Unix epoch (owner's clock).
    pub refreshed_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct LockRecord {
    exclusive: bool,
    hostname: String,
    username: String,
    pid: u32,
    operation: String,
    created_ns: i64,
    refreshed_ns: i64,
}

fn body_ad(version: u16) -> [u8; 20] {
    let mut ad = [0u8; 20];
    ad[..18].copy_from_slice(b"RSPLLOCK lock file");
    ad[18..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// Encodes a lock file.
pub(crate) fn encode(sealer: &Sealer, info: &LockInfo) -> Result<Vec<u8>> {
    let record = LockRecord {
        exclusive: info.exclusive,
        hostname: info.hostname.clone(),
        username: info.username.clone(),
        pid: info.pid,
        operation: info.operation.clone(),
        created_ns: info.created_ns,
        refreshed_ns: info.refreshed_ns,
    };
    let body = codec::encode(&record, "lock file")?;
    let mut bytes = Vec::with_capacity(codec::HEADER_LEN + body.len() + sealer.overhead());
    codec::write_header(&mut bytes, LOCK_MAGIC, LOCK_VERSION);
    sealer.seal_into(&mut bytes, &body, &body_ad(LOCK_VERSION))?;
    Ok(bytes)
}

/// Decodes lock file `name`; damage is an error naming `locks/NAME`.
pub(crate) fn decode(sealer: &Sealer, name: &str, bytes: &[u8]) -> Result<LockInfo> {
    let file = FileKind::Lock.display_path(name);
    let version = codec::read_header(bytes, LOCK_MAGIC, LOCK_VERSION, &file)?;
    let offset = codec::HEADER_LEN as u64;
    let body = sealer.open(
        &bytes[codec::HEADER_LEN..],
        &body_ad(version),
        &file,
        offset,
    )?;
    let r: LockRecord = codec::decode(&body, &file, offset)?;
    Ok(LockInfo {
        exclusive: r.exclusive,
        hostname: r.hostname,
        username: r.username,
        pid: r.pid,
        operation: r.operation,
        created_ns: r.created_ns,
        refreshed_ns: r.refreshed_ns,
    })
}

/// A fresh random lock file name: 64 hex digits.
pub(crate) fn random_name() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Crypto {
        context: "drawing a lock file name".to_string(),
        reason: e.to_string(),
    })?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> LockInfo {
        LockInfo {
            exclusive: true,
            hostname: "host".into(),
            username: "user".into(),
            pid: 42,
            operation: "prune".into(),
            created_ns: 1,
            refreshed_ns: 2,
        }
    }

    #[test]
    fn lock_file_round_trips_in_both_modes() -> Result<()> {
        for sealer in [Sealer::Plain, Sealer::encrypted(&[7u8; 32])] {
            let bytes = encode(&sealer, &info())?;
            assert_eq!(decode(&sealer, "n", &bytes)?, info());
        }
        Ok(())
    }

    /// The unencrypted form is deterministic: pin it byte for byte (docs/format.md 10.3).
    #[test]
    fn unencrypted_lock_file_bytes_are_pinned() -> Result<()> {
        let bytes = encode(&Sealer::Plain, &info())?;
        let mut expected = b"RSPLLOCK\x01\x00".to_vec();
        expected.push(1); // exclusive
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(b"host");
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(b"user");
        expected.extend_from_slice(&42u32.to_le_bytes());
        expected.extend_from_slice(&5u64.to_le_bytes());
        expected.extend_from_slice(b"prune");
        expected.extend_from_slice(&1i64.to_le_bytes());
        expected.extend_from_slice(&2i64.to_le_bytes());
        let body_len = expected.len() - 10;
        assert_eq!(&bytes[..expected.len()], &expected[..]);
        // The checksum: the first 16 bytes of BLAKE3(len(AD) u64 LE || AD || body).
        let mut hasher = blake3::Hasher::new();
        hasher.update(&20u64.to_le_bytes());
        hasher.update(b"RSPLLOCK lock file\x01\x00");
        hasher.update(&expected[10..]);
        assert_eq!(
            &bytes[expected.len()..],
            &hasher.finalize().as_bytes()[..16]
        );
        assert_eq!(bytes.len(), 10 + body_len + 16);
        Ok(())
    }

    #[test]
    fn a_flipped_byte_is_damage_naming_the_lock() -> Result<()> {
        let sealer = Sealer::encrypted(&[7u8; 32]);
        let mut bytes = encode(&sealer, &info())?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        match decode(&sealer, "abc", &bytes) {
            Err(Error::Corrupt { file, .. }) => assert_eq!(file, "locks/abc"),
            other => panic!("expected damage, got {other:?}"),
        }
        Ok(())
    }
}
