//! `ChunkStore::blob_locator` and `ChunkStore::open_blob`: locating many blobs through one
//! index view, and opening blobs cut out of a ranged read of their pack.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chunk_store::{
    Backend, BlobKind, BlobLocation, ChunkId, ChunkStore, Error, FileKind, InitOptions, KdfParams,
    MemoryBackend,
};

fn store(backend: Arc<dyn Backend>, cache: &tempfile::TempDir) -> ChunkStore {
    let options = InitOptions {
        password: Some("pw".to_string()),
        kdf: KdfParams::insecure_fast(),
        pack_size: 1024 * 1024,
        ..InitOptions::default()
    };
    ChunkStore::init(backend, &options, cache.path().join("index.redb")).unwrap()
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// The sealed bytes of a blob, cut out of one read of the whole span of `locations`.
fn cut<'a>(read: &'a [u8], start: u64, location: &BlobLocation) -> &'a [u8] {
    let from = usize::try_from(location.offset - start).unwrap();
    &read[from..from + location.length as usize]
}

#[test]
fn locator_sees_indexed_and_written_blobs_and_one_read_opens_them_all() {
    let cache = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = store(backend.clone(), &cache);
    let blobs: Vec<Vec<u8>> = (0..8)
        .map(|i| noise(50_000 + i * 1_000, i as u64))
        .collect();
    let ids: Vec<ChunkId> = blobs
        .iter()
        .map(|b| store.add_blob(BlobKind::Data, b).unwrap().id)
        .collect();
    store.flush().unwrap();
    // More than a pack's worth: the first pack is written, but no index file lists it yet.
    let pending: Vec<Vec<u8>> = (0..30).map(|i| noise(60_000, 100 + i)).collect();
    let pending_ids: Vec<ChunkId> = pending
        .iter()
        .map(|b| store.add_blob(BlobKind::Data, b).unwrap().id)
        .collect();

    let locator = store.blob_locator().unwrap();
    let locations: Vec<BlobLocation> = ids
        .iter()
        .map(|id| locator.locate(id).unwrap().unwrap())
        .collect();
    for (id, location) in ids.iter().zip(&locations) {
        assert_eq!(Some(*location), store.locate(id).unwrap());
    }
    // Written this session, not yet indexed: located as `locate` does.
    assert!(store.locate(&pending_ids[0]).unwrap().is_some());
    assert_eq!(
        locator.locate(&pending_ids[0]).unwrap(),
        store.locate(&pending_ids[0]).unwrap()
    );
    // Still in the open pack: neither locates it.
    let last = pending_ids.last().unwrap();
    assert_eq!(store.locate(last).unwrap(), None);
    assert_eq!(locator.locate(last).unwrap(), None);
    assert_eq!(locator.locate(&ChunkId::from_bytes([3; 32])).unwrap(), None);

    // One read of the pack span holding the eight flushed blobs opens every one of them.
    let pack = locations[0].pack;
    assert!(locations.iter().all(|l| l.pack == pack));
    let start = locations.iter().map(|l| l.offset).min().unwrap();
    let end = locations
        .iter()
        .map(|l| l.offset + u64::from(l.length))
        .max()
        .unwrap();
    let read = backend
        .read_range(FileKind::Pack, &pack.to_hex(), start, end - start)
        .unwrap();
    for ((id, location), content) in ids.iter().zip(&locations).zip(&blobs) {
        let opened = store
            .open_blob(id, location, cut(&read, start, location))
            .unwrap();
        assert_eq!(&opened, content);
    }

    // Another blob's bytes, a damaged byte, or the wrong id: Corrupt, naming the pack.
    let (a, b) = (&locations[0], &locations[1]);
    let wrong = store.open_blob(&ids[0], a, cut(&read, start, b));
    assert!(
        matches!(&wrong, Err(Error::Corrupt { file, .. }) if file.contains(&pack.to_hex())),
        "{wrong:?}"
    );
    let mut damaged = cut(&read, start, a).to_vec();
    damaged[10] ^= 1;
    assert!(matches!(
        store.open_blob(&ids[0], a, &damaged),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        store.open_blob(&ids[1], a, cut(&read, start, a)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn locator_keeps_its_view_of_the_index() {
    let cache = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = store(backend, &cache);
    let empty = store.blob_locator().unwrap();
    let id = store.add_blob(BlobKind::Data, b"later").unwrap().id;
    store.flush().unwrap();
    assert_eq!(empty.locate(&id).unwrap(), None, "indexed after the view");
    assert!(store.blob_locator().unwrap().locate(&id).unwrap().is_some());
}
