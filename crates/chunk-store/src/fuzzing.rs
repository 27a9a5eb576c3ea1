//! Entry points for the fuzz targets under `fuzz/` (cargo-fuzz).
//!
//! Several decoders of the repository format are `pub(crate)`. The functions here are thin
//! wrappers that hand bytes to those decoders (and to the matching encoders, so that a fuzz
//! target can build valid files to compare against), so that fuzzing exercises the real code.
//! They add no logic of their own beyond naming a file by its content and picking a sealer.
//!
//! This module exists for fuzzing only: it is hidden from the documentation, nothing in the
//! workspace uses it, and it is **not a stable API**. It may change or disappear at any time.

use chunker::{ChunkId, IdHasher};

use crate::backend::{Backend, FileKind, MemoryBackend};
use crate::blob::{self, BlobKind, BlobLocation, Encoding};
use crate::codec;
use crate::config::{FORMAT_MAJOR, RepoConfig};
use crate::error::Result;
use crate::index_file::{self, IndexedPack};
use crate::keys::{self, KdfParams, KeyInfo, KeyOrigin, MasterKey, Unwrapped};
use crate::lock_file::LockInfo;
use crate::pack::{self, PackEntry};
use crate::seal::Sealer;

/// The data key of [`SealMode::Encrypted`]: fixed, so that a fuzz target can seal the
/// plaintexts it wants the decoders to read.
pub const FUZZ_DATA_KEY: [u8; 32] = [0x5a; 32];

/// The id key of [`SealMode::Encrypted`] (keyed BLAKE3 blob ids).
pub const FUZZ_ID_KEY: [u8; 32] = [0xa5; 32];

/// The two sealing modes of a repository (`config.encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    /// Unencrypted: a 16-byte BLAKE3 checksum; plain BLAKE3 blob ids.
    Plain,
    /// XChaCha20-Poly1305 under [`FUZZ_DATA_KEY`]; blob ids keyed with [`FUZZ_ID_KEY`].
    Encrypted,
}

impl SealMode {
    fn sealer(self) -> Sealer {
        match self {
            SealMode::Plain => Sealer::Plain,
            SealMode::Encrypted => Sealer::encrypted(&FUZZ_DATA_KEY),
        }
    }

    fn hasher(self) -> IdHasher {
        match self {
            SealMode::Plain => IdHasher::Plain,
            SealMode::Encrypted => IdHasher::Keyed(FUZZ_ID_KEY),
        }
    }
}

/// The name of a content-addressed file holding `bytes`: the hex BLAKE3 of the bytes.
pub fn content_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Seals `plaintext` with associated data `ad` (the crate's `Sealer::seal`).
pub fn seal(mode: SealMode, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
    mode.sealer().seal(plaintext, ad)
}

/// Opens a sealed byte string (the crate's `Sealer::open`).
pub fn open(mode: SealMode, sealed: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
    mode.sealer().open(sealed, ad, "fuzz input", 0)
}

/// The checksummed framing of config and key files: header, body length, body, BLAKE3.
pub fn frame_checked(magic: &[u8; 8], version: u16, body: &[u8]) -> Result<Vec<u8>> {
    codec::frame_checked(magic, version, body)
}

/// Decodes and validates a `config` file: its format major version and the config.
pub fn decode_config(bytes: &[u8]) -> Result<(u16, RepoConfig)> {
    RepoConfig::from_bytes(bytes)
}

/// Encodes a `config` file of a repository of format `format_major`.
pub fn encode_config(config: &RepoConfig, format_major: u16) -> Result<Vec<u8>> {
    config.to_bytes(format_major)
}

/// Reads the public part of a key file named by its content (what `key list` shows).
pub fn key_file_info(bytes: &[u8]) -> Result<KeyInfo> {
    keys::info(&content_name(bytes), bytes)
}

/// What a key file wraps: the master key, the repository id and the config's BLAKE3.
pub type Wrapped = (MasterKey, [u8; 32], [u8; 32]);

/// Tries `password` on a key file named by its content. `Ok(None)` is a wrong password;
/// `Ok(Some((master, repository_id, config_hash)))` what the file wraps.
///
/// This runs Argon2id with the parameters stored in the file: a caller that feeds untrusted
/// bytes should look at [`key_file_info`]'s `kdf` first.
pub fn unwrap_key_file(bytes: &[u8], password: &str) -> Result<Option<Wrapped>> {
    Ok(
        match keys::unwrap_key(&content_name(bytes), bytes, password)? {
            Unwrapped::Opened(key) => Some((key.master, key.repository_id, key.config_hash)),
            Unwrapped::WrongPassword => None,
        },
    )
}

/// Writes a key file wrapping `master` under `password`; returns its name and bytes.
pub fn wrap_key_file(
    master: &MasterKey,
    repository_id: [u8; 32],
    config_hash: [u8; 32],
    password: &str,
    kdf: KdfParams,
    origin: &KeyOrigin,
) -> Result<(String, Vec<u8>)> {
    let file = keys::wrap(master, repository_id, config_hash, password, kdf, origin)?;
    Ok((file.name, file.bytes))
}

/// Reads the trailer of a pack holding `bytes`, stored in a fresh [`MemoryBackend`] under the
/// name of its content.
pub fn read_pack_trailer(mode: SealMode, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let backend = MemoryBackend::new();
    let name = content_name(bytes);
    backend.write(FileKind::Pack, &name, bytes)?;
    pack::read_pack_trailer(&backend, &mode.sealer(), &name)
}

/// Decodes an index file named by its content.
pub fn decode_index_file(mode: SealMode, bytes: &[u8]) -> Result<Vec<IndexedPack>> {
    index_file::decode(&mode.sealer(), &content_name(bytes), bytes)
}

/// Encodes an index file of `version` (1 or 2) listing `packs`; returns its name and bytes.
pub fn encode_index_file(
    mode: SealMode,
    version: u16,
    packs: &[IndexedPack],
) -> Result<(String, Vec<u8>)> {
    index_file::encode(&mode.sealer(), version, packs)
}

/// Decodes lock file `name` (the crate's `lock_file::decode`).
pub fn decode_lock_file(mode: SealMode, name: &str, bytes: &[u8]) -> Result<LockInfo> {
    crate::lock_file::decode(&mode.sealer(), name, bytes)
}

/// Encodes a lock file (the crate's `lock_file::encode`).
pub fn encode_lock_file(mode: SealMode, info: &LockInfo) -> Result<Vec<u8>> {
    crate::lock_file::encode(&mode.sealer(), info)
}

/// The id of a blob of `data` in `mode`.
pub fn blob_id(mode: SealMode, data: &[u8]) -> ChunkId {
    mode.hasher().hash(data)
}

/// Encodes blob `id` of `data` as a store of format major [`FORMAT_MAJOR`] would (the crate's
/// `blob::encode_into`: zstd unless it does not shrink, then sealed); returns the encoding
/// used and the sealed bytes.
pub fn encode_blob(
    mode: SealMode,
    zstd_level: i32,
    id: &ChunkId,
    kind: BlobKind,
    data: &[u8],
) -> Result<(Encoding, Vec<u8>)> {
    let mut sealed = Vec::new();
    let encoding = blob::encode_into(
        &mode.sealer(),
        FORMAT_MAJOR,
        zstd_level,
        id,
        kind,
        data,
        &mut sealed,
    )?;
    Ok((encoding, sealed))
}

/// Opens, decompresses and verifies sealed blob `id` found at `location` (the crate's
/// `blob::decode`, for a repository of format major [`FORMAT_MAJOR`]).
pub fn decode_blob(
    mode: SealMode,
    id: &ChunkId,
    location: &BlobLocation,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    blob::decode(
        &mode.sealer(),
        FORMAT_MAJOR,
        &mode.hasher(),
        id,
        location,
        sealed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::PackBuilder;

    const MODES: [SealMode; 2] = [SealMode::Plain, SealMode::Encrypted];

    #[test]
    fn pack_trailer_and_index_file_wrappers_read_what_the_encoders_write() {
        for mode in MODES {
            let mut builder = PackBuilder::new(2, 64);
            let sealed = seal(mode, b"blob", b"ad").expect("seal");
            let id = ChunkId::from_bytes([3; 32]);
            builder
                .add(id, BlobKind::Data, Encoding::Raw, 4, &sealed)
                .expect("add");
            let finished = builder.finish(&mode.sealer()).expect("finish");
            let entries = read_pack_trailer(mode, &finished.bytes()).expect("trailer");
            assert_eq!(entries, finished.entries);

            let packs = vec![IndexedPack {
                pack: finished.id,
                size: finished.bytes().len() as u64,
                blobs: entries,
            }];
            let (name, bytes) = encode_index_file(mode, 2, &packs).expect("encode");
            assert_eq!(name, content_name(&bytes));
            assert_eq!(decode_index_file(mode, &bytes).expect("decode"), packs);
            assert!(decode_index_file(mode, &bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn blob_wrappers_read_what_encode_writes() {
        for mode in MODES {
            let data = vec![7u8; 1000];
            let id = blob_id(mode, &data);
            let (encoding, sealed) =
                encode_blob(mode, 3, &id, BlobKind::Tree, &data).expect("encode");
            assert_eq!(encoding, Encoding::Zstd);
            let location = BlobLocation {
                pack: ChunkId::from_bytes([0; 32]),
                offset: 10,
                length: sealed.len() as u32,
                raw_length: data.len() as u32,
                kind: BlobKind::Tree,
                encoding,
                member_offset: 0,
            };
            assert_eq!(
                decode_blob(mode, &id, &location, &sealed).expect("decode"),
                data
            );
            let data_kind = BlobLocation {
                kind: BlobKind::Data,
                ..location
            };
            assert!(decode_blob(mode, &id, &data_kind, &sealed).is_err());
        }
    }

    #[test]
    fn key_file_wrappers_read_what_wrap_writes() {
        let master = MasterKey::generate().expect("key");
        let origin = KeyOrigin {
            hostname: "host".into(),
            username: "user".into(),
            created_unix_seconds: 7,
        };
        let kdf = KdfParams::insecure_fast();
        let (name, bytes) =
            wrap_key_file(&master, [1; 32], [2; 32], "pw", kdf, &origin).expect("wrap");
        assert_eq!(name, content_name(&bytes));
        let info = key_file_info(&bytes).expect("info");
        assert_eq!((info.hostname.as_str(), info.kdf), ("host", kdf));
        let (opened, repository_id, config_hash) = unwrap_key_file(&bytes, "pw")
            .expect("unwrap")
            .expect("opens");
        assert_eq!(opened.id_key(), master.id_key());
        assert_eq!((repository_id, config_hash), ([1; 32], [2; 32]));
        assert!(unwrap_key_file(&bytes, "other").expect("unwrap").is_none());
    }
}
