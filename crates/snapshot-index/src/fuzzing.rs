//! Entry points for the fuzz targets under `fuzz/` (cargo-fuzz).
//!
//! Snapshot manifests are decoded only inside [`Snapshot::load`], which reads the file from a
//! store. The wrapper here puts the bytes to decode where `load` reads them, so that fuzzing
//! exercises the real code. Trees need no wrapper: [`crate::Tree::from_bytes`] is public.
//!
//! This module exists for fuzzing only: it is hidden from the documentation, nothing in the
//! workspace uses it, and it is **not a stable API**. It may change or disappear at any time.

use chunk_store::{ChunkStore, FileKind};
use chunker::ChunkId;

use crate::error::Result;
use crate::snapshot::Snapshot;

/// Decodes a snapshot manifest holding `bytes` with [`Snapshot::load`]: the bytes are written
/// to `store`'s backend under `snapshots/` with the name of their content, loaded, and removed
/// again.
pub fn decode_snapshot(store: &ChunkStore, bytes: &[u8]) -> Result<Snapshot> {
    let id = ChunkId::from_bytes(*blake3::hash(bytes).as_bytes());
    let name = id.to_hex();
    store.backend().write(FileKind::Snapshot, &name, bytes)?;
    let loaded = Snapshot::load(store, &id);
    store.backend().delete(FileKind::Snapshot, &name)?;
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Summary;
    use crate::test_store::memory_store;

    #[test]
    fn decode_snapshot_reads_what_save_writes_and_leaves_nothing_behind() {
        for password in [None, Some("pw")] {
            let (_cache, store) = memory_store(password);
            let snapshot = Snapshot {
                time_ns: 1,
                utc_offset_s: 3600,
                hostname: "h".into(),
                username: "u".into(),
                tags: vec!["t".into()],
                paths: vec!["/p".into()],
                tree: ChunkId::from_bytes([4; 32]),
                parent: None,
                program_version: "0".into(),
                summary: Summary::default(),
            };
            let id = snapshot.save(&store).expect("save");
            let bytes = store
                .backend()
                .read(FileKind::Snapshot, &id.to_hex())
                .expect("read");
            store
                .backend()
                .delete(FileKind::Snapshot, &id.to_hex())
                .expect("delete");
            assert_eq!(decode_snapshot(&store, &bytes).expect("decode"), snapshot);
            assert!(decode_snapshot(&store, &bytes[..bytes.len() - 1]).is_err());
            let listed = store.backend().list(FileKind::Snapshot).expect("list");
            assert!(listed.is_empty());
        }
    }
}
