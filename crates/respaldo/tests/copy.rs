//! `copy`: snapshots copied between repositories through the library: ids translated between
//! encrypted repositories, the fast path between unencrypted ones, skipped snapshots, only new
//! data stored, filters, parents, and a damaged source blob.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{list_all, pseudo_random};
use respaldo::{
    BackupOptions, BackupOutcome, CheckOptions, CopyOptions, CopyOutcome, CopyStatus, InitOptions,
    KdfParams, NoProgress, ReadData, Repository, RestoreOptions, SnapshotEntry, SnapshotFilter,
};
use snapshot_index::{NodeKind, lookup_path};

/// A folder with a source tree and room for two repositories and restores.
struct Setup {
    dir: tempfile::TempDir,
    src: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.bin"), pseudo_random(300_000, 1)).unwrap();
        std::fs::write(src.join("b.bin"), pseudo_random(200_000, 2)).unwrap();
        std::fs::write(src.join("sub/c.txt"), b"small text file\n").unwrap();
        std::fs::write(src.join("sub/empty"), b"").unwrap();
        std::os::unix::fs::symlink("a.bin", src.join("link")).unwrap();
        std::fs::hard_link(src.join("b.bin"), src.join("sub/b-again")).unwrap();
        Self { dir, src }
    }

    /// A new repository `name` (encrypted with `password`, or unencrypted).
    fn repo(&self, name: &str, password: Option<&str>) -> Repository {
        let options = InitOptions {
            password: password.map(str::to_string),
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        };
        Repository::init(&self.path(name), &options, &self.path("cache")).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Backs up `paths` at `time_ns` with `tags` and `host`.
fn backup(repo: &Repository, paths: &[&Path], time_ns: i64, tags: &[&str]) -> BackupOutcome {
    let options = BackupOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        time_ns: Some(time_ns),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        host: Some("host-a".to_string()),
        ..BackupOptions::default()
    };
    repo.backup(&options, &NoProgress).unwrap()
}

fn copy(target: &Repository, source: &Repository, options: &CopyOptions) -> CopyOutcome {
    target.copy_from(source, options, &NoProgress).unwrap()
}

fn all() -> CopyOptions {
    CopyOptions::default()
}

/// Every file under `packs/` of the repository folder `repo` (none before the first pack).
fn packs(repo: &Path) -> Vec<String> {
    let dir = repo.join("packs");
    if dir.exists() {
        list_all(&dir)
    } else {
        Vec::new()
    }
}

fn entries(repo: &Repository) -> Vec<SnapshotEntry> {
    repo.catalog().unwrap().entries().to_vec()
}

fn copied_id(outcome: &CopyOutcome, index: usize) -> respaldo::ChunkId {
    match &outcome.snapshots[index].status {
        CopyStatus::Copied { target } => *target,
        other => panic!("snapshot {index} was not copied: {other:?}"),
    }
}

/// Restores `entry` of `repo` into `dir` and asserts that `src` came back byte for byte.
fn assert_restores(repo: &Repository, entry: &SnapshotEntry, src: &Path, dir: &Path) {
    let options = RestoreOptions {
        target: dir.to_path_buf(),
        verify: true,
        ..RestoreOptions::default()
    };
    repo.restore(entry, &options, &NoProgress).unwrap();
    let restored = dir.join(src.strip_prefix("/").unwrap());
    assert_eq!(list_all(&restored), list_all(src));
    for name in list_all(src) {
        let (a, b) = (src.join(&name), restored.join(&name));
        let meta = std::fs::symlink_metadata(&a).unwrap();
        if meta.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&a).unwrap(),
                std::fs::read_link(&b).unwrap()
            );
        } else if meta.is_file() {
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{name}"
            );
        }
    }
}

fn check_ok(repo: &Repository) {
    let options = CheckOptions {
        read_data: ReadData::All,
    };
    let outcome = repo.check(&options, &NoProgress).unwrap();
    assert!(outcome.is_ok(), "{:?}", outcome.errors);
}

#[test]
fn encrypted_to_encrypted_translates_ids_and_restores_byte_for_byte() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("source password"));
    let target = setup.repo("b", Some("another password"));
    let original = backup(&source, &[&setup.src], 1_000_000_000, &["daily"]);

    let outcome = copy(&target, &source, &all());
    assert!(outcome.is_ok());
    assert!(!outcome.same_ids, "keyed ids must differ");
    assert_eq!(outcome.copied(), 1);
    assert!(outcome.blobs_added() > 0 && outcome.bytes_added() > 0);
    assert!(outcome.bytes_read() >= 500_000, "{outcome:?}");
    let id = copied_id(&outcome, 0);

    let copies = entries(&target);
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_eq!(copy.id, id);
    let (a, b) = (&original.snapshot, &copy.snapshot);
    assert_ne!(
        a.tree, b.tree,
        "the tree ids of two encrypted repositories differ"
    );
    assert_eq!(
        (a.time_ns, a.utc_offset_s, &a.hostname, &a.username),
        (b.time_ns, b.utc_offset_s, &b.hostname, &b.username)
    );
    assert_eq!((&a.tags, &a.paths), (&b.tags, &b.paths));
    assert_eq!(
        (&a.summary, &a.program_version),
        (&b.summary, &b.program_version)
    );
    assert_eq!(b.parent, None);

    // The file's chunks have other ids in the destination, and each id is the destination's.
    let components: Vec<Vec<u8>> = setup
        .src
        .join("a.bin")
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes().to_vec())
        .collect();
    let parts: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
    let in_source = lookup_path(source.store(), &a.tree, &parts)
        .unwrap()
        .unwrap();
    let in_target = lookup_path(target.store(), &b.tree, &parts)
        .unwrap()
        .unwrap();
    assert_eq!(in_target.kind, NodeKind::File);
    assert_eq!(in_source.content.len(), in_target.content.len());
    for (s, t) in in_source.content.iter().zip(&in_target.content) {
        assert_ne!(s, t);
        let data = target.store().get_blob(t).unwrap();
        assert_eq!(target.store().blob_id(&data), *t);
        assert_eq!(source.store().get_blob(s).unwrap(), data);
    }

    assert_restores(&target, copy, &setup.src, &setup.path("restore"));
    check_ok(&target);
}

#[test]
fn unencrypted_to_unencrypted_keeps_ids_and_reads_only_what_is_missing() {
    let setup = Setup::new();
    let source = setup.repo("a", None);
    let target = setup.repo("b", None);
    let first = backup(&source, &[&setup.src], 1_000_000_000, &[]);
    std::fs::write(setup.src.join("new.bin"), pseudo_random(100_000, 9)).unwrap();
    let second = backup(&source, &[&setup.src], 2_000_000_000, &[]);

    let only_first = CopyOptions {
        snapshots: vec![first.snapshot_id.to_hex()[..8].to_string()],
        ..all()
    };
    let outcome = copy(&target, &source, &only_first);
    assert!(outcome.same_ids);
    assert_eq!(outcome.copied(), 1);
    assert_eq!(entries(&target)[0].snapshot.tree, first.snapshot.tree);

    // The second snapshot's old chunks are in the destination already: only the new file is
    // read from the source.
    let outcome = copy(&target, &source, &all());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let second_copy = &outcome.snapshots[1];
    assert_eq!(second_copy.source, second.snapshot_id);
    assert_eq!(second_copy.bytes_read, 100_000, "{second_copy:?}");
    let copies = entries(&target);
    assert_eq!(copies[1].snapshot.tree, second.snapshot.tree);
    // Its parent was copied too: the copy's parent is the first copy.
    assert_eq!(second.snapshot.parent, Some(first.snapshot_id));
    assert_eq!(copies[1].snapshot.parent, Some(copies[0].id));

    assert_restores(&target, &copies[1], &setup.src, &setup.path("restore"));
    check_ok(&target);
}

#[test]
fn a_second_copy_copies_nothing() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    backup(&source, &[&setup.src.join("sub")], 2_000_000_000, &["x"]);
    let outcome = copy(&target, &source, &all());
    assert_eq!(outcome.copied(), 2);

    let packs_before = packs(&setup.path("b"));
    let index_before = list_all(&setup.path("b").join("index"));
    let outcome = copy(&target, &source, &all());
    assert!(outcome.is_ok());
    assert_eq!((outcome.copied(), outcome.skipped()), (0, 2), "{outcome:?}");
    assert_eq!(outcome.blobs_added(), 0);
    assert_eq!(outcome.bytes_read(), 0);
    assert_eq!(packs(&setup.path("b")), packs_before);
    assert_eq!(list_all(&setup.path("b").join("index")), index_before);
    assert_eq!(entries(&target).len(), 2);
    for (copied, existing) in outcome.snapshots.iter().zip(entries(&target)) {
        assert_eq!(
            copied.status,
            CopyStatus::Skipped {
                existing: existing.id
            }
        );
    }
}

#[test]
fn a_second_snapshot_adds_only_the_changed_data() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    std::fs::write(setup.src.join("b.bin"), pseudo_random(200_000, 77)).unwrap();
    let second = backup(&source, &[&setup.src], 2_000_000_000, &[]);

    let first_only = CopyOptions {
        snapshots: vec![entries(&source)[0].id.to_hex()],
        ..all()
    };
    let first = copy(&target, &source, &first_only);
    assert_eq!(first.copied(), 1);
    let later = copy(&target, &source, &all());
    assert_eq!((later.skipped(), later.copied()), (1, 1));
    let (one, two) = (&first.snapshots[0], &later.snapshots[1]);
    assert_eq!(two.source, second.snapshot_id);
    // The changed file (200 KB of 516 KB), plus a few trees.
    assert!(
        two.bytes_added * 2 < one.bytes_added,
        "first {one:?}\nsecond {two:?}"
    );
    assert!(two.bytes_added > 150_000, "{two:?}");
    assert!(two.blobs_reused > 0, "{two:?}");
    let copies = entries(&target);
    assert_eq!(copies[1].snapshot.parent, Some(copies[0].id));
    assert_restores(&target, &copies[1], &setup.src, &setup.path("restore"));
}

#[test]
fn filters_and_names_select_snapshots_and_dry_run_writes_nothing() {
    let setup = Setup::new();
    let source = setup.repo("a", None);
    let target = setup.repo("b", Some("pw"));
    let sub = setup.src.join("sub");
    let tagged = backup(&source, &[&sub], 1_000_000_000, &["keep"]);
    let plain = backup(&source, &[&setup.src], 2_000_000_000, &[]);
    let newest = backup(&source, &[&sub], 3_000_000_000, &["keep", "new"]);

    let dry = CopyOptions {
        dry_run: true,
        ..all()
    };
    let outcome = copy(&target, &source, &dry);
    assert!(outcome.dry_run);
    assert_eq!(outcome.snapshots.len(), 3);
    assert!(
        outcome
            .snapshots
            .iter()
            .all(|s| s.status == CopyStatus::WouldCopy)
    );
    assert!(entries(&target).is_empty());
    assert!(packs(&setup.path("b")).is_empty());

    let by_tag = CopyOptions {
        filter: SnapshotFilter {
            tags: vec!["keep".to_string()],
            ..SnapshotFilter::default()
        },
        ..all()
    };
    let outcome = copy(&target, &source, &by_tag);
    let sources: Vec<_> = outcome.snapshots.iter().map(|s| s.source).collect();
    assert_eq!(sources, vec![tagged.snapshot_id, newest.snapshot_id]);
    assert_eq!(outcome.copied(), 2);
    // The parent of the newest (the tagged one, same paths) was copied too.
    assert_eq!(newest.snapshot.parent, Some(tagged.snapshot_id));
    let copies = entries(&target);
    assert_eq!(copies[1].snapshot.parent, Some(copies[0].id));

    let by_path = CopyOptions {
        filter: SnapshotFilter {
            paths: vec![setup.src.to_string_lossy().into_owned()],
            ..SnapshotFilter::default()
        },
        dry_run: true,
        ..all()
    };
    let outcome = copy(&target, &source, &by_path);
    let sources: Vec<_> = outcome.snapshots.iter().map(|s| s.source).collect();
    assert_eq!(sources, vec![plain.snapshot_id]);

    let latest = CopyOptions {
        snapshots: vec!["latest".to_string()],
        ..all()
    };
    let outcome = copy(&target, &source, &latest);
    assert_eq!(outcome.snapshots.len(), 1);
    assert_eq!(outcome.skipped(), 1, "the newest is already there");

    let host = CopyOptions {
        filter: SnapshotFilter {
            hosts: vec!["another-host".to_string()],
            ..SnapshotFilter::default()
        },
        ..all()
    };
    assert!(copy(&target, &source, &host).snapshots.is_empty());

    let missing = CopyOptions {
        snapshots: vec!["ffffffff".to_string()],
        ..all()
    };
    let err = target
        .copy_from(&source, &missing, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("ffffffff"), "{err}");
    assert_eq!(entries(&target).len(), 2);
}

/// Overwrites the middle of the sealed blob `id` of `repo` (folder `dir`); returns its pack.
fn damage_blob(repo: &Repository, dir: &Path, id: &respaldo::ChunkId) -> String {
    let location = repo.store().locate(id).unwrap().unwrap();
    let name = location.pack.to_hex();
    let file = dir.join("packs").join(&name[..2]).join(&name);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = (location.offset + u64::from(location.length) / 2) as usize;
    for byte in &mut bytes[middle..middle + 8] {
        *byte ^= 0x5a;
    }
    std::fs::write(&file, bytes).unwrap();
    name
}

#[test]
fn a_damaged_source_blob_fails_its_snapshot_only() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    let damaged_dir = setup.path("damaged");
    std::fs::create_dir(&damaged_dir).unwrap();
    std::fs::write(damaged_dir.join("victim.bin"), pseudo_random(150_000, 5)).unwrap();
    let damaged = backup(&source, &[&damaged_dir], 1_000_000_000, &[]);
    let intact = backup(&source, &[&setup.src], 2_000_000_000, &[]);

    let path = damaged_dir.join("victim.bin");
    let parts: Vec<&[u8]> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes())
        .collect();
    let node = lookup_path(source.store(), &damaged.snapshot.tree, &parts)
        .unwrap()
        .unwrap();
    let pack = damage_blob(&source, &setup.path("a"), &node.content[0]);

    let outcome = copy(&target, &source, &all());
    assert!(!outcome.is_ok());
    assert_eq!((outcome.failed(), outcome.copied()), (1, 1), "{outcome:?}");
    let failed = &outcome.snapshots[0];
    assert_eq!(failed.source, damaged.snapshot_id);
    let CopyStatus::Failed { error } = &failed.status else {
        panic!("{failed:?}");
    };
    let short = &damaged.snapshot_id.to_hex()[..8];
    assert!(error.contains(short), "{error}");
    assert!(
        error.contains(&path.to_string_lossy().into_owned()),
        "{error}"
    );
    assert!(error.contains(&pack), "{error}");
    assert_eq!(outcome.snapshots[1].source, intact.snapshot_id);

    // Only the intact snapshot is in the destination, and the destination is sound.
    let copies = entries(&target);
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].snapshot.time_ns, 2_000_000_000);
    check_ok(&target);
    assert_restores(&target, &copies[0], &setup.src, &setup.path("restore"));
}

#[test]
fn copy_into_the_same_repository_is_refused() {
    let setup = Setup::new();
    let source = setup.repo("a", None);
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    let again = Repository::open(&setup.path("a"), None, &setup.path("cache2")).unwrap();
    let err = source.copy_from(&again, &all(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("same repository"), "{err}");
}

#[test]
fn events_announce_the_copy() {
    use std::sync::{Arc, Mutex};
    let setup = Setup::new();
    let source = setup.repo("a", None);
    let mut target = setup.repo("b", None);
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    target.add_event_sink(Arc::new(respaldo::FnSink::new(
        move |e: &respaldo::Event| {
            sink.lock().unwrap().push(e.clone());
        },
    )));
    copy(&target, &source, &all());
    let seen = seen.lock().unwrap();
    let names: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, vec!["EVT_COPY_STARTED", "EVT_COPY_COMPLETED"]);
    assert!(seen[1].bytes_added.unwrap() > 0);
    assert_eq!(seen[1].problems, Some(0));
}
