//! `check` on blobs kept more than once: a blob is unreadable only when every copy is.
#![allow(clippy::unwrap_used)]

mod common;

use chunk_store::{BlobKind, FileKind};
use respaldo::{CheckOptions, NoProgress, ReadData, Repository};

use common::{file, pseudo_random, repository, snapshot};

fn check(repo: &Repository) -> respaldo::CheckOutcome {
    repo.check(
        &CheckOptions {
            read_data: ReadData::All,
        },
        &NoProgress,
    )
    .unwrap()
}

/// Flips a byte inside the sealed copy of `blob` in pack `pack` on disk.
fn damage(
    dir: &std::path::Path,
    repo: &Repository,
    pack: &chunk_store::ChunkId,
    blob: &chunk_store::ChunkId,
) {
    let entry = repo
        .store()
        .read_index_files()
        .unwrap()
        .into_iter()
        .flat_map(|(_, packs)| packs)
        .filter(|p| p.pack == *pack)
        .flat_map(|p| p.blobs)
        .find(|e| e.id == *blob)
        .unwrap();
    let hex = pack.to_hex();
    let path = dir.join("repo/packs").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[entry.offset as usize + entry.length as usize / 2] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_blob_with_one_good_copy_is_readable_and_one_with_none_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let shared = pseudo_random(40_000, 1);
    let other = pseudo_random(30_000, 2);
    let root = vec![
        // The shared blob twice in one file: counted once.
        file(&repo, "twice", &[&shared, &shared]),
        file(&repo, "once", &[&other]),
    ];
    let taken = snapshot(&repo, root, 1);
    let first = check(&repo);
    assert!(first.is_ok(), "{:#?}", first.errors);
    assert_eq!(first.data_blobs, 2);

    // A second copy of the shared blob in a pack of its own, as a prune killed after
    // repacking leaves one.
    let store = repo.store();
    let shared_id = store.hasher().hash(&shared);
    let (original, entry) = store
        .read_index_files()
        .unwrap()
        .into_iter()
        .flat_map(|(_, packs)| packs)
        .find_map(|p| {
            let entry = p.blobs.iter().find(|e| e.id == shared_id)?;
            Some((p.pack, *entry))
        })
        .unwrap();
    assert_eq!(entry.kind, BlobKind::Data);
    let bytes = store.read_pack(&original).unwrap();
    store
        .repack_blob(&original, &entry, entry.sealed_in(&bytes).unwrap())
        .unwrap();
    store.flush().unwrap();
    let copy = store
        .read_index_files()
        .unwrap()
        .into_iter()
        .flat_map(|(_, packs)| packs)
        .find(|p| p.pack != original && p.blobs.iter().any(|e| e.id == shared_id))
        .unwrap()
        .pack;

    // One bad copy: the pack is reported, no file is affected.
    damage(dir.path(), &repo, &original, &shared_id);
    let one_bad = check(&repo);
    let original_object = FileKind::Pack.display_path(&original.to_hex());
    assert_eq!(one_bad.errors.len(), 1, "{:#?}", one_bad.errors);
    assert_eq!(one_bad.errors[0].object, original_object);
    assert!(
        one_bad.errors[0].affected.is_empty(),
        "{:#?}",
        one_bad.errors
    );
    assert_eq!(one_bad.data_blobs, 2);

    // Both copies bad: the file that needs the blob is affected, reported under the first
    // bad copy's pack in pack order; the other file is not.
    damage(dir.path(), &repo, &copy, &shared_id);
    let both_bad = check(&repo);
    assert_eq!(both_bad.errors.len(), 2, "{:#?}", both_bad.errors);
    let reported = original.min(copy);
    let affected: Vec<_> = both_bad
        .errors
        .iter()
        .flat_map(|p| {
            p.affected
                .iter()
                .map(move |a| (p.object.clone(), a.clone()))
        })
        .collect();
    assert_eq!(affected.len(), 1, "{:#?}", both_bad.errors);
    assert_eq!(
        affected[0].0,
        FileKind::Pack.display_path(&reported.to_hex())
    );
    assert_eq!(affected[0].1.snapshot, taken.id);
    assert_eq!(affected[0].1.path, "/twice");
}
