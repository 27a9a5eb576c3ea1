//! Snapshot manifests: what a backup captured, written last under `snapshots/`.
//!
//! ```text
//! "RSPLSNAP" | version u16 LE | seal(bincode(SnapshotRecord), "RSPLSNAP manifest" | version)
//! ```
//! The file is named by the BLAKE3 of its bytes; that name is the snapshot id.

use serde::{Deserialize, Serialize};

use chunk_store::{ChunkStore, FileKind};
use chunker::ChunkId;

use crate::codec;
use crate::error::{Error, Result};

const SNAPSHOT_MAGIC: &[u8; 8] = b"RSPLSNAP";
pub(crate) const SNAPSHOT_VERSION: u16 = 1;

fn seal_context(version: u16) -> [u8; 19] {
    let mut ad = [0u8; 19];
    ad[..17].copy_from_slice(b"RSPLSNAP manifest");
    ad[17..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// Counts and sizes of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent whose metadata changed (read again).
    pub files_changed: u64,
    /// Files whose content was reused from the parent without reading.
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Other nodes (symlinks, devices, ...).
    pub others: u64,
    /// Total size of the files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from the sources.
    pub bytes_read: u64,
    /// Data blobs added to the repository.
    pub blobs_added: u64,
    /// Bytes added to packs (after compression and sealing).
    pub bytes_added: u64,
    /// Sources that could not be read (warnings).
    pub errors: u64,
    /// Files that changed while being read.
    pub files_changed_while_read: u64,
    /// Wall time of the backup, nanoseconds.
    pub duration_ns: u64,
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When the backup started, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The local time zone's offset from UTC at that time, in seconds.
    pub utc_offset_s: i32,
    /// Host name.
    pub hostname: String,
    /// User name.
    pub username: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Absolute source paths, as given.
    pub paths: Vec<String>,
    /// Root tree.
    pub tree: ChunkId,
    /// The snapshot this one was compared with.
    pub parent: Option<ChunkId>,
    /// Version of the program that wrote it.
    pub program_version: String,
    /// Counts and sizes.
    pub summary: Summary,
}

/// A manifest as encoded (the format's `SnapshotRecord`).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    time_ns: i64,
    utc_offset_s: i32,
    hostname: String,
    username: String,
    tags: Vec<String>,
    paths: Vec<String>,
    tree: [u8; 32],
    parent: Option<[u8; 32]>,
    program_version: String,
    summary: Summary,
}

impl Snapshot {
    /// Writes the manifest (sealed) under `snapshots/` and returns its id. Call only after
    /// everything it refers to has been flushed.
    pub fn save(&self, store: &ChunkStore) -> Result<ChunkId> {
        let plain = codec::encode(
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION,
            &self.to_record(),
            "a snapshot",
        )?;
        let sealed = store.seal(&plain[codec::HEADER_LEN..], &seal_context(SNAPSHOT_VERSION))?;
        let mut bytes = plain[..codec::HEADER_LEN].to_vec();
        bytes.extend_from_slice(&sealed);
        let id = ChunkId::from_bytes(*blake3::hash(&bytes).as_bytes());
        store
            .backend()
            .write(FileKind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    /// Reads and verifies snapshot `id`.
    pub fn load(store: &ChunkStore, id: &ChunkId) -> Result<Self> {
        let bytes = store.backend().read(FileKind::Snapshot, &id.to_hex())?;
        Self::from_bytes(store, id, &bytes)
    }

    /// Verifies and opens `bytes`, the content of the file of snapshot `id`.
    pub fn from_bytes(store: &ChunkStore, id: &ChunkId, bytes: &[u8]) -> Result<Self> {
        let object = format!("snapshots/{}", id.to_hex());
        if blake3::hash(bytes).as_bytes() != id.as_bytes() {
            return Err(Error::Corrupt {
                object,
                reason: "content does not match its name: the file was altered".to_string(),
            });
        }
        let (version, sealed) =
            codec::split_header(bytes, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &object)?;
        let body = store.open_sealed(sealed, &seal_context(version), &object)?;
        let record: SnapshotRecord = codec::decode(&body, &object)?;
        Ok(Self::from_record(record))
    }

    /// The manifest's record, as encoded.
    pub(crate) fn to_record(&self) -> SnapshotRecord {
        SnapshotRecord {
            time_ns: self.time_ns,
            utc_offset_s: self.utc_offset_s,
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            tree: *self.tree.as_bytes(),
            parent: self.parent.map(|p| *p.as_bytes()),
            program_version: self.program_version.clone(),
            summary: self.summary.clone(),
        }
    }

    /// The manifest a decoded record describes.
    pub(crate) fn from_record(r: SnapshotRecord) -> Self {
        Snapshot {
            time_ns: r.time_ns,
            utc_offset_s: r.utc_offset_s,
            hostname: r.hostname,
            username: r.username,
            tags: r.tags,
            paths: r.paths,
            tree: ChunkId::from_bytes(r.tree),
            parent: r.parent.map(ChunkId::from_bytes),
            program_version: r.program_version,
            summary: r.summary,
        }
    }

    /// Ids of every snapshot in the repository.
    pub fn list_ids(store: &ChunkStore) -> Result<Vec<ChunkId>> {
        store
            .backend()
            .list(FileKind::Snapshot)?
            .into_iter()
            .map(|name| Self::id_from_name(&name))
            .collect()
    }

    /// The id a snapshot file named `name` holds; a name that is not an id is
    /// [`Error::Corrupt`] naming the file.
    pub fn id_from_name(name: &str) -> Result<ChunkId> {
        name.parse().map_err(|_| Error::Corrupt {
            object: format!("snapshots/{name}"),
            reason: "the name is not a 64-digit hex id".to_string(),
        })
    }
}
