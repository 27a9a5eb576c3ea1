//! Round trips through the real encoders and decoders, from structures drawn with `arbitrary`:
//!
//! - a `ChunkStore` over a `MemoryBackend` (unencrypted or encrypted, zstd off to level 19,
//!   1 MiB packs): blobs (fuzzer bytes, generated compressible or random content up to
//!   512 KiB, repeats) are added, read back before and after `flush`, after reopening with a
//!   fresh `index.redb` (rebuilt from the index files; with a second key in an encrypted
//!   repository) and after `rebuild_index_from_packs`; each pack's trailer must list what the
//!   index files say;
//! - a `Tree` of arbitrary valid nodes saved and loaded equal (before and after the flush);
//! - a `Snapshot` manifest saved and loaded equal;
//! - a key file wrapped and unwrapped (right and wrong password, public part);
//! - an index file of arbitrary pack records encoded and decoded equal.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arbitrary::Arbitrary;
use chunk_store::fuzzing::{
    SealMode, decode_index_file, encode_index_file, key_file_info, unwrap_key_file, wrap_key_file,
};
use chunk_store::{
    Backend, BlobKind, ChunkStore, Encoding, FileKind, IndexedPack, KdfParams, KeyOrigin,
    MasterKey, MemoryBackend, PackEntry,
};
use chunker::ChunkId;
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{init_options, scratch_dir};
use snapshot_index::{Node, NodeKind, Snapshot, Summary, Tree};

#[derive(Debug, Arbitrary)]
struct Input {
    encrypted: bool,
    zstd: u8,
    blobs: Vec<BlobSpec>,
    nodes: Vec<NodeSpec>,
    snapshot: SnapshotSpec,
    second_password: String,
    key: KeySpec,
    index: Vec<PackSpec>,
}

#[derive(Debug, Arbitrary)]
struct BlobSpec {
    tree: bool,
    content: Content,
}

#[derive(Debug, Arbitrary)]
enum Content {
    Bytes(Vec<u8>),
    Generated {
        seed: u64,
        len: u32,
        compressible: bool,
    },
    Again(u8),
}

#[derive(Debug, Arbitrary)]
struct NodeSpec {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    mtime_ns: i64,
    ctime_ns: i64,
    device: u64,
    inode: u64,
    links: u64,
    rdev: u64,
    size: u64,
    content: Vec<u8>,
    subtree: [u8; 32],
    link_target: Vec<u8>,
    flags: u32,
}

#[derive(Debug, Arbitrary)]
struct SnapshotSpec {
    time_ns: i64,
    utc_offset_s: i32,
    hostname: String,
    username: String,
    tags: Vec<String>,
    paths: Vec<String>,
    parent: Option<[u8; 32]>,
    program_version: String,
    counters: [u64; 12],
}

#[derive(Debug, Arbitrary)]
struct KeySpec {
    password: String,
    other_password: String,
    hostname: String,
    username: String,
    created_unix_seconds: i64,
    repository_id: [u8; 32],
    config_hash: [u8; 32],
}

#[derive(Debug, Arbitrary)]
struct PackSpec {
    pack: [u8; 32],
    size: u64,
    blobs: Vec<([u8; 32], bool, bool, u64, u32, u32)>,
}

const KINDS: [NodeKind; 8] = [
    NodeKind::File,
    NodeKind::Dir,
    NodeKind::Symlink,
    NodeKind::Hardlink,
    NodeKind::Fifo,
    NodeKind::CharDevice,
    NodeKind::BlockDevice,
    NodeKind::Socket,
];

fuzz_target!(|input: Input| {
    let mode = if input.encrypted {
        SealMode::Encrypted
    } else {
        SealMode::Plain
    };
    key_file_round_trip(&input.key);
    index_file_round_trip(mode, &input.index);
    store_round_trip(&input);
});

/// Content of `len` bytes from `seed`: random, or a short random pattern repeated.
fn generate(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    if compressible {
        let pattern: Vec<u8> = (0..61).map(|_| next()).collect();
        (0..len).map(|i| pattern[i % pattern.len()]).collect()
    } else {
        (0..len).map(|_| next()).collect()
    }
}

fn store_round_trip(input: &Input) {
    let levels = [0, 1, 3, 6, 19];
    let level = levels[usize::from(input.zstd) % levels.len()];
    // High zstd levels are slow: keep their runs short.
    let budget = if level >= 19 { 64 << 10 } else { 3 << 20 };
    let mut contents: Vec<(BlobKind, Vec<u8>)> = Vec::new();
    let mut total = 0;
    for spec in input.blobs.iter().take(48) {
        let data = match &spec.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Generated {
                seed,
                len,
                compressible,
            } => generate(*seed, *len as usize % ((512 << 10) + 1), *compressible),
            Content::Again(i) if !contents.is_empty() => {
                contents[usize::from(*i) % contents.len()].1.clone()
            }
            Content::Again(_) => Vec::new(),
        };
        if total + data.len() > budget {
            continue;
        }
        total += data.len();
        let kind = if spec.tree {
            BlobKind::Tree
        } else {
            BlobKind::Data
        };
        contents.push((kind, data));
    }

    let dir = scratch_dir();
    let backend = Arc::new(MemoryBackend::new());
    let options = init_options(input.encrypted, level);
    let store =
        ChunkStore::init(backend.clone(), &options, dir.path().join("first.redb")).expect("init");

    let mut blobs: BTreeMap<ChunkId, Vec<u8>> = BTreeMap::new();
    for (kind, data) in &contents {
        let added = store.add_blob(*kind, data).expect("add_blob");
        assert_eq!(added.id, store.blob_id(data));
        assert_eq!(
            added.stored,
            !blobs.contains_key(&added.id),
            "deduplication"
        );
        blobs.insert(added.id, data.clone());
        assert_eq!(&store.get_blob(&added.id).expect("read before flush"), data);
    }

    // A tree of valid nodes: names made valid, the first of each name kept.
    let ids: Vec<ChunkId> = blobs.keys().copied().collect();
    let mut names = BTreeSet::new();
    let mut nodes = Vec::new();
    for spec in input.nodes.iter().take(32) {
        let mut name: Vec<u8> = spec
            .name
            .iter()
            .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
            .collect();
        if name.is_empty() || name == b"." || name == b".." {
            name.push(b'x');
        }
        if !names.insert(name.clone()) {
            continue;
        }
        let kind = KINDS[usize::from(spec.kind) % KINDS.len()];
        let mut node = Node::new(name, kind);
        node.mode = spec.mode;
        node.uid = spec.uid;
        node.gid = spec.gid;
        node.user = spec.user.clone();
        node.group = spec.group.clone();
        node.mtime_ns = spec.mtime_ns;
        node.ctime_ns = spec.ctime_ns;
        node.device = spec.device;
        node.inode = spec.inode;
        node.links = spec.links;
        node.rdev = spec.rdev;
        node.size = spec.size;
        if !ids.is_empty() {
            node.content = spec
                .content
                .iter()
                .map(|&i| ids[usize::from(i) % ids.len()])
                .collect();
        }
        node.subtree = (kind == NodeKind::Dir).then(|| ChunkId::from_bytes(spec.subtree));
        node.link_target = spec.link_target.clone();
        node.flags = spec.flags;
        nodes.push(node);
    }
    let tree = Tree::new(nodes).expect("Tree::new of valid nodes");
    let tree_id = tree.save(&store).expect("save tree");
    assert_eq!(Tree::load(&store, &tree_id).expect("load tree"), tree);
    blobs.insert(tree_id, tree.to_bytes().expect("tree bytes"));

    store.flush().expect("flush");
    for (id, data) in &blobs {
        assert_eq!(&store.get_blob(id).expect("read after flush"), data);
    }

    let s = &input.snapshot;
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
    ] = s.counters;
    let snapshot = Snapshot {
        time_ns: s.time_ns,
        utc_offset_s: s.utc_offset_s,
        hostname: s.hostname.clone(),
        username: s.username.clone(),
        tags: s.tags.clone(),
        paths: s.paths.clone(),
        tree: tree_id,
        parent: s.parent.map(ChunkId::from_bytes),
        program_version: s.program_version.clone(),
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
    };
    let snapshot_id = snapshot.save(&store).expect("save snapshot");
    assert_eq!(
        Snapshot::load(&store, &snapshot_id).expect("load snapshot"),
        snapshot
    );

    let password = if input.encrypted {
        let origin = KeyOrigin::default();
        store
            .add_key(&input.second_password, KdfParams::insecure_fast(), &origin)
            .expect("add_key");
        Some(input.second_password.as_str())
    } else {
        None
    };
    drop(store);

    // Reopen with a fresh index.redb: the index is rebuilt from the index files.
    let store =
        ChunkStore::open(backend.clone(), password, dir.path().join("second.redb")).expect("open");
    for (id, data) in &blobs {
        assert_eq!(&store.get_blob(id).expect("read after reopen"), data);
    }
    assert_eq!(Tree::load(&store, &tree_id).expect("reload tree"), tree);
    assert_eq!(
        Snapshot::load(&store, &snapshot_id).expect("reload snapshot"),
        snapshot
    );

    // Index files and pack trailers agree, and list every blob once.
    let mut listed: BTreeMap<ChunkId, Vec<PackEntry>> = BTreeMap::new();
    for (_, packs) in store.read_index_files().expect("read index files") {
        for pack in packs {
            assert!(
                listed.insert(pack.pack, pack.blobs).is_none(),
                "pack listed twice"
            );
        }
    }
    let pack_names = backend.list(FileKind::Pack).expect("list packs");
    assert_eq!(pack_names.len(), listed.len());
    let mut in_packs = BTreeSet::new();
    for name in pack_names {
        let pack: ChunkId = name.parse().expect("pack name");
        let entries = store.pack_entries(&pack).expect("pack trailer");
        assert_eq!(
            Some(&entries),
            listed.get(&pack),
            "trailer and index file differ"
        );
        for entry in entries {
            assert!(in_packs.insert(entry.id), "blob stored twice");
        }
    }
    assert_eq!(in_packs, blobs.keys().copied().collect());

    store
        .rebuild_index_from_packs()
        .expect("rebuild from packs");
    for (id, data) in &blobs {
        assert_eq!(&store.get_blob(id).expect("read after rebuild"), data);
    }
}

fn key_file_round_trip(key: &KeySpec) {
    let master = MasterKey::generate().expect("master key");
    let origin = KeyOrigin {
        hostname: key.hostname.clone(),
        username: key.username.clone(),
        created_unix_seconds: key.created_unix_seconds,
    };
    let kdf = KdfParams::insecure_fast();
    let (_, bytes) = wrap_key_file(
        &master,
        key.repository_id,
        key.config_hash,
        &key.password,
        kdf,
        &origin,
    )
    .expect("wrap");
    let info = key_file_info(&bytes).expect("key file info");
    assert_eq!(
        (
            info.hostname,
            info.username,
            info.created_unix_seconds,
            info.kdf
        ),
        (
            origin.hostname,
            origin.username,
            origin.created_unix_seconds,
            kdf
        )
    );
    let (opened, repository_id, config_hash) = unwrap_key_file(&bytes, &key.password)
        .expect("unwrap")
        .expect("the right password opens");
    assert_eq!(opened.id_key(), master.id_key());
    assert_eq!(
        (repository_id, config_hash),
        (key.repository_id, key.config_hash)
    );
    if key.other_password != key.password {
        assert!(
            unwrap_key_file(&bytes, &key.other_password)
                .expect("unwrap")
                .is_none(),
            "a wrong password opened the key"
        );
    }
}

fn index_file_round_trip(mode: SealMode, specs: &[PackSpec]) {
    let packs: Vec<IndexedPack> = specs
        .iter()
        .take(8)
        .map(|p| IndexedPack {
            pack: ChunkId::from_bytes(p.pack),
            size: p.size,
            blobs: p
                .blobs
                .iter()
                .take(16)
                .map(|&(id, tree, zstd, offset, length, raw_length)| PackEntry {
                    id: ChunkId::from_bytes(id),
                    kind: if tree { BlobKind::Tree } else { BlobKind::Data },
                    encoding: if zstd { Encoding::Zstd } else { Encoding::Raw },
                    offset,
                    length,
                    raw_length,
                    member_offset: 0,
                })
                .collect(),
        })
        .collect();
    let (_, bytes) = encode_index_file(mode, chunk_store::FORMAT_MAJOR, &packs)
        .expect("encode index file");
    assert_eq!(
        decode_index_file(mode, &bytes).expect("decode index file"),
        packs
    );
}
