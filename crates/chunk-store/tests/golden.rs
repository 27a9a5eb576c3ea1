//! Golden repositories: written once by format 1.0 and committed under `tests/data/`; every
//! later version must read them byte for byte. Never regenerate them to make this test pass:
//! a failure here means the format changed in a way that breaks existing repositories.
//!
//! To write a new golden repository for a new format version, add a new directory with
//! `cargo test -p respaldo-chunk-store --test golden -- --ignored write_golden` after changing
//! `GOLDEN` below, and keep the old ones.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use chunk_store::{
    Backend, BlobKind, ChunkStore, EncryptionConfig, FileKind, InitOptions, KdfParams, LocalBackend,
};
use chunker::ChunkerParams;

const PASSWORD: &str = "golden-password";

fn golden_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// The blobs every golden repository holds, in the order they were added, with the flushes.
fn golden_blobs() -> Vec<(BlobKind, Vec<u8>, bool)> {
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
    vec![
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
    ]
}

fn golden_options(encrypted: bool) -> InitOptions {
    InitOptions {
        password: encrypted.then(|| PASSWORD.to_string()),
        kdf: KdfParams::insecure_fast(),
        chunker: ChunkerParams::new(4096, 16384, 65536, 1, 0x60_1D).unwrap(),
        pack_size: 1024 * 1024,
        zstd_level: 3,
        hostname: "golden-host".into(),
        username: "golden-user".into(),
        created_unix_seconds: 1_795_000_000,
    }
}

const GOLDEN: [(&str, bool); 2] = [("golden-v1-encrypted", true), ("golden-v1-plain", false)];

/// Every file of the golden repositories: names are BLAKE3 hashes of the content, so pinning
/// them pins every byte.
const GOLDEN_FILES: [(&str, &[&str]); 2] = [
    (
        "golden-v1-encrypted",
        &[
            "index/306d5c0c05b1d5bef1ca0ca084e43c3367a496b9e5325c9262df78ca95840a37",
            "index/dcea2d9e32b08a9db8a6ff3cf39d6ce9a6e72da9d3ce2f7f7d570aa1157f5074",
            "keys/a29583b59c4480d914791349b957e23b3990dfcee562bc763555213edb7caa02",
            "packs/b45d756ae3cb0151188789d98d13665a91f6c131be032c5fc51f866a7f0e522a",
            "packs/d54bf0b322c71b9cd9cf22c5c07ca92aed79c7dbd87c192bbc82971a98eaaa11",
            "packs/ef35175997ff7b1855f0ef4e178efba72014282368664b2233e22221232c777f",
        ],
    ),
    (
        "golden-v1-plain",
        &[
            "index/327e7778b86f8e32f83bce663b5ba30394f72bd40e99fc39dfc1de45caf0e548",
            "index/f22caf382dd3ea0d9620c32bd9ede89646eb2a84461f3e7e6aa7d034d0fa5893",
            "packs/3dfe95244c543b0b164e0deae846363b1114b32134f8b53c874ca28a798ebdb5",
            "packs/8a45cb1b36d702943561d97f07b69423e5ad95b91918e97dfb3f7845a0b17a0b",
            "packs/b779b57b87d3902eefb5c81c4c7e60dc904fbe47738765d854a7b45eb2ac929c",
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
    for (name, encrypted) in GOLDEN {
        let dir = golden_dir(name);
        assert!(
            !dir.exists(),
            "{} exists: golden repositories are never rewritten",
            dir.display()
        );
        let cache = tempfile::tempdir().unwrap();
        let store = ChunkStore::init(
            Arc::new(LocalBackend::new(&dir)),
            &golden_options(encrypted),
            cache.path().join("index.redb"),
        )
        .unwrap();
        for (kind, data, flush) in golden_blobs() {
            store.add_blob(kind, &data).unwrap();
            if flush {
                store.flush().unwrap();
            }
        }
    }
}

#[test]
fn golden_repositories_of_format_1_read_byte_for_byte() {
    for (name, encrypted) in GOLDEN {
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
        let options = golden_options(encrypted);
        assert_eq!(config.format_minor, 0);
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

        // Every blob reads back exactly, under the id this version computes for it.
        let blobs = golden_blobs();
        for (kind, data, _) in &blobs {
            let id = store.blob_id(data);
            assert_eq!(
                &store
                    .get_blob(&id)
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
                data
            );
            assert_eq!(store.locate(&id).unwrap().unwrap().kind, *kind);
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

/// The writer still produces format 1 byte for byte: an unencrypted repository (no random
/// nonces) fed the golden blobs yields the very packs and index files of the golden one.
#[test]
fn the_writer_still_produces_the_golden_bytes() {
    let golden = LocalBackend::new(golden_dir("golden-v1-plain"));
    let golden_config = ChunkStore::read_config(&golden).unwrap();
    let fresh = Arc::new(chunk_store::MemoryBackend::new());
    let cache = tempfile::tempdir().unwrap();
    let store = ChunkStore::init(
        fresh.clone(),
        &golden_options(false),
        cache.path().join("i.redb"),
    )
    .unwrap();
    for (kind, data, flush) in golden_blobs() {
        store.add_blob(kind, &data).unwrap();
        if flush {
            store.flush().unwrap();
        }
    }
    assert_eq!(repository_files(fresh.as_ref()), repository_files(&golden));
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
