//! The chunk store end to end: round trips, dedup, keys, index rebuilds, damage.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chunk_store::{
    Backend, BlobKind, ChunkId, ChunkStore, Encoding, Error, FileKind, InitOptions, KdfParams,
    LocalBackend, MemoryBackend, StagedFile,
};
use chunker::ChunkerParams;
use tempfile::TempDir;

const PASSWORD: &str = "correct horse";

fn options(encrypted: bool) -> InitOptions {
    InitOptions {
        password: encrypted.then(|| PASSWORD.to_string()),
        kdf: KdfParams::insecure_fast(),
        pack_size: 1024 * 1024,
        chunker: ChunkerParams::new(4096, 16384, 65536, 1, 0).unwrap(),
        ..InitOptions::default()
    }
}

fn init(backend: Arc<dyn Backend>, encrypted: bool) -> (TempDir, ChunkStore) {
    let cache = tempfile::tempdir().unwrap();
    let store = ChunkStore::init(
        backend,
        &options(encrypted),
        cache.path().join("index.redb"),
    )
    .unwrap();
    (cache, store)
}

fn reopen(backend: Arc<dyn Backend>, cache: &TempDir) -> ChunkStore {
    ChunkStore::open(backend, Some(PASSWORD), cache.path().join("index.redb")).unwrap()
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn text(seed: u64, len: usize) -> Vec<u8> {
    format!("line {seed} of a very compressible text file\n")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(len)
        .collect()
}

#[test]
fn blobs_round_trip_in_both_modes_with_the_right_encoding() {
    for encrypted in [true, false] {
        let backend = Arc::new(MemoryBackend::new());
        let (cache, store) = init(backend.clone(), encrypted);
        let random = noise(1, 200_000);
        let compressible = text(2, 300_000);
        let empty = Vec::new();
        let a = store.add_blob(BlobKind::Data, &random).unwrap();
        let b = store.add_blob(BlobKind::Data, &compressible).unwrap();
        let c = store.add_blob(BlobKind::Tree, &empty).unwrap();
        assert!(a.stored && b.stored && c.stored);
        // Readable before and after the flush, and after reopening.
        assert_eq!(store.get_blob(&a.id).unwrap(), random);
        store.flush().unwrap();
        drop(store);
        let store = reopen(backend.clone(), &cache);
        assert_eq!(store.get_blob(&a.id).unwrap(), random);
        assert_eq!(store.get_blob(&b.id).unwrap(), compressible);
        assert_eq!(store.get_blob(&c.id).unwrap(), empty);
        assert_eq!(
            store.locate(&a.id).unwrap().unwrap().encoding,
            Encoding::Raw
        );
        let text_location = store.locate(&b.id).unwrap().unwrap();
        assert_eq!(text_location.encoding, Encoding::Zstd);
        assert!(u64::from(text_location.length) < 300_000 / 10);
        // Ids: keyed when encrypted, plain BLAKE3 otherwise.
        let plain = ChunkId::from_bytes(*blake3::hash(&random).as_bytes());
        assert_eq!(a.id == plain, !encrypted);
        assert_eq!(store.config().is_encrypted(), encrypted);
    }
}

#[test]
fn a_known_blob_stores_nothing() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    let data = noise(3, 100_000);
    assert!(store.add_blob(BlobKind::Data, &data).unwrap().stored);
    let again = store.add_blob(BlobKind::Data, &data).unwrap();
    assert!(!again.stored);
    assert_eq!(again.stored_bytes, 0);
    store.flush().unwrap();
    drop(store);
    // Known across sessions, through the index.
    let store = reopen(backend.clone(), &cache);
    assert!(!store.add_blob(BlobKind::Data, &data).unwrap().stored);
    store.flush().unwrap();
    assert_eq!(backend.list(FileKind::Pack).unwrap().len(), 1);
    assert_eq!(backend.list(FileKind::Index).unwrap().len(), 1);
}

#[test]
fn many_threads_add_at_once_and_each_blob_is_stored_once() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    let blobs: Vec<Vec<u8>> = (0..200)
        .map(|i| noise(i % 100, 20_000 + (i % 100) as usize))
        .collect();
    let stored: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = &store;
                let blobs = &blobs;
                scope.spawn(move || {
                    let mut stored = 0;
                    for (i, blob) in blobs.iter().enumerate() {
                        if i % 4 == t || i % 3 == 0 {
                            stored +=
                                usize::from(store.add_blob(BlobKind::Data, blob).unwrap().stored);
                        }
                    }
                    stored
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(stored, 100, "each distinct blob is stored exactly once");
    store.flush().unwrap();
    drop(store);
    let store = reopen(backend.clone(), &cache);
    assert_eq!(store.indexed_blob_count().unwrap(), 100);
    for blob in &blobs {
        assert_eq!(&store.get_blob(&store.blob_id(blob)).unwrap(), blob);
    }
    // ~3 MB of blobs in 1 MiB packs: several packs, each listed by the index files.
    let packs = backend.list(FileKind::Pack).unwrap();
    assert!(packs.len() >= 2, "{} packs", packs.len());
    let listed: usize = store
        .read_index_files()
        .unwrap()
        .iter()
        .map(|(_, p)| p.len())
        .sum();
    assert_eq!(listed, packs.len());
}

#[test]
fn blobs_added_while_index_files_are_absorbed_are_stored_once() {
    // Flushing writes an index file, absorbs it into the fast index and only then forgets the
    // blobs it lists as pending: an add that looks in between must still find each blob.
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true);
    let blobs: Vec<Vec<u8>> = (0..300).map(|i| noise(i, 2_000 + i as usize)).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let stored: usize = std::thread::scope(|scope| {
        scope.spawn(|| {
            while done.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                store.flush().unwrap();
            }
        });
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let (store, blobs, done) = (&store, &blobs, &done);
                scope.spawn(move || {
                    let mut stored = 0;
                    for round in 0..4 {
                        for i in 0..blobs.len() {
                            // Each thread and round in its own order.
                            let blob = &blobs[(i * (2 * t + 1) + round * 37) % blobs.len()];
                            stored +=
                                usize::from(store.add_blob(BlobKind::Data, blob).unwrap().stored);
                        }
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    stored
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(
        stored,
        blobs.len(),
        "each distinct blob is stored exactly once"
    );
    store.flush().unwrap();
    let listed: usize = store
        .read_index_files()
        .unwrap()
        .iter()
        .flat_map(|(_, packs)| packs)
        .map(|pack| pack.blobs.len())
        .sum();
    assert_eq!(listed, blobs.len(), "no blob is in two packs");
    for blob in &blobs {
        assert_eq!(&store.get_blob(&store.blob_id(blob)).unwrap(), blob);
    }
}

#[test]
fn data_and_tree_blobs_go_to_separate_packs() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true);
    for i in 0..10 {
        store.add_blob(BlobKind::Data, &noise(i, 5000)).unwrap();
        store.add_blob(BlobKind::Tree, &text(i, 5000)).unwrap();
    }
    store.flush().unwrap();
    let packs = backend.list(FileKind::Pack).unwrap();
    assert_eq!(packs.len(), 2);
    for name in packs {
        let entries = store.pack_entries(&name.parse().unwrap()).unwrap();
        assert_eq!(entries.len(), 10);
        assert!(entries.iter().all(|e| e.kind == entries[0].kind));
    }
}

#[test]
fn wrong_password_is_a_distinct_error_and_every_key_opens() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    let id = store
        .add_blob(BlobKind::Data, b"shared secret data")
        .unwrap()
        .id;
    store.flush().unwrap();
    let second = store
        .add_key(
            "second password",
            KdfParams::insecure_fast(),
            &chunk_store::KeyOrigin {
                hostname: "host".into(),
                username: "user".into(),
                created_unix_seconds: 42,
            },
        )
        .unwrap();
    let keys = store.list_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.name == second && k.hostname == "host" && k.created_unix_seconds == 42)
    );
    drop(store);

    let index = cache.path().join("index.redb");
    match ChunkStore::open(backend.clone(), Some("wrong"), &index) {
        Err(Error::WrongPassword { tried: 2 }) => {}
        other => panic!("expected WrongPassword, got {other:?}"),
    }
    assert!(matches!(
        ChunkStore::open(backend.clone(), None, &index),
        Err(Error::WrongPassword { .. })
    ));
    let by_second = ChunkStore::open(backend.clone(), Some("second password"), &index).unwrap();
    assert_eq!(by_second.get_blob(&id).unwrap(), b"shared secret data");

    // The last key cannot be removed; another can, and its password stops working.
    let first = keys.iter().find(|k| k.name != second).unwrap().name.clone();
    by_second.remove_key(&first).unwrap();
    assert!(matches!(
        by_second.remove_key(&second),
        Err(Error::InvalidSetting { .. })
    ));
    drop(by_second);
    assert!(matches!(
        ChunkStore::open(backend.clone(), Some(PASSWORD), &index),
        Err(Error::WrongPassword { tried: 1 })
    ));
}

#[test]
fn init_refuses_an_existing_repository_and_open_needs_one() {
    let backend = Arc::new(MemoryBackend::new());
    let cache = tempfile::tempdir().unwrap();
    let index = cache.path().join("index.redb");
    assert!(matches!(
        ChunkStore::open(backend.clone(), Some(PASSWORD), &index),
        Err(Error::NoRepository { .. })
    ));
    let _store = ChunkStore::init(backend.clone(), &options(true), &index).unwrap();
    assert!(matches!(
        ChunkStore::init(
            backend.clone(),
            &options(true),
            cache.path().join("other.redb")
        ),
        Err(Error::AlreadyInitialized { .. })
    ));
}

#[test]
fn invalid_settings_are_refused_before_anything_is_written() {
    let backend = Arc::new(MemoryBackend::new());
    let cache = tempfile::tempdir().unwrap();
    for bad in [
        InitOptions {
            zstd_level: 23,
            ..options(true)
        },
        InitOptions {
            pack_size: 1000,
            ..options(true)
        },
    ] {
        let err = ChunkStore::init(backend.clone(), &bad, cache.path().join("i.redb")).unwrap_err();
        assert!(matches!(err, Error::InvalidSetting { .. }), "{err}");
    }
    assert!(backend.list(FileKind::Config).unwrap().is_empty());
    assert!(backend.list(FileKind::Key).unwrap().is_empty());
}

/// Rewrites the config with another header version and a valid checksum.
fn rewrite_config_version(backend: &dyn Backend, version: u16) {
    let mut bytes = backend.read(FileKind::Config, "config").unwrap();
    bytes[8..10].copy_from_slice(&version.to_le_bytes());
    let body_end = bytes.len() - 32;
    let sum = blake3::hash(&bytes[..body_end]);
    bytes[body_end..].copy_from_slice(sum.as_bytes());
    backend.write(FileKind::Config, "config", &bytes).unwrap();
}

#[test]
fn a_newer_major_version_is_refused_with_a_message_that_says_so() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    drop(store);
    let newer = chunk_store::FORMAT_MAJOR + 1;
    rewrite_config_version(backend.as_ref(), newer);
    let err = ChunkStore::open(
        backend.clone(),
        Some(PASSWORD),
        cache.path().join("index.redb"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found,
                supported: chunk_store::FORMAT_MAJOR,
                ..
            } if found == newer
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("config")
            && message.contains(&format!("version {newer}"))
            && message.contains("upgrade"),
        "{message}"
    );
}

#[test]
fn deleting_index_redb_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let (cache, store) = init(backend.clone(), true);
    let blobs: Vec<Vec<u8>> = (0..50).map(|i| noise(i, 30_000)).collect();
    for (i, blob) in blobs.iter().enumerate() {
        store.add_blob(BlobKind::Data, blob).unwrap();
        if i % 20 == 19 {
            store.flush().unwrap();
        }
    }
    store.flush().unwrap();
    drop(store);
    std::fs::remove_file(cache.path().join("index.redb")).unwrap();
    let store = reopen(backend.clone(), &cache);
    assert_eq!(store.indexed_blob_count().unwrap(), 50);
    for blob in &blobs {
        assert_eq!(&store.get_blob(&store.blob_id(blob)).unwrap(), blob);
        assert!(!store.add_blob(BlobKind::Data, blob).unwrap().stored);
    }
    // Fast rebuild from index files, and slow rebuild from pack trailers alone.
    assert_eq!(store.rebuild_index().unwrap(), 3);
    assert_eq!(store.indexed_blob_count().unwrap(), 50);
    for name in backend.list(FileKind::Index).unwrap() {
        backend.delete(FileKind::Index, &name).unwrap();
    }
    let packs = backend.list(FileKind::Pack).unwrap().len();
    assert_eq!(store.rebuild_index_from_packs().unwrap(), packs);
    assert_eq!(store.indexed_blob_count().unwrap(), 50);
    for blob in &blobs {
        assert_eq!(&store.get_blob(&store.blob_id(blob)).unwrap(), blob);
    }
}

#[test]
fn an_index_redb_of_another_repository_or_garbage_is_replaced() {
    let cache = tempfile::tempdir().unwrap();
    let index = cache.path().join("index.redb");
    let first = Arc::new(MemoryBackend::new());
    let store = ChunkStore::init(first.clone(), &options(false), &index).unwrap();
    let id = store
        .add_blob(BlobKind::Data, b"only in the first")
        .unwrap()
        .id;
    store.flush().unwrap();
    drop(store);
    let second = Arc::new(MemoryBackend::new());
    let store = ChunkStore::init(second, &options(false), &index).unwrap();
    assert!(!store.contains(&id).unwrap());
    drop(store);
    std::fs::write(
        &index,
        b"this is not a database, just garbage bytes".repeat(200),
    )
    .unwrap();
    let store = ChunkStore::open(first, None, &index).unwrap();
    assert_eq!(store.get_blob(&id).unwrap(), b"only in the first");
}

#[test]
fn two_stores_share_one_index_file_and_see_each_others_blobs_after_sync() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, first) = init(backend.clone(), true);
    let second = reopen(backend.clone(), &cache);
    let a = first.add_blob(BlobKind::Data, &noise(10, 5000)).unwrap();
    let b = second.add_blob(BlobKind::Data, &noise(11, 5000)).unwrap();
    first.flush().unwrap();
    second.flush().unwrap();
    // The shared index already holds both; a fresh sync reads nothing new.
    assert_eq!(first.sync_index().unwrap(), 0);
    assert_eq!(first.get_blob(&b.id).unwrap(), noise(11, 5000));
    assert_eq!(second.get_blob(&a.id).unwrap(), noise(10, 5000));
    // A store with its own index file catches up from the index files.
    let other_cache = tempfile::tempdir().unwrap();
    let third = ChunkStore::open(
        backend,
        Some(PASSWORD),
        other_cache.path().join("index.redb"),
    )
    .unwrap();
    assert!(third.contains(&a.id).unwrap() && third.contains(&b.id).unwrap());
}

#[test]
fn unflushed_blobs_are_lost_cleanly_and_the_repository_stays_usable() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    let kept = store
        .add_blob(BlobKind::Data, &noise(20, 10_000))
        .unwrap()
        .id;
    store.flush().unwrap();
    let lost = store
        .add_blob(BlobKind::Data, &noise(21, 10_000))
        .unwrap()
        .id;
    std::mem::forget(store); // a crash: no destructor, no flush
    let store = reopen(backend.clone(), &cache);
    assert_eq!(store.get_blob(&kept).unwrap(), noise(20, 10_000));
    assert!(matches!(
        store.get_blob(&lost),
        Err(Error::BlobNotFound { .. })
    ));
    // The next session stores it again.
    assert!(
        store
            .add_blob(BlobKind::Data, &noise(21, 10_000))
            .unwrap()
            .stored
    );
    store.flush().unwrap();
    assert_eq!(store.get_blob(&lost).unwrap(), noise(21, 10_000));
}

fn only(backend: &dyn Backend, kind: FileKind) -> String {
    let names = backend.list(kind).unwrap();
    assert_eq!(names.len(), 1, "{kind:?}: {names:?}");
    names[0].clone()
}

#[test]
fn a_flipped_byte_in_a_pack_is_reported_with_the_pack_and_offset() {
    for encrypted in [true, false] {
        let backend = Arc::new(MemoryBackend::new());
        let (_cache, store) = init(backend.clone(), encrypted);
        let first = store
            .add_blob(BlobKind::Data, &noise(30, 10_000))
            .unwrap()
            .id;
        let second = store
            .add_blob(BlobKind::Data, &noise(31, 10_000))
            .unwrap()
            .id;
        store.flush().unwrap();
        let pack = only(backend.as_ref(), FileKind::Pack);
        let location = store.locate(&second).unwrap().unwrap();
        let mut bytes = backend.read(FileKind::Pack, &pack).unwrap();
        bytes[location.offset as usize + 100] ^= 0x04;
        backend.write(FileKind::Pack, &pack, &bytes).unwrap();
        match store.get_blob(&second) {
            Err(Error::Corrupt { file, offset, .. }) => {
                assert_eq!(file, format!("packs/{pack}"));
                assert_eq!(offset, location.offset);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // The other blob of the same pack is unaffected.
        assert_eq!(store.get_blob(&first).unwrap(), noise(30, 10_000));
    }
}

#[test]
fn a_truncated_or_damaged_pack_trailer_is_an_error_naming_the_pack() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true);
    store.add_blob(BlobKind::Data, &noise(40, 10_000)).unwrap();
    store.flush().unwrap();
    let pack = only(backend.as_ref(), FileKind::Pack);
    let bytes = backend.read(FileKind::Pack, &pack).unwrap();
    let id: ChunkId = pack.parse().unwrap();
    for damaged in [
        bytes[..bytes.len() - 1].to_vec(),
        bytes[..bytes.len() - 30].to_vec(),
        bytes[..5].to_vec(),
        {
            let mut b = bytes.clone();
            let at = b.len() - 20;
            b[at] ^= 1;
            b
        },
        {
            let mut b = bytes.clone();
            let at = b.len() - 12;
            b[at] = 0xff; // trailer length
            b
        },
    ] {
        backend.write(FileKind::Pack, &pack, &damaged).unwrap();
        match store.pack_entries(&id) {
            Err(Error::Corrupt { file, .. }) => assert_eq!(file, format!("packs/{pack}")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(
            store
                .rebuild_index_from_packs()
                .unwrap_err()
                .to_string()
                .contains(&pack)
        );
    }
}

#[test]
fn a_damaged_index_file_is_an_error_naming_it() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true);
    let id = store.add_blob(BlobKind::Data, b"x").unwrap().id;
    store.flush().unwrap();
    drop(store);
    let name = only(backend.as_ref(), FileKind::Index);
    let mut bytes = backend.read(FileKind::Index, &name).unwrap();
    bytes[20] ^= 0x10;
    backend.write(FileKind::Index, &name, &bytes).unwrap();
    // Reading it names it.
    let fresh = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(
        backend.clone(),
        Some(PASSWORD),
        fresh.path().join("index.redb"),
    )
    .unwrap();
    match store.read_index_file(&name).unwrap_err() {
        Error::Corrupt { file, .. } => assert_eq!(file, format!("index/{name}")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Opening skips it, so that check and repair can run, and says so; its blobs are
    // unknown until it is repaired.
    let unreadable = store.unreadable_index_files();
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, name);
    assert!(unreadable[0].1.contains(&format!("index/{name}")));
    // And says so again on every sync, though `index/` has not changed since.
    store.sync_index().unwrap();
    assert_eq!(store.unreadable_index_files(), unreadable);
    assert!(matches!(
        store.get_blob(&id),
        Err(Error::BlobNotFound { .. })
    ));
    store.rebuild_index_from_packs().unwrap();
    assert_eq!(store.get_blob(&id).unwrap(), b"x");
}

#[test]
fn a_damaged_key_file_is_told_apart_from_a_wrong_password() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    drop(store);
    let name = only(backend.as_ref(), FileKind::Key);
    let original = backend.read(FileKind::Key, &name).unwrap();
    for at in [0, 9, 30, original.len() / 2, original.len() - 1] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        backend.write(FileKind::Key, &name, &bytes).unwrap();
        let err = ChunkStore::open(
            backend.clone(),
            Some(PASSWORD),
            cache.path().join("index.redb"),
        )
        .unwrap_err();
        match &err {
            Error::Corrupt { file, .. } => assert_eq!(file, &format!("keys/{name}")),
            Error::UnsupportedVersion { file, .. } => assert_eq!(file, &format!("keys/{name}")),
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    backend
        .write(FileKind::Key, &name, &original[..40])
        .unwrap();
    let err =
        ChunkStore::open(backend, Some(PASSWORD), cache.path().join("index.redb")).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn blobs_over_the_limit_are_refused() {
    let backend = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend, false);
    let big = vec![0u8; chunk_store::MAX_BLOB_SIZE + 1];
    assert!(matches!(
        store.add_blob(BlobKind::Data, &big),
        Err(Error::BlobTooLarge { .. })
    ));
}

/// A backend whose pack writes, or appends to staged files, fail (disk full) while the
/// matching flag is set; it counts its listings of `index/`.
#[derive(Debug)]
struct Faulty<B> {
    inner: B,
    fail_pack_writes: AtomicBool,
    fail_staged_appends: Arc<AtomicBool>,
    index_lists: std::sync::atomic::AtomicUsize,
}

impl<B> Faulty<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            fail_pack_writes: false.into(),
            fail_staged_appends: Arc::default(),
            index_lists: 0.into(),
        }
    }
}

fn disk_full(path: &str) -> Error {
    Error::Io {
        op: "write",
        path: path.into(),
        source: std::io::Error::other("No space left on device"),
    }
}

/// A staged file whose appends fail while the flag is set, after writing half of the bytes.
#[derive(Debug)]
struct FailingStaged {
    inner: Box<dyn StagedFile>,
    fail: Arc<AtomicBool>,
}

impl StagedFile for FailingStaged {
    fn append(&mut self, data: &[u8]) -> chunk_store::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            // Part of the bytes made it, as when a disk fills up mid-write.
            self.inner.append(&data[..data.len() / 2])?;
            return Err(disk_full("staged pack"));
        }
        self.inner.append(data)
    }
    fn read_at(&mut self, offset: u64, len: usize) -> chunk_store::Result<Vec<u8>> {
        self.inner.read_at(offset, len)
    }
    fn commit(self: Box<Self>, name: &str) -> chunk_store::Result<()> {
        self.inner.commit(name)
    }
}

impl<B: Backend> Backend for Faulty<B> {
    fn location(&self) -> String {
        "faulty".into()
    }
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> chunk_store::Result<()> {
        if kind == FileKind::Pack && self.fail_pack_writes.load(Ordering::SeqCst) {
            return Err(disk_full(name));
        }
        self.inner.write(kind, name, data)
    }
    fn read(&self, kind: FileKind, name: &str) -> chunk_store::Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        o: u64,
        l: u64,
    ) -> chunk_store::Result<Vec<u8>> {
        self.inner.read_range(kind, name, o, l)
    }
    fn size(&self, kind: FileKind, name: &str) -> chunk_store::Result<u64> {
        self.inner.size(kind, name)
    }
    fn list(&self, kind: FileKind) -> chunk_store::Result<Vec<String>> {
        if kind == FileKind::Index {
            self.index_lists.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.list(kind)
    }
    fn delete(&self, kind: FileKind, name: &str) -> chunk_store::Result<()> {
        self.inner.delete(kind, name)
    }
    fn exists(&self, kind: FileKind, name: &str) -> chunk_store::Result<bool> {
        self.inner.exists(kind, name)
    }
    fn listing_stamp(&self, kind: FileKind) -> Option<chunk_store::ListingStamp> {
        self.inner.listing_stamp(kind)
    }
    fn stage(&self, kind: FileKind) -> chunk_store::Result<Option<Box<dyn StagedFile>>> {
        Ok(self.inner.stage(kind)?.map(|inner| {
            Box::new(FailingStaged {
                inner,
                fail: self.fail_staged_appends.clone(),
            }) as Box<dyn StagedFile>
        }))
    }
}

#[test]
fn a_failing_backend_loses_nothing_already_stored() {
    let backend = Arc::new(Faulty::new(MemoryBackend::new()));
    let (cache, store) = init(backend.clone(), true);
    let kept = store.add_blob(BlobKind::Data, &noise(50, 1000)).unwrap().id;
    store.flush().unwrap();
    backend.fail_pack_writes.store(true, Ordering::SeqCst);
    let failed = store.add_blob(BlobKind::Data, &noise(51, 1000)).unwrap().id;
    let err = store.flush().unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    // The blob whose pack failed is not claimed as stored; a retry stores it.
    assert!(!store.contains(&failed).unwrap());
    backend.fail_pack_writes.store(false, Ordering::SeqCst);
    assert!(
        store
            .add_blob(BlobKind::Data, &noise(51, 1000))
            .unwrap()
            .stored
    );
    store.flush().unwrap();
    drop(store);
    let store = reopen(backend, &cache);
    assert_eq!(store.get_blob(&kept).unwrap(), noise(50, 1000));
    assert_eq!(store.get_blob(&failed).unwrap(), noise(51, 1000));
}

#[test]
fn an_altered_config_is_detected_by_the_keys() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    drop(store);
    let index = cache.path().join("index.redb");
    let original = backend.read(FileKind::Config, "config").unwrap();

    // Another valid config (other pack size) with a correct checksum: the key does not vouch for it.
    let other = ChunkStore::init(
        Arc::new(MemoryBackend::new()),
        &InitOptions {
            pack_size: 2 * 1024 * 1024,
            ..options(true)
        },
        cache.path().join("other.redb"),
    )
    .unwrap();
    let mut forged = other.backend().read(FileKind::Config, "config").unwrap();
    // Keep this repository's id so that only the settings differ.
    forged[14 + 2..14 + 2 + 32].copy_from_slice(&original[14 + 2..14 + 2 + 32]);
    let body_end = forged.len() - 32;
    let sum = blake3::hash(&forged[..body_end]);
    forged[body_end..].copy_from_slice(sum.as_bytes());
    backend.write(FileKind::Config, "config", &forged).unwrap();
    match ChunkStore::open(backend.clone(), Some(PASSWORD), &index) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(file, "config");
            assert!(reason.contains("altered"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A config flipped to "unencrypted" is refused because key files exist.
    let plain = ChunkStore::init(
        Arc::new(MemoryBackend::new()),
        &options(false),
        cache.path().join("plain.redb"),
    )
    .unwrap();
    let plain_config = plain.backend().read(FileKind::Config, "config").unwrap();
    backend
        .write(FileKind::Config, "config", &plain_config)
        .unwrap();
    assert!(matches!(
        ChunkStore::open(backend.clone(), None, &index),
        Err(Error::Corrupt { .. })
    ));

    backend
        .write(FileKind::Config, "config", &original)
        .unwrap();
    ChunkStore::open(backend, Some(PASSWORD), &index).unwrap();
}

#[test]
fn a_key_left_by_another_repository_does_not_hide_the_right_one() {
    let backend = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    drop(store);
    // A key file of another repository with the same password, as an interrupted `init`
    // of a second repository at the same place would leave.
    let stray = MemoryBackend::new();
    let other = ChunkStore::init(
        Arc::new(stray.clone()),
        &options(true),
        cache.path().join("o.redb"),
    )
    .unwrap();
    drop(other);
    for name in stray.list(FileKind::Key).unwrap() {
        backend
            .write(
                FileKind::Key,
                &name,
                &stray.read(FileKind::Key, &name).unwrap(),
            )
            .unwrap();
    }
    assert_eq!(backend.list(FileKind::Key).unwrap().len(), 2);
    ChunkStore::open(
        backend.clone(),
        Some(PASSWORD),
        cache.path().join("index.redb"),
    )
    .unwrap();
}

#[test]
fn a_pack_lost_during_add_makes_the_next_flush_fail() {
    let (_cache, store) = init(
        Arc::new({
            let backend = Faulty::new(MemoryBackend::new());
            backend.fail_pack_writes.store(true, Ordering::SeqCst);
            backend
        }),
        false,
    );
    // The first blobs are accepted into the open pack; the one that fills it fails.
    let mut accepted = 0;
    let mut failed = false;
    for i in 0..40 {
        match store.add_blob(BlobKind::Data, &noise(100 + i, 60_000)) {
            Ok(outcome) => accepted += usize::from(outcome.stored),
            Err(e) => {
                assert!(e.to_string().contains("No space left"), "{e}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed && accepted > 0);
    match store.flush() {
        Err(Error::BlobsLost { count, reason }) => {
            assert!(count > accepted, "{count} lost, {accepted} accepted");
            assert!(reason.contains("No space left"));
        }
        other => panic!("expected BlobsLost, got {other:?}"),
    }
}

#[test]
fn trees_come_from_a_local_copy_of_their_pack_and_a_damaged_copy_is_fetched_again() {
    let memory = MemoryBackend::new();
    let backend: Arc<dyn Backend> = Arc::new(memory.clone());
    let (cache, store) = init(backend.clone(), true);
    let trees: Vec<Vec<u8>> = (0..20).map(|i| text(i, 3_000)).collect();
    let ids: Vec<ChunkId> = trees
        .iter()
        .map(|t| store.add_blob(BlobKind::Tree, t).unwrap().id)
        .collect();
    let data = store.add_blob(BlobKind::Data, &noise(1, 5_000)).unwrap().id;
    store.flush().unwrap();
    drop(store);

    let copies = cache.path().join("tree-packs");
    let store = reopen(backend.clone(), &cache).with_tree_pack_cache(&copies);
    assert_eq!(store.get_blob(&ids[0]).unwrap(), trees[0]);
    let pack = store.locate(&ids[0]).unwrap().unwrap().pack.to_hex();
    let copy = copies.join(&pack);
    assert!(copy.is_file(), "no local copy of the tree pack");
    // Data packs are not copied.
    assert_eq!(store.get_blob(&data).unwrap(), noise(1, 5_000));
    assert_eq!(std::fs::read_dir(&copies).unwrap().count(), 1);

    // Later trees of that pack come from the copy: the store no longer needs it.
    let stored = memory.read(FileKind::Pack, &pack).unwrap();
    memory.delete(FileKind::Pack, &pack).unwrap();
    for (id, tree) in ids.iter().zip(&trees) {
        assert_eq!(&store.get_blob(id).unwrap(), tree);
    }

    // A damaged copy is dropped, and the tree read from the store again.
    memory.write(FileKind::Pack, &pack, &stored).unwrap();
    let mut damaged = std::fs::read(&copy).unwrap();
    let at = damaged.len() / 3;
    damaged[at] ^= 0xff;
    std::fs::write(&copy, &damaged).unwrap();
    for (id, tree) in ids.iter().zip(&trees) {
        assert_eq!(&store.get_blob(id).unwrap(), tree);
    }

    // Deleting the pack through the store deletes the copy too.
    store.delete_pack(&pack).unwrap();
    assert!(!copy.exists());
    assert!(!memory.exists(FileKind::Pack, &pack).unwrap());
}

/// The name a snapshot file of content `bytes` has: the hex BLAKE3 hash of its content.
fn content_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn snapshot_files_read_once_are_served_from_the_cache_until_deleted() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    let first = b"first snapshot".to_vec();
    let second = b"second snapshot".to_vec();
    let (first_name, second_name) = (content_name(&first), content_name(&second));
    backend
        .write(FileKind::Snapshot, &first_name, &first)
        .unwrap();
    let read = store.read_snapshot_files().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, first_name);
    assert_eq!(read[0].1.as_ref().unwrap(), &first);

    // Altered in the repository: the copy read before is what comes back, in this process
    // and in the next one; a new file is read from the repository.
    backend
        .write(FileKind::Snapshot, &first_name, b"altered")
        .unwrap();
    backend
        .write(FileKind::Snapshot, &second_name, &second)
        .unwrap();
    drop(store);
    let store = reopen(backend.clone(), &cache);
    let mut read: Vec<(String, Vec<u8>)> = store
        .read_snapshot_files()
        .unwrap()
        .into_iter()
        .map(|(name, bytes)| (name, bytes.unwrap()))
        .collect();
    read.sort();
    let mut expected = vec![(first_name.clone(), first), (second_name.clone(), second)];
    expected.sort();
    assert_eq!(read, expected);

    // Deleted, then written again with other content: the copy went with the file.
    backend.delete(FileKind::Snapshot, &first_name).unwrap();
    let read = store.read_snapshot_files().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, second_name);
    backend
        .write(FileKind::Snapshot, &first_name, b"altered")
        .unwrap();
    let read = store.read_snapshot_files().unwrap();
    let altered = read.iter().find(|(name, _)| *name == first_name).unwrap();
    assert_eq!(altered.1.as_ref().unwrap(), b"altered");
}

#[test]
fn snapshot_files_the_caller_knows_are_listed_but_not_read() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), true);
    let (known, other) = (b"known snapshot".to_vec(), b"other snapshot".to_vec());
    let (known_name, other_name) = (content_name(&known), content_name(&other));
    for (name, bytes) in [(&known_name, &known), (&other_name, &other)] {
        backend.write(FileKind::Snapshot, name, bytes).unwrap();
    }
    let mut listed = store
        .read_snapshot_files_except(|name| name == known_name)
        .unwrap();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (known_name.clone(), None),
        (other_name.clone(), Some(other)),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let listed: Vec<(String, Option<Vec<u8>>)> = listed
        .into_iter()
        .map(|(name, bytes)| (name, bytes.map(|b| b.unwrap())))
        .collect();
    assert_eq!(listed, expected);
    // The known file was not read, so not copied either: read in full, it comes from the
    // repository, as altered there since.
    backend
        .write(FileKind::Snapshot, &known_name, b"altered")
        .unwrap();
    let read = store.read_snapshot_files().unwrap();
    let known_read = read.iter().find(|(name, _)| *name == known_name).unwrap();
    assert_eq!(known_read.1.as_ref().unwrap(), b"altered");
}

#[test]
fn kept_values_round_trip_and_stay_with_their_key_and_repository() {
    for encrypted in [true, false] {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let (cache, store) = init(backend.clone(), encrypted);
        assert_eq!(store.kept_values().unwrap().get("catalog").unwrap(), None);
        store
            .update_kept_values(|kept| kept.insert("catalog", b"first"))
            .unwrap();
        store
            .update_kept_values(|kept| kept.insert("catalog", b"second"))
            .unwrap();
        store
            .update_kept_values(|kept| kept.insert("other", b""))
            .unwrap();
        assert_eq!(
            store
                .kept_values()
                .unwrap()
                .get("catalog")
                .unwrap()
                .as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(
            store
                .kept_values()
                .unwrap()
                .get("other")
                .unwrap()
                .as_deref(),
            Some(&b""[..])
        );
        drop(store);
        let store = reopen(backend.clone(), &cache);
        assert_eq!(
            store
                .kept_values()
                .unwrap()
                .get("catalog")
                .unwrap()
                .as_deref(),
            Some(&b"second"[..])
        );
        drop(store);

        // Another repository using the same index file does not see them.
        let other = ChunkStore::init(
            Arc::new(MemoryBackend::new()),
            &options(encrypted),
            cache.path().join("index.redb"),
        )
        .unwrap();
        assert_eq!(other.kept_values().unwrap().get("catalog").unwrap(), None);
    }
}

#[test]
fn a_kept_view_sees_the_values_as_they_were_when_it_was_taken() {
    use std::ops::Bound;
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend, true);
    store
        .update_kept_values(|kept| {
            kept.insert("a/1", b"one")?;
            kept.insert("a/2", b"two")?;
            kept.insert("b", b"other")
        })
        .unwrap();
    let view = store.kept_values().unwrap();
    store
        .update_kept_values(|kept| {
            kept.remove("a/1")?;
            kept.insert("a/3", b"three")?;
            kept.insert("b", b"changed")
        })
        .unwrap();
    let a = (Bound::Included("a/"), Bound::Excluded("a0"));
    assert_eq!(view.keys(a).unwrap(), ["a/1", "a/2"]);
    assert_eq!(view.get("b").unwrap().as_deref(), Some(&b"other"[..]));
    let mut seen = Vec::new();
    view.scan(a, true, |key, value| {
        seen.push((key.to_string(), value));
        Ok(true)
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            ("a/2".to_string(), Some(b"two".to_vec())),
            ("a/1".to_string(), Some(b"one".to_vec()))
        ]
    );
    drop(view);
    let now = store.kept_values().unwrap();
    assert_eq!(now.keys(a).unwrap(), ["a/2", "a/3"]);
    assert_eq!(now.get("b").unwrap().as_deref(), Some(&b"changed"[..]));
}

#[test]
fn a_damaged_or_moved_kept_value_reads_as_none() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (cache, store) = init(backend.clone(), true);
    store
        .update_kept_values(|kept| kept.insert("catalog", b"the catalog"))
        .unwrap();
    store
        .update_kept_values(|kept| kept.insert("other", b"something else"))
        .unwrap();
    drop(store);
    use redb::ReadableTable;
    const KEPT: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kept-values-v1");
    let db = redb::Database::open(cache.path().join("index.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(KEPT).unwrap();
        let mut damaged = table.get("catalog").unwrap().unwrap().value().to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        table.insert("catalog", damaged.as_slice()).unwrap();
        // A value moved under another key does not open there.
        let other = table.get("other").unwrap().unwrap().value().to_vec();
        table.insert("moved", other.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let store = reopen(backend, &cache);
    assert_eq!(store.kept_values().unwrap().get("catalog").unwrap(), None);
    assert_eq!(store.kept_values().unwrap().get("moved").unwrap(), None);
    assert_eq!(
        store
            .kept_values()
            .unwrap()
            .get("other")
            .unwrap()
            .as_deref(),
        Some(&b"something else"[..])
    );
}

#[test]
fn a_snapshot_file_that_does_not_match_its_name_is_not_cached() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), false);
    let good = b"the snapshot".to_vec();
    let name = content_name(&good);
    backend
        .write(FileKind::Snapshot, &name, b"damaged")
        .unwrap();
    let read = store.read_snapshot_files().unwrap();
    assert_eq!(read[0].1.as_ref().unwrap(), b"damaged");
    // Repaired in the repository: the damaged content was not kept.
    backend.write(FileKind::Snapshot, &name, &good).unwrap();
    let read = store.read_snapshot_files().unwrap();
    assert_eq!(read[0].1.as_ref().unwrap(), &good);
}

#[test]
fn syncing_many_index_files_absorbs_each_once_across_transactions() {
    use chunk_store::{IndexedPack, PackEntry};
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (_cache, store) = init(backend.clone(), false);
    // More entries than one absorbing transaction takes (262,144), in five index files.
    let id = |n: u64| ChunkId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
    let per_file = 70_000u64;
    for file in 0..5u64 {
        let first = file * per_file;
        let packs: Vec<IndexedPack> = (0..per_file / 1_000)
            .map(|p| IndexedPack {
                pack: id(1_000_000 + file * 100 + p),
                size: 1_000 * 100,
                blobs: (0..1_000)
                    .map(|b| PackEntry {
                        id: id(first + p * 1_000 + b),
                        kind: BlobKind::Data,
                        encoding: Encoding::Raw,
                        offset: b * 100,
                        length: 100,
                        raw_length: 84,
                        member_offset: 0,
                    })
                    .collect(),
            })
            .collect();
        store.write_index_file(&packs).unwrap();
    }
    drop(store);

    let other_cache = tempfile::tempdir().unwrap();
    let store = reopen(backend.clone(), &other_cache);
    assert_eq!(store.indexed_blob_count().unwrap(), 5 * per_file);
    for n in [0, per_file - 1, 3 * per_file + 17, 5 * per_file - 1] {
        let location = store.locate(&id(n)).unwrap().expect("the blob is indexed");
        assert_eq!(location.offset, (n % 1_000) * 100, "blob {n}");
    }
    // Every file was recorded as absorbed: a second sync reads none.
    assert_eq!(store.sync_index().unwrap(), 0);
    drop(store);
    let store = reopen(backend, &other_cache);
    assert_eq!(store.sync_index().unwrap(), 0);
    assert_eq!(store.indexed_blob_count().unwrap(), 5 * per_file);
}

/// Every dot-named (in progress) file under `root`, at any depth.
fn temporaries(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_local_pack_is_staged_on_disk_readable_before_flush_and_named_by_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path()));
    let (cache, store) = init(backend.clone(), true);
    let small = store.add_blob(BlobKind::Data, &text(1, 3000)).unwrap().id;
    // A tree too large for a group goes straight to the open tree pack.
    let tree = store
        .add_blob(BlobKind::Tree, &text(2, 500_000))
        .unwrap()
        .id;
    // Open packs sit in staged files, not in the repository's listing, and read back whole.
    assert_eq!(temporaries(dir.path()).len(), 2, "a data and a tree pack");
    assert!(backend.list(FileKind::Pack).unwrap().is_empty());
    assert_eq!(store.get_blob(&small).unwrap(), text(1, 3000));
    assert_eq!(store.get_blob(&tree).unwrap(), text(2, 500_000));
    // Enough to fill several 1 MiB packs.
    let big: Vec<ChunkId> = (0..40)
        .map(|i| {
            store
                .add_blob(BlobKind::Data, &noise(300 + i, 60_000))
                .unwrap()
                .id
        })
        .collect();
    store.flush().unwrap();
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    let packs = backend.list(FileKind::Pack).unwrap();
    assert!(packs.len() >= 3, "{packs:?}");
    for name in &packs {
        let bytes = backend.read(FileKind::Pack, name).unwrap();
        assert_eq!(*name, blake3::hash(&bytes).to_hex().to_string());
    }
    drop(store);
    let store = reopen(backend, &cache);
    assert_eq!(store.get_blob(&small).unwrap(), text(1, 3000));
    assert_eq!(store.get_blob(&tree).unwrap(), text(2, 500_000));
    for (i, id) in big.iter().enumerate() {
        assert_eq!(store.get_blob(id).unwrap(), noise(300 + i as u64, 60_000));
    }
}

#[test]
fn an_unflushed_local_store_leaves_no_staged_pack_behind() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path()));
    let (cache, store) = init(backend.clone(), false);
    let lost = store.add_blob(BlobKind::Data, &noise(7, 5000)).unwrap().id;
    assert_eq!(temporaries(dir.path()).len(), 1);
    drop(store);
    assert!(temporaries(dir.path()).is_empty());
    let store = reopen(backend, &cache);
    assert!(matches!(
        store.get_blob(&lost),
        Err(Error::BlobNotFound { .. })
    ));
}

#[test]
fn a_staged_pack_that_fails_mid_write_is_dropped_and_its_blobs_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(Faulty::new(LocalBackend::new(dir.path())));
    let fail = backend.fail_staged_appends.clone();
    let (cache, store) = init(backend.clone(), true);
    let accepted = store.add_blob(BlobKind::Data, &noise(60, 5000)).unwrap().id;
    fail.store(true, Ordering::SeqCst);
    let err = store
        .add_blob(BlobKind::Data, &noise(61, 5000))
        .unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    // The half-written pack is gone, with the blob it had accepted.
    assert!(temporaries(dir.path()).is_empty());
    assert!(!store.contains(&accepted).unwrap());
    match store.flush() {
        Err(Error::BlobsLost { count, reason }) => {
            assert_eq!(count, 1);
            assert!(reason.contains("No space left"), "{reason}");
        }
        other => panic!("expected BlobsLost, got {other:?}"),
    }
    // Once the disk has room, both are stored again, in a pack whose bytes match its name.
    fail.store(false, Ordering::SeqCst);
    let ids = [60, 61].map(|seed| {
        let outcome = store.add_blob(BlobKind::Data, &noise(seed, 5000)).unwrap();
        assert!(outcome.stored);
        outcome.id
    });
    store.flush().unwrap();
    drop(store);
    let store = reopen(backend.clone(), &cache);
    assert_eq!(store.get_blob(&ids[0]).unwrap(), noise(60, 5000));
    assert_eq!(store.get_blob(&ids[1]).unwrap(), noise(61, 5000));
    for name in backend.list(FileKind::Pack).unwrap() {
        let bytes = backend.read(FileKind::Pack, &name).unwrap();
        assert_eq!(name, blake3::hash(&bytes).to_hex().to_string());
    }
}

/// Regression: a blob's location came from an index view shared by many reads, which could
/// outlive another handle's prune (the blob written into a new pack, the old pack and its
/// index file deleted, the index rebuilt): the read then failed with the old pack missing
/// although the blob is in the repository.
#[test]
fn a_blob_moved_by_another_handle_is_read_from_its_new_pack() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let (cache, reader) = init(backend.clone(), true);
    let data = noise(7, 50_000);
    let id = reader.add_blob(BlobKind::Tree, &data).unwrap().id;
    reader.flush().unwrap();
    // The reader's view now places the blob in its first pack.
    assert_eq!(reader.get_blob(&id).unwrap(), data);
    let old_pack = reader.locate(&id).unwrap().unwrap().pack;
    let old_index_files = backend.list(FileKind::Index).unwrap();

    // Another handle (another process, sharing the index cache) moves it, as prune does.
    let other = reopen(backend.clone(), &cache);
    let entry = other
        .pack_entries(&old_pack)
        .unwrap()
        .into_iter()
        .find(|e| e.id == id)
        .unwrap();
    let pack_bytes = other.read_pack(&old_pack).unwrap();
    other
        .repack_blob(&old_pack, &entry, entry.sealed_in(&pack_bytes).unwrap())
        .unwrap();
    other.flush().unwrap();
    other.delete_pack(&old_pack.to_hex()).unwrap();
    for name in &old_index_files {
        backend.delete(FileKind::Index, name).unwrap();
    }
    other.sync_index().unwrap();
    let new_pack = other.locate(&id).unwrap().unwrap().pack;
    assert_ne!(new_pack, old_pack);

    // Seconds later at most, the reader's view still has the old pack: the read follows the
    // blob.
    assert_eq!(reader.get_blob(&id).unwrap(), data);
    assert_eq!(reader.locate(&id).unwrap().unwrap().pack, new_pack);
}

#[test]
fn a_sync_lists_index_files_only_when_they_changed() {
    let backend = Arc::new(Faulty::new(MemoryBackend::new()));
    let (_cache, writer) = init(backend.clone(), true);
    let first = writer.add_blob(BlobKind::Data, b"first").unwrap().id;
    writer.flush().unwrap();
    let reader_cache = tempfile::tempdir().unwrap();
    let reader = reopen(backend.clone(), &reader_cache);
    assert_eq!(reader.get_blob(&first).unwrap(), b"first");
    let lists = || backend.index_lists.load(Ordering::SeqCst);

    // Unchanged since the last sync: not listed again, even by a new handle on the cache.
    let before = lists();
    assert_eq!(reader.sync_index().unwrap(), 0);
    drop(reader);
    let reader = reopen(backend.clone(), &reader_cache);
    assert_eq!(lists(), before);

    // A new index file is listed and absorbed.
    let second = writer.add_blob(BlobKind::Data, b"second").unwrap().id;
    writer.flush().unwrap();
    assert_eq!(reader.sync_index().unwrap(), 1);
    assert_eq!(lists(), before + 1);
    assert_eq!(reader.get_blob(&second).unwrap(), b"second");
    assert_eq!(reader.sync_index().unwrap(), 0);
    assert_eq!(lists(), before + 1);

    // An index file deleted (as a prune replaces them): the reader forgets what it listed.
    let names = backend.list(FileKind::Index).unwrap();
    for name in &names {
        backend.delete(FileKind::Index, name).unwrap();
    }
    reader.sync_index().unwrap();
    assert!(matches!(
        reader.get_blob(&first),
        Err(Error::BlobNotFound { .. })
    ));
}
