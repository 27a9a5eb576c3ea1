//! Format 2: small tree blobs gathered into groups, each read, verified and repacked by its
//! own id; format 1 repositories keep one blob per tree.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use chunk_store::{
    Backend, BlobKind, ChunkId, ChunkStore, Encoding, Error, FileKind, InitOptions, KdfParams,
    MemoryBackend,
};
use chunker::ChunkerParams;
use tempfile::TempDir;

const PASSWORD: &str = "group password";

fn options(encrypted: bool, format_major: u16) -> InitOptions {
    InitOptions {
        password: encrypted.then(|| PASSWORD.to_string()),
        kdf: KdfParams::insecure_fast(),
        pack_size: 1024 * 1024,
        chunker: ChunkerParams::new(4096, 16384, 65536, 1, 0).unwrap(),
        format_major,
        ..InitOptions::default()
    }
}

fn init(backend: Arc<dyn Backend>, encrypted: bool, format_major: u16) -> (TempDir, ChunkStore) {
    let cache = tempfile::tempdir().unwrap();
    let store = ChunkStore::init(
        backend,
        &options(encrypted, format_major),
        cache.path().join("index.redb"),
    )
    .unwrap();
    (cache, store)
}

/// A store on `backend` with a cache of its own, so that nothing decoded before is reused.
fn fresh_open(backend: Arc<dyn Backend>, encrypted: bool) -> (TempDir, ChunkStore) {
    let cache = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(
        backend,
        encrypted.then_some(PASSWORD),
        cache.path().join("index.redb"),
    )
    .unwrap();
    (cache, store)
}

/// Something like a folder's tree: names, owners and times, a few hundred bytes.
fn tree(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in 0..(3 + n % 5) {
        out.extend_from_slice(
            format!(
                "name=file-{n}-{entry}.txt user=ana group=staff mode=0644 mtime=17950{:05} ",
                n * 7 + entry
            )
            .as_bytes(),
        );
        out.extend_from_slice(blake3::hash(&(n * 100 + entry).to_le_bytes()).as_bytes());
    }
    out
}

/// Adds trees `0..count` and returns their ids.
fn add_trees(store: &ChunkStore, count: u64) -> Vec<ChunkId> {
    (0..count)
        .map(|n| {
            let added = store.add_blob(BlobKind::Tree, &tree(n)).unwrap();
            assert!(added.stored);
            added.id
        })
        .collect()
}

fn bytes_of(backend: &dyn Backend, kind: FileKind) -> u64 {
    backend
        .list(kind)
        .unwrap()
        .iter()
        .map(|name| backend.read(kind, name).unwrap().len() as u64)
        .sum()
}

fn header_versions(backend: &dyn Backend, kind: FileKind) -> HashSet<u16> {
    backend
        .list(kind)
        .unwrap()
        .iter()
        .map(|name| {
            let bytes = backend.read(kind, name).unwrap();
            u16::from_le_bytes([bytes[8], bytes[9]])
        })
        .collect()
}

#[test]
fn trees_are_grouped_and_each_reads_back_by_its_id_before_and_after_a_flush() {
    for encrypted in [true, false] {
        let backend = Arc::new(MemoryBackend::new());
        let (_cache, store) = init(backend.clone(), encrypted, 2);
        // About 400 KiB of trees: several groups, the last one still gathering.
        let ids = add_trees(&store, 1_000);
        let data = store.add_blob(BlobKind::Data, b"file content").unwrap().id;
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(store.get_blob(id).unwrap(), tree(n as u64), "unflushed {n}");
        }
        store.flush().unwrap();
        assert_eq!(
            header_versions(backend.as_ref(), FileKind::Pack),
            [2].into()
        );
        assert_eq!(
            header_versions(backend.as_ref(), FileKind::Index),
            [2].into()
        );

        let (_cache, store) = fresh_open(backend.clone(), encrypted);
        let mut groups = HashSet::new();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(store.get_blob(id).unwrap(), tree(n as u64), "tree {n}");
            let location = store.locate(id).unwrap().unwrap();
            assert_eq!(location.encoding, Encoding::Grouped);
            groups.insert((location.pack, location.offset));
        }
        assert!((2..=10).contains(&groups.len()), "{} groups", groups.len());
        assert_eq!(store.get_blob(&data).unwrap(), b"file content");
        assert_ne!(
            store.locate(&data).unwrap().unwrap().encoding,
            Encoding::Grouped
        );

        // The pack trailers say the same as the index files.
        store.rebuild_index_from_packs().unwrap();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(store.get_blob(id).unwrap(), tree(n as u64), "rebuilt {n}");
        }
    }
}

#[test]
fn groups_store_trees_in_less_than_format_1_does() {
    let mut sizes = Vec::new();
    for major in [1, 2] {
        let backend = Arc::new(MemoryBackend::new());
        let (_cache, store) = init(backend.clone(), true, major);
        let ids = add_trees(&store, 1_000);
        store.flush().unwrap();
        let location = store.locate(&ids[0]).unwrap().unwrap();
        assert_eq!(location.encoding == Encoding::Grouped, major == 2);
        let expected = if major == 2 { 2 } else { 1 };
        assert_eq!(
            header_versions(backend.as_ref(), FileKind::Pack),
            [expected].into()
        );
        assert_eq!(
            header_versions(backend.as_ref(), FileKind::Index),
            [expected].into()
        );
        sizes.push(
            bytes_of(backend.as_ref(), FileKind::Pack)
                + bytes_of(backend.as_ref(), FileKind::Index),
        );
    }
    // Seals, trailer entries and compression shared by a group's members (these trees hold
    // 32 incompressible bytes per entry, as real ones do).
    assert!(
        sizes[1] * 4 < sizes[0] * 3,
        "format 2: {} bytes, format 1: {}",
        sizes[1],
        sizes[0]
    );
}

#[test]
fn a_damaged_group_fails_each_of_its_members_naming_the_pack() {
    for encrypted in [true, false] {
        let backend = Arc::new(MemoryBackend::new());
        let (_cache, store) = init(backend.clone(), encrypted, 2);
        let ids = add_trees(&store, 1_000);
        store.flush().unwrap();
        let first = store.locate(&ids[0]).unwrap().unwrap();
        let pack = first.pack.to_hex();
        let mut bytes = backend.read(FileKind::Pack, &pack).unwrap();
        bytes[first.offset as usize + first.length as usize / 2] ^= 0x10;
        backend.write(FileKind::Pack, &pack, &bytes).unwrap();

        let (_cache, store) = fresh_open(backend.clone(), encrypted);
        let mut damaged = HashSet::new();
        for (n, id) in ids.iter().enumerate() {
            let location = store.locate(id).unwrap().unwrap();
            if (location.pack, location.offset) == (first.pack, first.offset) {
                match store.get_blob(id) {
                    Err(Error::Corrupt { file, offset, .. }) => {
                        assert_eq!(file, format!("packs/{pack}"));
                        assert_eq!(offset, first.offset);
                    }
                    other => panic!("tree {n}: expected Corrupt, got {other:?}"),
                }
                damaged.insert(*id);
            } else {
                assert_eq!(store.get_blob(id).unwrap(), tree(n as u64));
            }
        }
        assert!(damaged.len() > 1 && damaged.len() < ids.len());

        // A whole-pack check names every member of the group, and only those.
        let entries = store.pack_entries(&first.pack).unwrap();
        let report = store.verify_pack(&first.pack, &entries).unwrap();
        let reported: HashSet<ChunkId> = report.damaged.iter().map(|(e, _)| e.id).collect();
        let in_pack: HashSet<ChunkId> = damaged
            .iter()
            .copied()
            .filter(|id| entries.iter().any(|e| e.id == *id))
            .collect();
        assert_eq!(reported, in_pack);
        assert!(!report.name_matches);
    }
}

#[test]
fn a_whole_pack_of_groups_verifies_intact() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true, 2);
    add_trees(&store, 1_000);
    store.flush().unwrap();
    for name in backend.list(FileKind::Pack).unwrap() {
        let pack = name.parse::<ChunkId>().unwrap();
        let entries = store.pack_entries(&pack).unwrap();
        let report = store.verify_pack(&pack, &entries).unwrap();
        assert!(report.is_intact(), "{name}: {report:?}");
    }
}

#[test]
fn repacked_members_form_a_new_group_of_only_those() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true, 2);
    let ids = add_trees(&store, 300);
    store.flush().unwrap();
    let old_packs = backend.list(FileKind::Pack).unwrap();
    assert_eq!(old_packs.len(), 1);
    let old = old_packs[0].parse::<ChunkId>().unwrap();
    let bytes = store.read_pack(&old).unwrap();
    let entries = store.pack_entries(&old).unwrap();
    // Every third member is kept, as a prune would.
    let kept: Vec<_> = entries.iter().step_by(3).copied().collect();
    for entry in &kept {
        let sealed = entry.sealed_in(&bytes).unwrap();
        store.repack_blob(&old, entry, sealed).unwrap();
        // A second copy in one session is not stored twice.
        store.repack_blob(&old, entry, sealed).unwrap();
    }
    store.flush().unwrap();
    let new_packs: Vec<String> = backend
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .filter(|p| *p != old_packs[0])
        .collect();
    assert_eq!(new_packs.len(), 1);
    let new = new_packs[0].parse::<ChunkId>().unwrap();
    let new_entries = store.pack_entries(&new).unwrap();
    let listed: Vec<ChunkId> = new_entries.iter().map(|e| e.id).collect();
    let wanted: Vec<ChunkId> = kept.iter().map(|e| e.id).collect();
    assert_eq!(listed, wanted);
    assert!(new_entries.iter().all(|e| e.encoding == Encoding::Grouped));

    // With the old pack gone, the kept trees read from the new one.
    backend.delete(FileKind::Pack, &old_packs[0]).unwrap();
    for name in backend.list(FileKind::Index).unwrap() {
        backend.delete(FileKind::Index, &name).unwrap();
    }
    let (_cache, store) = fresh_open(backend.clone(), true);
    store.rebuild_index_from_packs().unwrap();
    for (n, id) in ids.iter().enumerate() {
        let found = store.get_blob(id);
        if wanted.contains(id) {
            assert_eq!(found.unwrap(), tree(n as u64));
        } else {
            assert!(
                matches!(found, Err(Error::BlobNotFound { .. })),
                "tree {n}: {found:?}"
            );
        }
    }
}

#[test]
fn an_unknown_format_version_is_refused_at_init_and_nothing_is_written() {
    for major in [0, chunk_store::FORMAT_MAJOR + 1] {
        let backend = Arc::new(MemoryBackend::new());
        let cache = tempfile::tempdir().unwrap();
        let result = ChunkStore::init(
            backend.clone(),
            &options(true, major),
            cache.path().join("index.redb"),
        );
        assert!(
            matches!(
                result,
                Err(Error::InvalidSetting {
                    name: "format version",
                    ..
                })
            ),
            "{major}: {result:?}"
        );
        assert!(backend.list(FileKind::Key).unwrap().is_empty());
        assert!(
            !backend
                .exists(FileKind::Config, chunk_store::CONFIG_NAME)
                .unwrap()
        );
    }
}
