//! Restore reads each pack once and writes files by offset: files sharing chunks across
//! packs, repeated chunks, holes, a damaged pack (no temporary file left behind), and more
//! files than a low limit of open files would allow.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chunk_store::BlobKind;
use common::{MTIME_NS, dir, list_all, pseudo_random, snapshot};
use respaldo::{
    ChunkId, KdfParams, NoProgress, Node, NodeKind, Progress, Repository, RestoreOptions,
};

/// The smallest pack size a repository accepts: restores of a few MiB span several packs.
const SMALL_PACK: u32 = 1024 * 1024;

/// A new encrypted repository in `dir/repo` with 1 MiB packs (the engine's options have no
/// pack size: the store creates it, the engine opens it).
fn small_pack_repository(dir: &Path) -> Repository {
    let location = dir.join("repo");
    let options = chunk_store::InitOptions {
        password: Some("test password".to_string()),
        kdf: KdfParams::insecure_fast(),
        pack_size: SMALL_PACK,
        ..chunk_store::InitOptions::default()
    };
    let backend = std::sync::Arc::new(chunk_store::LocalBackend::new(&location));
    drop(chunk_store::ChunkStore::init(backend, &options, dir.join("init-index.redb")).unwrap());
    Repository::open(&location, Some("test password"), &dir.join("cache")).unwrap()
}

/// Stores `data` as a data blob.
fn store(repo: &Repository, data: &[u8]) -> ChunkId {
    repo.store().add_blob(BlobKind::Data, data).unwrap().id
}

/// A file node made of `chunks`, already stored, with their concatenation.
fn file_of(name: &str, chunks: &[(ChunkId, &[u8])]) -> (Node, Vec<u8>) {
    let mut node = Node::new(name, NodeKind::File);
    node.content = chunks.iter().map(|(id, _)| *id).collect();
    let content: Vec<u8> = chunks
        .iter()
        .flat_map(|(_, data)| data.iter())
        .copied()
        .collect();
    node.size = content.len() as u64;
    node.mode = 0o644;
    node.mtime_ns = MTIME_NS;
    node.uid = nix::unistd::geteuid().as_raw();
    node.gid = nix::unistd::getegid().as_raw();
    (node, content)
}

fn options(target: &Path) -> RestoreOptions {
    RestoreOptions {
        target: target.to_path_buf(),
        ..RestoreOptions::default()
    }
}

/// Number of pack files in the repository of `dir`.
fn pack_count(dir: &Path) -> usize {
    list_all(&dir.join("repo/packs"))
        .iter()
        .filter(|p| p.contains('/'))
        .count()
}

/// Every temporary file of a restore below `root`.
fn temporaries(root: &Path) -> Vec<String> {
    list_all(root)
        .into_iter()
        .filter(|p| p.contains(".respaldo-restore-"))
        .collect()
}

/// The pack file holding blob `id`.
fn pack_path_of(repo: &Repository, dir: &Path, id: &ChunkId) -> (PathBuf, u64, u32, String) {
    let location = repo.store().locate(id).unwrap().unwrap();
    let hex = location.pack.to_hex();
    let path = dir.join("repo/packs").join(&hex[..2]).join(&hex);
    (path, location.offset, location.length, hex)
}

#[test]
fn many_files_sharing_chunks_across_packs_round_trip() {
    let temp = tempfile::tempdir().unwrap();
    let repo = small_pack_repository(temp.path());
    // 48 shared chunks of 40 to 100 KiB (about 3.3 MiB: four packs), stored in order.
    let shared: Vec<Vec<u8>> = (0..48)
        .map(|i| pseudo_random(40_000 + (i * 1_361) % 60_000, 1_000 + i as u64))
        .collect();
    let shared_ids: Vec<ChunkId> = shared.iter().map(|c| store(&repo, c)).collect();
    let mut expected = Vec::new();
    let mut folders = Vec::new();
    for folder in 0..6 {
        let mut nodes = Vec::new();
        for n in 0..40 {
            let i = folder * 40 + n;
            // A unique head, then shared chunks far apart in the store (so in other packs).
            let head = pseudo_random(100 + i * 7, 50_000 + i as u64);
            let head_id = store(&repo, &head);
            let mut chunks: Vec<(ChunkId, &[u8])> = vec![(head_id, head.as_slice())];
            for k in 0..(i % 5) {
                let s = (i * 13 + k * 17) % shared.len();
                chunks.push((shared_ids[s], &shared[s]));
            }
            let name = format!("file-{i:03}");
            let (node, content) = file_of(&name, &chunks);
            expected.push((format!("d{folder}/{name}"), content));
            nodes.push(node);
        }
        folders.push(dir(&repo, &format!("d{folder}"), nodes));
    }
    let entry = snapshot(&repo, folders, MTIME_NS);
    assert!(pack_count(temp.path()) >= 4, "the data spans several packs");

    let target = temp.path().join("target");
    let outcome = repo
        .restore(
            &entry,
            &RestoreOptions {
                verify: true,
                ..options(&target)
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(outcome.files, expected.len() as u64);
    let bytes: usize = expected.iter().map(|(_, c)| c.len()).sum();
    assert_eq!(outcome.bytes, bytes as u64);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    for (path, content) in &expected {
        assert!(
            std::fs::read(target.join(path)).unwrap() == *content,
            "{path} differs"
        );
    }
    assert!(temporaries(&target).is_empty());
    assert_eq!(list_all(&target).len(), expected.len() + 6);
}

#[test]
fn a_chunk_repeated_in_a_file_and_across_files_is_written_everywhere() {
    let temp = tempfile::tempdir().unwrap();
    let repo = common::repository(temp.path());
    let a = pseudo_random(70_000, 1);
    let b = pseudo_random(12_345, 2);
    let c = b"the end".to_vec();
    let (ia, ib, ic) = (store(&repo, &a), store(&repo, &b), store(&repo, &c));
    let (repeats, repeats_content) = file_of(
        "repeats",
        &[(ia, &a), (ib, &b), (ia, &a), (ia, &a), (ic, &c), (ia, &a)],
    );
    let (same, same_content) = file_of("same", &[(ia, &a), (ia, &a)]);
    let (other, other_content) = file_of("other", &[(ic, &c), (ia, &a)]);
    let entry = snapshot(&repo, vec![repeats, same, other], MTIME_NS);

    #[derive(Default)]
    struct Count(Mutex<(u64, u64)>);
    impl Progress for Count {
        fn bytes_done(&self, bytes: u64) {
            self.0.lock().unwrap().0 += bytes;
        }
        fn file_done(&self, _path: &Path) {
            self.0.lock().unwrap().1 += 1;
        }
    }
    let progress = Count::default();
    let target = temp.path().join("target");
    let outcome = repo
        .restore(
            &entry,
            &RestoreOptions {
                verify: true,
                ..options(&target)
            },
            &progress,
        )
        .unwrap();
    assert_eq!(
        std::fs::read(target.join("repeats")).unwrap(),
        repeats_content
    );
    assert_eq!(std::fs::read(target.join("same")).unwrap(), same_content);
    assert_eq!(std::fs::read(target.join("other")).unwrap(), other_content);
    let total = (repeats_content.len() + same_content.len() + other_content.len()) as u64;
    assert_eq!(outcome.bytes, total);
    assert_eq!(*progress.0.lock().unwrap(), (total, 3));
    assert_eq!(list_all(&target), vec!["other", "repeats", "same"]);
}

/// Whether files written with a gap of 4 MiB keep the hole.
fn filesystem_supports_holes(dir: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let path = dir.join("hole-probe");
    let probe = std::fs::File::create(&path).unwrap();
    probe.write_all_at(b"x", 4 << 20).unwrap();
    probe.sync_all().unwrap();
    let sparse = probe.metadata().unwrap().blocks() * 512 < (4 << 20);
    std::fs::remove_file(&path).unwrap();
    sparse
}

#[test]
fn zero_chunks_stay_holes_wherever_they_are() {
    let temp = tempfile::tempdir().unwrap();
    let repo = common::repository(temp.path());
    let zeros = vec![0u8; 1 << 20];
    let data = pseudo_random(5_000, 9);
    let (iz, id) = (store(&repo, &zeros), store(&repo, &data));
    let z: (ChunkId, &[u8]) = (iz, &zeros);
    let d: (ChunkId, &[u8]) = (id, &data);
    // Holes at the start, in the middle and at the end (only the length makes that one).
    let (leading, leading_content) = file_of("leading", &[z, z, z, d]);
    let (middle, middle_content) = file_of("middle", &[d, z, z, z, z, d]);
    let (trailing, trailing_content) = file_of("trailing", &[d, z, z, z, z]);
    let (all_zero, all_zero_content) = file_of("all-zero", &[z, z, z, z]);
    let entry = snapshot(&repo, vec![leading, middle, trailing, all_zero], MTIME_NS);

    let target = temp.path().join("target");
    repo.restore(
        &entry,
        &RestoreOptions {
            verify: true,
            ..options(&target)
        },
        &NoProgress,
    )
    .unwrap();
    let holes = filesystem_supports_holes(temp.path());
    for (name, content) in [
        ("leading", leading_content),
        ("middle", middle_content),
        ("trailing", trailing_content),
        ("all-zero", all_zero_content),
    ] {
        let path = target.join(name);
        assert!(std::fs::read(&path).unwrap() == content, "{name} differs");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), content.len() as u64, "{name}");
        if holes {
            // At most the data chunks and a block or two around them are allocated.
            assert!(
                meta.blocks() * 512 <= 2 * data.len() as u64 + 16 * 4096,
                "{name} is not sparse: {} blocks for {} bytes",
                meta.blocks(),
                meta.len()
            );
        }
    }
    if !holes {
        println!("note: this file system does not keep holes; sparseness not checked");
    }
}

#[derive(Default)]
struct Warnings(Mutex<Vec<PathBuf>>);

impl Progress for Warnings {
    fn warning(&self, path: &Path, _message: &str) {
        self.0.lock().unwrap().push(path.to_path_buf());
    }
}

#[test]
fn a_damaged_blob_fails_its_file_and_leaves_no_temporary_file() {
    let temp = tempfile::tempdir().unwrap();
    let repo = small_pack_repository(temp.path());
    // One pack, read in one go, laid out as: the second chunks of 50 files, the victim's
    // only chunk, the first chunks of the 50 files. When the damaged victim is reached, the
    // 50 files have a temporary file each, half written.
    let seconds: Vec<Vec<u8>> = (0..50).map(|i| pseudo_random(6_000, 100 + i)).collect();
    let firsts: Vec<Vec<u8>> = (0..50).map(|i| pseudo_random(6_000, 200 + i)).collect();
    let second_ids: Vec<ChunkId> = seconds.iter().map(|c| store(&repo, c)).collect();
    let victim_data = pseudo_random(20_000, 300);
    let victim_id = store(&repo, &victim_data);
    let first_ids: Vec<ChunkId> = firsts.iter().map(|c| store(&repo, c)).collect();
    let mut nodes = Vec::new();
    for i in 0..50 {
        let (node, _) = file_of(
            &format!("f{i:02}"),
            &[(first_ids[i], &firsts[i]), (second_ids[i], &seconds[i])],
        );
        nodes.push(node);
    }
    let (victim, _) = file_of("victim", &[(victim_id, &victim_data)]);
    nodes.push(victim);
    let entry = snapshot(&repo, vec![dir(&repo, "d", nodes)], MTIME_NS);

    let (pack, offset, length, hex) = pack_path_of(&repo, temp.path(), &victim_id);
    assert_eq!(
        pack_path_of(&repo, temp.path(), &first_ids[49]).0,
        pack,
        "one pack holds everything"
    );
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[usize::try_from(offset).unwrap() + length as usize / 2] ^= 0x55;
    std::fs::write(&pack, &bytes).unwrap();

    // Restore in place over an older version: files not finished keep their old content.
    let target = temp.path().join("target");
    let folder = target.join("d");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("f00"), b"old content").unwrap();
    std::fs::write(folder.join("victim"), b"old victim").unwrap();

    let warnings = Warnings::default();
    let err = repo
        .restore(&entry, &options(&target), &warnings)
        .unwrap_err();
    assert!(
        err.to_string().contains(&hex),
        "error names the pack: {err}"
    );
    assert!(
        err.to_string()
            .contains(&folder.join("victim").display().to_string()),
        "error names the file it could not restore: {err}"
    );
    let warned = warnings.0.into_inner().unwrap();
    assert_eq!(
        warned,
        vec![folder.join("victim")],
        "a warning names the affected file, and only it"
    );
    assert_eq!(
        temporaries(&target),
        Vec::<String>::new(),
        "no temporary file is left behind"
    );
    assert_eq!(std::fs::read(folder.join("f00")).unwrap(), b"old content");
    assert_eq!(std::fs::read(folder.join("victim")).unwrap(), b"old victim");
}

#[test]
fn a_missing_chunk_fails_before_anything_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let repo = common::repository(temp.path());
    let data = b"present".to_vec();
    let present = store(&repo, &data);
    let (good, _) = file_of("good", &[(present, &data)]);
    let missing = ChunkId::from_bytes([7; 32]);
    let mut bad = good.clone();
    bad.name = b"bad".to_vec();
    bad.content = vec![present, missing];
    let entry = snapshot(&repo, vec![good, bad], MTIME_NS);

    let target = temp.path().join("target");
    let warnings = Warnings::default();
    let err = repo
        .restore(&entry, &options(&target), &warnings)
        .unwrap_err();
    // The error names the file it stopped, and the missing chunk.
    let respaldo::Error::RestoreStopped {
        files,
        more,
        source,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (files.as_slice(), *more),
        ([target.join("bad")].as_slice(), 0)
    );
    assert!(
        matches!(
            **source,
            respaldo::Error::Store(chunk_store::Error::BlobNotFound { id }) if id == missing
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&target.join("bad").display().to_string())
    );
    assert_eq!(warnings.0.into_inner().unwrap(), vec![target.join("bad")]);
    assert!(!target.exists(), "nothing was written");
}

/// Environment variable telling the re-executed test binary to run the body.
const CHILD: &str = "RESPALDO_TEST_LOW_FD_CHILD";

/// Limit of open files of the child: far fewer than the files it restores.
const FD_LIMIT: u32 = 200;

#[test]
fn more_files_than_the_limit_of_open_files() {
    if std::env::var_os(CHILD).is_none() {
        // Run this very test again in a child whose limit of open files is low.
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {FD_LIMIT} && exec \"$0\" --exact \
                 more_files_than_the_limit_of_open_files --nocapture --test-threads 1"
            ))
            .arg(&exe)
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child failed: {status}");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let repo = small_pack_repository(temp.path());
    // 3,000 files of two chunks, all first chunks stored before all second ones: every
    // file's chunks are in two packs, so thousands of files are half written at once.
    let count = 3_000;
    let firsts: Vec<Vec<u8>> = (0..count).map(|i| pseudo_random(1_000, i)).collect();
    let seconds: Vec<Vec<u8>> = (0..count)
        .map(|i| pseudo_random(1_000, 10_000 + i))
        .collect();
    let first_ids: Vec<ChunkId> = firsts.iter().map(|c| store(&repo, c)).collect();
    let second_ids: Vec<ChunkId> = seconds.iter().map(|c| store(&repo, c)).collect();
    let mut folders = Vec::new();
    let mut expected = Vec::new();
    for folder in 0..30 {
        let mut nodes = Vec::new();
        for n in 0..100 {
            let i = folder * 100 + n;
            let name = format!("f{n:02}");
            let (node, content) = file_of(
                &name,
                &[(first_ids[i], &firsts[i]), (second_ids[i], &seconds[i])],
            );
            expected.push((format!("d{folder:02}/{name}"), content));
            nodes.push(node);
        }
        folders.push(dir(&repo, &format!("d{folder:02}"), nodes));
    }
    let entry = snapshot(&repo, folders, MTIME_NS);
    assert!(pack_count(temp.path()) >= 6, "the data spans several packs");

    let target = temp.path().join("target");
    let outcome = repo
        .restore(&entry, &options(&target), &NoProgress)
        .unwrap();
    assert_eq!(outcome.files, count);
    for (path, content) in &expected {
        assert!(
            std::fs::read(target.join(path)).unwrap() == *content,
            "{path} differs"
        );
    }
    assert!(temporaries(&target).is_empty());
}
