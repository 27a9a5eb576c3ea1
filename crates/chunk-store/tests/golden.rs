//! Golden repositories: written once by each format version (1.0, 2.0) and committed under
//! `tests/data/`; every later version must read them byte for byte. Never regenerate them to
//! make this test pass: a failure here means the format changed in a way that breaks existing
//! repositories.
//!
//! To write a golden repository for a new format version, add it to `GOLDEN` below and run
//! `cargo test -p respaldo-chunk-store --test golden -- --ignored write_golden`: it writes the
//! repositories that do not exist yet and leaves the others alone.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use chunk_store::{
    Backend, BlobKind, ChunkStore, Encoding, EncryptionConfig, FileKind, InitOptions, KdfParams,
    KeyOrigin, LocalBackend,
};
use chunker::ChunkerParams;

const PASSWORD: &str = "golden-password";

fn golden_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// The blobs every golden repository of format `major` holds, in the order they were added,
/// with the flushes: format 2 adds two trees, so that its trees make a group.
fn golden_blobs(major: u16) -> Vec<(BlobKind, Vec<u8>, bool)> {
    let mut state: u64 = 0x5EED;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    };
    let text: Vec<u8> = b"fn main() { println!(\"hello, respaldo\"); }\n".repeat(500);
    let mut blobs = vec![
        (BlobKind::Data, noise(20_000), false),
        (BlobKind::Data, text.clone(), false),
        (BlobKind::Data, Vec::new(), true),
        (
            BlobKind::Tree,
            b"{\"tree\": [\"a\", \"b\"]}".to_vec(),
            false,
        ),
        (BlobKind::Data, noise(3_000), false),
        (BlobKind::Data, [text.as_slice(), b"tail"].concat(), true),
    ];
    if major >= 2 {
        let trees = [
            (
                BlobKind::Tree,
                b"{\"tree\": [\"a\", \"b\", \"c\"]}".to_vec(),
                false,
            ),
            (
                BlobKind::Tree,
                b"{\"tree\": [\"b\", \"c\"]}".to_vec(),
                false,
            ),
        ];
        blobs.splice(4..4, trees);
    }
    blobs
}

fn golden_options(encrypted: bool, format_major: u16) -> InitOptions {
    InitOptions {
        password: encrypted.then(|| PASSWORD.to_string()),
        kdf: KdfParams::insecure_fast(),
        chunker: ChunkerParams::new(4096, 16384, 65536, 1, 0x60_1D).unwrap(),
        pack_size: 1024 * 1024,
        zstd_level: 3,
        key_origin: KeyOrigin {
            hostname: "golden-host".into(),
            username: "golden-user".into(),
            created_unix_seconds: 1_795_000_000,
        },
        format_major,
    }
}

/// Name, whether encrypted, format major.
const GOLDEN: [(&str, bool, u16); 4] = [
    ("golden-v1-encrypted", true, 1),
    ("golden-v1-plain", false, 1),
    ("golden-v2-encrypted", true, 2),
    ("golden-v2-plain", false, 2),
];

/// Every file of the golden repositories: names are BLAKE3 hashes of the content, so pinning
/// them pins every byte.
const GOLDEN_FILES: [(&str, &[&str]); 4] = [
    (
        "golden-v1-encrypted",
        &[
            "index/87cb3efd1c59f277b10fea76c98421bf2da6c7cffb77454e87acd66e7d3359e0",
            "index/9d52463d16d2d55a9eef5f1c981dd8c6ef760cc98711aa4fd6a4f669dc407b78",
            "keys/88f04b853261a9358043bef72a9242be29b55d77d406c0877b69b11af881a3c9",
            "packs/280a8e5607e5a4d6bd33c588bcfb1879422e0c6f3ee25027b885d5601093f38d",
            "packs/281eb6ebc42a9b33db1d810585272af0bb63afbc117a57aa5ead515c19913fa6",
            "packs/341535a45242e7e20e730829d78032af908ccee5a7b830ed75d84f2dbac422bb",
        ],
    ),
    (
        "golden-v1-plain",
        &[
            "index/3a5484584f8de4bc21f9ee1467258cf74254b748a905ee0a26fe59ffc8e9bb70",
            "index/85eb30f61af538dccced06b9e8230ff53c5b7e5e5ddc9ed35218e1d0f43fc602",
            "packs/2fb3e2c2383a39e419e453ee3c06e73eb27298a493e6c15309f359323e9dd311",
            "packs/3a13595dcbb6cb63d826ccd73f557a538cda144fe052bf534c7f6f9d8d0de690",
            "packs/3cfcfd5b7c5123fe720de2d7a965953fba8795007a0046761fcb0ae37d65e820",
        ],
    ),
    (
        "golden-v2-encrypted",
        &[
            "index/4e26602506b02891f3b2c0d261e2529fc6b8cc0e48ba6bc0b9761d18c740500f",
            "index/d9712c60cd922e22269f08d9fda8637114bab3c7a433cd040c017d737ff7bbd3",
            "keys/ceaa8857da3fc85ccef9bfe9df250a01e520828f82b583299d2b0c3667ffd8e5",
            "packs/ac1d745ab19df27adca4c6647b45ebd544dd13d87d049211f7f19206d80de585",
            "packs/db03b7a68bcfe1e6130de1e7fe14ef189f1cf2513f78464da61cd3f50e642440",
            "packs/db6639d3f77e60f68ed33fd100b5890022849a8fcde88cf7096dadf589563592",
        ],
    ),
    (
        "golden-v2-plain",
        &[
            "index/3ab643bbba2af5e2ea687db69b3796894f9dccc62a28ff0845093be1924d349b",
            "index/e0b03d81d490abad506f3bccacc3d510d6c675146c04540b6dcfb86658d9fdbc",
            "packs/cddd4c7c32df5492ab60222b834103f94f9fe5c2952fb74aaa1a05cd1cf87c2b",
            "packs/cfcf263020c35559c0ceb94baf76a1286244b747d8294d66af1dc4fe44792b59",
            "packs/f9a14f81bfc0503c559a7cae87b8864ad258f71ddb53b06f60b5c557215e8017",
        ],
    ),
];

fn repository_files(backend: &dyn Backend) -> Vec<String> {
    let mut files = Vec::new();
    for kind in [FileKind::Key, FileKind::Pack, FileKind::Index] {
        for name in backend.list(kind).unwrap() {
            files.push(kind.display_path(&name));
        }
    }
    files.sort();
    files
}

#[test]
#[ignore = "writes the golden repositories; run once per format version"]
fn write_golden_repositories() {
    for (name, encrypted, major) in GOLDEN {
        let dir = golden_dir(name);
        if dir.exists() {
            // Golden repositories are never rewritten.
            continue;
        }
        let cache = tempfile::tempdir().unwrap();
        let store = ChunkStore::init(
            Arc::new(LocalBackend::new(&dir)),
            &golden_options(encrypted, major),
            cache.path().join("index.redb"),
        )
        .unwrap();
        for (kind, data, flush) in golden_blobs(major) {
            store.add_blob(kind, &data).unwrap();
            if flush {
                store.flush().unwrap();
            }
        }
    }
}

#[test]
fn golden_repositories_read_byte_for_byte() {
    for (name, encrypted, major) in GOLDEN {
        let dir = golden_dir(name);
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
        let cache = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(
            backend.clone(),
            encrypted.then_some(PASSWORD),
            cache.path().join("index.redb"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));

        // The config says what it said when it was written.
        let config = store.config();
        let options = golden_options(encrypted, major);
        assert_eq!(config.format_minor, 0);
        let config_file = backend
            .read(FileKind::Config, chunk_store::CONFIG_NAME)
            .unwrap();
        assert_eq!(u16::from_le_bytes([config_file[8], config_file[9]]), major);
        assert_eq!(config.chunker.algorithm, chunk_store::CHUNKER_ALGORITHM);
        assert_eq!(
            (
                config.chunker.min_size,
                config.chunker.avg_size,
                config.chunker.max_size
            ),
            (4096, 16384, 65536)
        );
        assert_eq!(config.chunker.normalization, 1);
        assert_eq!(config.chunker.seed_from_key, encrypted);
        assert_eq!(config.chunker.seed, if encrypted { 0 } else { 0x60_1D });
        assert_eq!(config.compression.zstd_level, 3);
        assert_eq!(config.pack_size, options.pack_size);
        assert_eq!(
            config.encryption,
            if encrypted {
                EncryptionConfig::XChaCha20Poly1305Argon2id
            } else {
                EncryptionConfig::None
            }
        );

        // Every blob reads back exactly, under the id this version computes for it; in
        // format 2, the trees from one group.
        let blobs = golden_blobs(major);
        for (kind, data, _) in &blobs {
            let id = store.blob_id(data);
            assert_eq!(
                &store
                    .get_blob(&id)
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
                data
            );
            let location = store.locate(&id).unwrap().unwrap();
            assert_eq!(location.kind, *kind);
            let grouped = major >= 2 && *kind == BlobKind::Tree;
            assert_eq!(location.encoding == Encoding::Grouped, grouped, "{name}");
        }
        assert_eq!(store.indexed_blob_count().unwrap(), blobs.len() as u64);

        // Two flushes: two index files; data and tree packs apart.
        assert_eq!(backend.list(FileKind::Index).unwrap().len(), 2);
        assert_eq!(backend.list(FileKind::Pack).unwrap().len(), 3);
        assert_eq!(
            backend.list(FileKind::Key).unwrap().len(),
            usize::from(encrypted)
        );

        // The files are exactly those written in 2026-11, and their names still match the content.
        let pinned = GOLDEN_FILES.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(repository_files(backend.as_ref()), pinned, "{name}");
        for kind in [FileKind::Key, FileKind::Pack, FileKind::Index] {
            for file in backend.list(kind).unwrap() {
                let bytes = backend.read(kind, &file).unwrap();
                assert_eq!(
                    blake3::hash(&bytes).to_hex().as_str(),
                    file,
                    "{name}: {kind:?} {file}"
                );
            }
        }

        // The slow path reads the same from the pack trailers.
        assert_eq!(store.rebuild_index_from_packs().unwrap(), 3);
        for (_, data, _) in &blobs {
            assert_eq!(&store.get_blob(&store.blob_id(data)).unwrap(), data);
        }
        if encrypted {
            let keys = store.list_keys().unwrap();
            assert_eq!(keys[0].hostname, "golden-host");
            assert_eq!(keys[0].username, "golden-user");
            assert_eq!(keys[0].created_unix_seconds, 1_795_000_000);
            assert_eq!(keys[0].kdf, KdfParams::insecure_fast());
        }
    }
}

/// The writer still produces each format byte for byte: an unencrypted repository (no random
/// nonces) fed the golden blobs yields the very packs and index files of the golden one.
#[test]
fn the_writer_still_produces_the_golden_bytes() {
    for (name, major) in [("golden-v1-plain", 1), ("golden-v2-plain", 2)] {
        the_writer_produces(name, major);
    }
}

fn the_writer_produces(name: &str, major: u16) {
    let golden = LocalBackend::new(golden_dir(name));
    let golden_config = ChunkStore::read_config(&golden).unwrap();
    let fresh = Arc::new(chunk_store::MemoryBackend::new());
    let cache = tempfile::tempdir().unwrap();
    let store = ChunkStore::init(
        fresh.clone(),
        &golden_options(false, major),
        cache.path().join("i.redb"),
    )
    .unwrap();
    for (kind, data, flush) in golden_blobs(major) {
        store.add_blob(kind, &data).unwrap();
        if flush {
            store.flush().unwrap();
        }
    }
    assert_eq!(
        repository_files(fresh.as_ref()),
        repository_files(&golden),
        "{name}"
    );
    // The config differs only in its random repository id.
    let config = store.config();
    assert_eq!(
        chunk_store::RepoConfig {
            repository_id: golden_config.repository_id,
            ..config.clone()
        },
        golden_config
    );
}
