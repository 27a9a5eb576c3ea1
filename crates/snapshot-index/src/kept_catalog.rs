//! The decoded manifests a catalog keeps beside the fast index, so that the next command
//! neither reads nor opens again every manifest it opened before.
//!
//! Kept through [`ChunkStore::keep_value`]: sealed with the repository's key, local, and lost
//! with the fast index. Each record is the decoded content of a manifest file whose name
//! (the BLAKE3 of that content) was verified when it was read, and a file never changes, so a
//! kept record stays true for as long as its file is listed. What is kept is only ever used
//! for files the repository still lists.

use std::collections::HashMap;

use chunk_store::ChunkStore;
use chunker::ChunkId;

use crate::catalog::SnapshotEntry;
use crate::codec;
use crate::error::Result;
use crate::snapshot::{Snapshot, SnapshotRecord};

/// Manifests new to the kept catalog (or gone from the repository) that a load tolerates
/// before it rewrites the catalog, at the least: rewriting costs the whole catalog, so after
/// each backup the next commands open a few manifests again instead.
const REWRITE_AFTER: usize = 16;

/// Where the records are kept ([`ChunkStore::keep_value`]).
const KEY: &str = "snapshot-catalog";
const MAGIC: &[u8; 8] = b"RSPLKCAT";
const VERSION: u16 = 1;
// The kept records are manifests' records: a new manifest version changes them, and then
// this version must change too, or records kept before would be decoded with the new layout.
const _: () = assert!(
    crate::snapshot::SNAPSHOT_VERSION == 1,
    "bump kept_catalog::VERSION along with the manifest's version"
);

/// The manifests kept by an earlier command, by id: empty when none were kept, or when what
/// was kept does not open or decode (another version, damage), so that they are read again.
pub(crate) fn read(store: &ChunkStore) -> Result<HashMap<ChunkId, Snapshot>> {
    let Some(bytes) = store.kept_value(KEY)? else {
        return Ok(HashMap::new());
    };
    let records: Vec<([u8; 32], SnapshotRecord)> =
        match codec::split_header(&bytes, MAGIC, VERSION, KEY)
            .and_then(|(_, body)| codec::decode(body, KEY))
        {
            Ok(records) => records,
            Err(_) => return Ok(HashMap::new()),
        };
    Ok(records
        .into_iter()
        .map(|(id, record)| (ChunkId::from_bytes(id), Snapshot::from_record(record)))
        .collect())
}

/// Keeps `entries` (manifests read and verified from files the repository lists) in place of
/// what was kept before.
pub(crate) fn write(store: &ChunkStore, entries: &[SnapshotEntry]) -> Result<()> {
    let records: Vec<([u8; 32], SnapshotRecord)> = entries
        .iter()
        .map(|e| (*e.id.as_bytes(), e.snapshot.to_record()))
        .collect();
    let bytes = codec::encode(MAGIC, VERSION, &records, "the kept snapshot catalog")?;
    store.keep_value(KEY, &bytes)?;
    Ok(())
}

/// Whether a load that found `kept` manifests kept, had to open `opened` others and found
/// `gone` kept ones no longer listed should rewrite the kept catalog: when nothing was kept
/// yet, or when the difference passes [`REWRITE_AFTER`] or a thirty-second of the catalog,
/// so that a load opens at most a few percent of the manifests again and rewriting stays
/// rare.
pub(crate) fn worth_rewriting(kept: usize, opened: usize, gone: usize) -> bool {
    let changed = opened + gone;
    changed > 0 && (kept == 0 || changed >= REWRITE_AFTER.max(kept / 32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{read, worth_rewriting, write};
    use crate::catalog::{Catalog, SnapshotEntry};
    use crate::snapshot::{Snapshot, Summary};
    use crate::test_store::memory_store;
    use crate::tree::Tree;

    fn snapshot(tree: chunker::ChunkId, time_ns: i64) -> Snapshot {
        Snapshot {
            time_ns,
            utc_offset_s: 0,
            hostname: "host".into(),
            username: "user".into(),
            tags: vec![],
            paths: vec!["/data".into()],
            tree,
            parent: None,
            program_version: "test".into(),
            summary: Summary::default(),
        }
    }

    #[test]
    fn a_load_serves_kept_manifests_without_opening_them_again() {
        for password in [Some("pw"), None] {
            let (_cache, store) = memory_store(password);
            let tree = Tree::new(vec![]).unwrap().save(&store).unwrap();
            store.flush().unwrap();
            let ids: Vec<_> = (1..=3)
                .map(|t| snapshot(tree, t).save(&store).unwrap())
                .collect();
            let loaded = Catalog::load(&store).unwrap();
            assert_eq!(read(&store).unwrap().len(), 3);

            // A kept record that differs from its file (only this test can make one) is what
            // the next load returns: the file was not opened again.
            let mut marked: Vec<SnapshotEntry> = loaded.entries().to_vec();
            marked[1].snapshot.hostname = "from the kept catalog".into();
            write(&store, &marked).unwrap();
            let again = Catalog::load(&store).unwrap();
            assert_eq!(again.entries(), marked.as_slice());
            // The verified load opens every file.
            assert_eq!(
                Catalog::load_verified(&store).unwrap().entries(),
                loaded.entries()
            );

            // One new manifest is opened, and the kept catalog is not rewritten for it.
            let new = snapshot(tree, 4).save(&store).unwrap();
            let again = Catalog::load(&store).unwrap();
            assert_eq!(again.entries().len(), 4);
            assert_eq!(again.entries()[3].id, new);
            assert_eq!(
                again.entries()[1].snapshot.hostname,
                "from the kept catalog"
            );
            assert_eq!(read(&store).unwrap().len(), 3);
            assert!(ids.iter().all(|id| read(&store).unwrap().contains_key(id)));
        }
    }

    #[test]
    fn the_kept_catalog_is_rewritten_when_new_or_far_behind() {
        assert!(!worth_rewriting(0, 0, 0));
        assert!(worth_rewriting(0, 1, 0));
        assert!(!worth_rewriting(10, 1, 0));
        assert!(!worth_rewriting(10, 8, 7));
        assert!(worth_rewriting(10, 8, 8));
        assert!(worth_rewriting(10, 0, 16));
        assert!(!worth_rewriting(3_200, 99, 0));
        assert!(worth_rewriting(3_200, 100, 0));
        assert!(!worth_rewriting(3_200, 0, 0));
    }
}
