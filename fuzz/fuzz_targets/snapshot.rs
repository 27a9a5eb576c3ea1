//! Snapshot manifest decoding in `snapshot-index` (format.md section 10.2): name, magic,
//! version, seal (through the chunk store), bincode `SnapshotRecord`.
//!
//! The manifest is decoded by the real `Snapshot::load`, from a store over a `MemoryBackend`
//! (one unencrypted, one encrypted, made once per process). The first byte picks the store
//! (bit 0) and how the rest is used (the rest of the byte, modulo 2):
//! - 0: the rest is the manifest file, as is;
//! - 1: a manifest built here: a header version and a body (arbitrary bytes, or a mostly
//!   valid record written in the format's layout) sealed by the store with the right context.
//!
//! A valid built manifest must decode to what was written. Whatever decodes must save back to
//! a manifest that loads the same, and (unencrypted, where sealing is deterministic) to the
//! same bytes, hence the same id.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunk_store::{ChunkStore, FileKind};
use chunker::ChunkId;
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{
    Bin, Draw, SNAPSHOT_MAGIC, draw_version, header, shared_store, snapshot_ad, trace,
};
use snapshot_index::fuzzing::decode_snapshot;
use snapshot_index::{Snapshot, Summary};

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws a valid manifest: proves the harness matches the format.
        for encrypted in [false, true] {
            built(encrypted, &mut Unstructured::new(&[]));
        }
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let encrypted = selector & 1 == 1;
    if (selector >> 1) % 2 == 0 {
        let store = shared_store(encrypted);
        check_decoded(store, rest, decode_snapshot(store, rest));
    } else {
        built(encrypted, &mut Unstructured::new(rest));
    }
});

fn check_decoded(store: &ChunkStore, bytes: &[u8], result: snapshot_index::Result<Snapshot>) {
    trace("snapshot", &result);
    let Ok(snapshot) = result else { return };
    let id = snapshot.save(store).expect("save a decoded snapshot");
    let loaded = Snapshot::load(store, &id).expect("load a saved snapshot");
    store
        .backend()
        .delete(FileKind::Snapshot, &id.to_hex())
        .expect("delete");
    assert_eq!(loaded, snapshot);
    if !store.config().is_encrypted() {
        assert_eq!(
            id.as_bytes(),
            blake3::hash(bytes).as_bytes(),
            "a decoded manifest saves to other bytes"
        );
    }
}

/// A string, sometimes not UTF-8; `valid` is cleared then.
fn draw_text(u: &mut Unstructured<'_>, valid: &mut bool) -> Vec<u8> {
    let text = if u.chance(1, 32) {
        u.bytes_up_to(16)
    } else {
        u.any::<String>().into_bytes()
    };
    *valid &= std::str::from_utf8(&text).is_ok();
    text
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn built(encrypted: bool, u: &mut Unstructured<'_>) {
    let store = shared_store(encrypted);
    let version = draw_version(u);
    let mut valid = version == 1;
    let mut expected = None;
    let body = if u.chance(1, 16) {
        valid = false;
        u.bytes_up_to(1024)
    } else {
        let mut body = Bin::default();
        let time_ns: i64 = u.any();
        let utc_offset_s: i32 = u.any();
        body.i64(time_ns).i32(utc_offset_s);
        let hostname = draw_text(u, &mut valid);
        let username = draw_text(u, &mut valid);
        body.bytes(&hostname).bytes(&username);
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = u.below(4);
            body.u64(count);
            for _ in 0..count {
                let item = draw_text(u, &mut valid);
                body.bytes(&item);
                list.push(text(item));
            }
        }
        let [tags, paths] = lists;
        let tree: [u8; 32] = u.any();
        let parent: Option<[u8; 32]> = u.any();
        body.raw(&tree).opt_id(parent);
        let program_version = draw_text(u, &mut valid);
        body.bytes(&program_version);
        let counters: [u64; 12] = u.any();
        for c in counters {
            body.u64(c);
        }
        if u.chance(1, 16) {
            valid = false;
            body.0.push(u.any());
        }
        let [
            files_new,
            files_changed,
            files_unchanged,
            dirs,
            others,
            total_bytes,
            bytes_read,
            blobs_added,
            bytes_added,
            errors,
            files_changed_while_read,
            duration_ns,
        ] = counters;
        expected = Some(Snapshot {
            time_ns,
            utc_offset_s,
            hostname: text(hostname),
            username: text(username),
            tags,
            paths,
            tree: ChunkId::from_bytes(tree),
            parent: parent.map(ChunkId::from_bytes),
            program_version: text(program_version),
            summary: Summary {
                files_new,
                files_changed,
                files_unchanged,
                dirs,
                others,
                total_bytes,
                bytes_read,
                blobs_added,
                bytes_added,
                errors,
                files_changed_while_read,
                duration_ns,
            },
        });
        body.0
    };
    let mut file = header(SNAPSHOT_MAGIC, version);
    file.extend_from_slice(&store.seal(&body, &snapshot_ad(version)).expect("seal"));

    let result = decode_snapshot(store, &file);
    if valid {
        match &result {
            Ok(snapshot) => assert_eq!(Some(snapshot), expected.as_ref(), "read wrong"),
            Err(e) => panic!("a valid manifest was refused: {e}"),
        }
    }
    check_decoded(store, &file, result);
}
