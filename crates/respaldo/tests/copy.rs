//! `copy`: snapshots copied between repositories through the library: ids translated between
//! encrypted repositories, the fast path between unencrypted ones, skipped snapshots, only new
//! data stored, filters, parents, a damaged source blob, and incremental copies (only what
//! changed since a copied parent is read; a parent's copy that is missing, incomplete, forged
//! or unrelated never makes the copy wrong).
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

// Incremental copies: a copy of the parent in the destination tells which blobs are there
// already, so that only what changed is read from the source.

/// A tree of about 5.5 MB under `root`: big files in two folders and many small notes.
/// Returns its total size in bytes.
fn big_tree(root: &Path) -> u64 {
    std::fs::create_dir_all(root.join("data/deep")).unwrap();
    std::fs::create_dir_all(root.join("notes")).unwrap();
    let mut total = 0;
    let mut put = |path: &str, bytes: Vec<u8>| {
        total += bytes.len() as u64;
        std::fs::write(root.join(path), bytes).unwrap();
    };
    for i in 0..4 {
        put(&format!("data/{i}.bin"), pseudo_random(1 << 20, 100 + i));
    }
    for i in 0..2 {
        put(
            &format!("data/deep/{i}.bin"),
            pseudo_random(700_000, 200 + i),
        );
    }
    for i in 0..20 {
        put(
            &format!("notes/n{i:02}.txt"),
            format!("note {i}\n").into_bytes(),
        );
    }
    put("notes/today.txt", b"nothing yet\n".to_vec());
    total
}

/// The two repositories of `setup` ("a" with password "one", "b" with "two"), opened again as
/// a new process would.
fn reopen(setup: &Setup) -> (Repository, Repository) {
    let open = |name: &str, password: &str| {
        Repository::open(
            &setup.path(name),
            Some(password),
            &setup.path("cache-again"),
        )
        .unwrap()
    };
    (open("a", "one"), open("b", "two"))
}

fn entry_of(repo: &Repository, id: &respaldo::ChunkId) -> SnapshotEntry {
    entries(repo).into_iter().find(|e| e.id == *id).unwrap()
}

/// Removes the manifest of snapshot `id` from the repository folder `repo`.
fn delete_manifest(repo: &Path, id: &respaldo::ChunkId) {
    std::fs::remove_file(repo.join("snapshots").join(id.to_hex())).unwrap();
}

#[test]
fn a_later_copy_in_a_new_run_reads_only_what_changed() {
    let setup = Setup::new();
    let tree = setup.path("tree");
    let size = big_tree(&tree);
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&tree], 1_000_000_000, &[]);
    let first = copy(&target, &source, &all());
    assert_eq!(first.copied(), 1);
    assert!(first.bytes_read() >= size, "{first:?}");
    drop((source, target));

    let changed = pseudo_random(5_000, 999);
    std::fs::write(tree.join("notes/today.txt"), &changed).unwrap();
    let (source, target) = reopen(&setup);
    let second = backup(&source, &[&tree], 2_000_000_000, &[]);

    // A new run: nothing is remembered but what the destination holds.
    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let outcome = copy(&target, &source, &all());
    assert!(outcome.is_ok());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let copied = &outcome.snapshots[1];
    assert_eq!(copied.source, second.snapshot_id);
    assert!(copied.bytes_read * 10 < size, "{copied:?}");
    assert_eq!(copied.bytes_read, changed.len() as u64, "{copied:?}");

    let copy_entry = entry_of(&target, &copied_id(&outcome, 1));
    assert_eq!(copy_entry.snapshot.parent, Some(entries(&target)[0].id));
    assert_restores(&target, &copy_entry, &tree, &setup.path("restore"));
    check_ok(&target);
}

#[test]
fn an_older_copy_serves_when_the_parent_was_not_copied() {
    let setup = Setup::new();
    let tree = setup.path("tree");
    let size = big_tree(&tree);
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&tree], 1_000_000_000, &[]);
    copy(&target, &source, &all());
    std::fs::write(tree.join("notes/today.txt"), pseudo_random(3_000, 1)).unwrap();
    let middle = backup(&source, &[&tree], 2_000_000_000, &[]);
    std::fs::write(tree.join("notes/n03.txt"), pseudo_random(4_000, 2)).unwrap();
    let newest = backup(&source, &[&tree], 3_000_000_000, &[]);
    assert_eq!(newest.snapshot.parent, Some(middle.snapshot_id));

    // Only the newest: its parent has no copy, the oldest snapshot does.
    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let only_newest = CopyOptions {
        snapshots: vec![newest.snapshot_id.to_hex()],
        ..all()
    };
    let outcome = copy(&target, &source, &only_newest);
    assert_eq!(outcome.copied(), 1, "{outcome:?}");
    let copied = &outcome.snapshots[0];
    assert_eq!(copied.bytes_read, 7_000, "{copied:?}");
    assert!(copied.bytes_read * 10 < size);
    let copy_entry = entry_of(&target, &copied_id(&outcome, 0));
    assert_eq!(
        copy_entry.snapshot.parent, None,
        "its parent was not copied"
    );
    assert_restores(&target, &copy_entry, &tree, &setup.path("restore"));
    check_ok(&target);
}

#[test]
fn without_a_copy_of_the_parent_everything_is_read() {
    let setup = Setup::new();
    let tree = setup.path("tree");
    let size = big_tree(&tree);
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&tree], 1_000_000_000, &[]);
    let first = copy(&target, &source, &all());
    std::fs::write(tree.join("notes/today.txt"), pseudo_random(5_000, 3)).unwrap();
    let second = backup(&source, &[&tree], 2_000_000_000, &[]);
    delete_manifest(&setup.path("b"), &copied_id(&first, 0));

    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let only_second = CopyOptions {
        snapshots: vec![second.snapshot_id.to_hex()],
        ..all()
    };
    let outcome = copy(&target, &source, &only_second);
    assert_eq!(outcome.copied(), 1, "{outcome:?}");
    let copied = &outcome.snapshots[0];
    assert!(copied.bytes_read >= size, "{copied:?}");
    // What the destination had is not stored again.
    assert!(copied.bytes_added < 100_000, "{copied:?}");
    let copy_entry = entry_of(&target, &copied_id(&outcome, 0));
    assert_eq!(copy_entry.snapshot.parent, None);
    assert_restores(&target, &copy_entry, &tree, &setup.path("restore"));
    check_ok(&target);
}

#[test]
fn blobs_missing_from_the_parents_copy_are_read_and_stored_again() {
    let setup = Setup::new();
    let tree = setup.path("tree");
    let size = big_tree(&tree);
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    let original = backup(&source, &[&tree], 1_000_000_000, &[]);
    let first = copy(&target, &source, &all());

    // The pack holding a file's data is lost in the destination; its index forgets it.
    let path = tree.join("data/1.bin");
    let parts: Vec<&[u8]> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes())
        .collect();
    let copy_root = entry_of(&target, &copied_id(&first, 0)).snapshot.tree;
    let node = lookup_path(target.store(), &copy_root, &parts)
        .unwrap()
        .unwrap();
    let pack = target
        .store()
        .locate(&node.content[0])
        .unwrap()
        .unwrap()
        .pack
        .to_hex();
    std::fs::remove_file(setup.path("b").join("packs").join(&pack[..2]).join(&pack)).unwrap();
    target.repair_index(false, &NoProgress).unwrap();
    assert!(!target.store().contains(&node.content[0]).unwrap());
    let in_source = lookup_path(source.store(), &original.snapshot.tree, &parts)
        .unwrap()
        .unwrap();
    assert_eq!(in_source.content.len(), node.content.len());

    std::fs::write(tree.join("notes/today.txt"), pseudo_random(5_000, 4)).unwrap();
    backup(&source, &[&tree], 2_000_000_000, &[]);
    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let outcome = copy(&target, &source, &all());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let copied = &outcome.snapshots[1];
    // At least the lost file, not the whole tree again (unless everything was in that pack).
    assert!(copied.bytes_read >= (1 << 20) + 5_000, "{copied:?}");
    assert!(
        copied.bytes_added >= 1 << 20,
        "the lost data is stored again: {copied:?}"
    );
    assert!(copied.bytes_read <= size + 5_000, "{copied:?}");
    let copy_entry = entry_of(&target, &copied_id(&outcome, 1));
    assert_restores(&target, &copy_entry, &tree, &setup.path("restore"));
}

/// Rewrites, in `repo`, the directory at `parts` below the tree `root` with `edit`, and the
/// trees above it; returns the new root.
fn rewrite_dir(
    repo: &Repository,
    root: &respaldo::ChunkId,
    parts: &[&[u8]],
    edit: &mut dyn FnMut(&mut Vec<respaldo::Node>),
) -> respaldo::ChunkId {
    let mut nodes = snapshot_index::Tree::load(repo.store(), root)
        .unwrap()
        .into_nodes();
    match parts.split_first() {
        None => edit(&mut nodes),
        Some((first, rest)) => {
            let node = nodes.iter_mut().find(|n| n.name == *first).unwrap();
            let below = node.subtree.unwrap();
            node.subtree = Some(rewrite_dir(repo, &below, rest, edit));
        }
    }
    snapshot_index::Tree::new(nodes)
        .unwrap()
        .save(repo.store())
        .unwrap()
}

/// Replaces the destination's copy `genuine` of a snapshot by a forgery: the same manifest,
/// but the tree with the source folder `src` rewritten by `edit`.
fn forge_copy(
    target: &Repository,
    dir: &Path,
    genuine: &respaldo::ChunkId,
    src: &Path,
    edit: &mut dyn FnMut(&mut Vec<respaldo::Node>),
) {
    let genuine_entry = entry_of(target, genuine);
    let parts: Vec<&[u8]> = src
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes())
        .collect();
    let root = rewrite_dir(target, &genuine_entry.snapshot.tree, &parts, edit);
    target.store().flush().unwrap();
    let forged = respaldo::Snapshot {
        tree: root,
        ..genuine_entry.snapshot.clone()
    };
    forged.save(target.store()).unwrap();
    delete_manifest(dir, genuine);
}

/// A data blob of `len` pseudo-random bytes stored in `repo`.
fn fake_blob(repo: &Repository, len: usize, seed: u64) -> respaldo::ChunkId {
    let data = pseudo_random(len, seed);
    repo.store()
        .add_blob(chunk_store::BlobKind::Data, &data)
        .unwrap()
        .id
}

#[test]
fn a_parent_copy_whose_trees_do_not_line_up_is_trusted_only_where_they_do() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    let first = copy(&target, &source, &all());

    // The copy of the parent, forged: `a.bin` has the same metadata and as many chunks, but
    // other data (of other lengths); `sub` is a file; an entry more.
    forge_copy(
        &target,
        &setup.path("b"),
        &copied_id(&first, 0),
        &setup.src,
        &mut |nodes| {
            for node in nodes.iter_mut() {
                if node.name == b"a.bin" {
                    let n = node.content.len();
                    node.content = (0..n)
                        .map(|i| fake_blob(&target, 1_000, 50 + i as u64))
                        .collect();
                }
                if node.name == b"sub" {
                    node.kind = NodeKind::File;
                    node.subtree = None;
                }
            }
            let mut extra = respaldo::Node::new("extra", NodeKind::Symlink);
            extra.link_target = b"a.bin".to_vec();
            nodes.push(extra);
        },
    );

    std::fs::write(setup.src.join("sub/c.txt"), b"changed text\n").unwrap();
    let second = backup(&source, &[&setup.src], 2_000_000_000, &[]);
    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let outcome = copy(&target, &source, &all());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let copied = &outcome.snapshots[1];
    assert_eq!(copied.source, second.snapshot_id);
    // `a.bin` (its chunks do not line up) and what is below `sub` (b-again repeats b.bin's
    // chunks, learned from b.bin) are read; b.bin is not.
    assert_eq!(copied.bytes_read, 300_000 + 13, "{copied:?}");
    let copy_entry = entry_of(&target, &copied_id(&outcome, 1));
    assert_restores(&target, &copy_entry, &setup.src, &setup.path("restore"));
}

#[test]
fn a_parent_copy_that_contradicts_itself_is_not_trusted_at_all() {
    let setup = Setup::new();
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    backup(&source, &[&setup.src], 1_000_000_000, &[]);
    let first = copy(&target, &source, &all());

    // `sub/b-again` (the same chunks as `b.bin` in the source) forged with other data of
    // exactly the same lengths: only the contradiction with `b.bin` can tell.
    let sub = setup.src.join("sub");
    forge_copy(
        &target,
        &setup.path("b"),
        &copied_id(&first, 0),
        &sub,
        &mut |nodes| {
            let node = nodes.iter_mut().find(|n| n.name == b"b-again").unwrap();
            for (i, chunk) in node.content.iter_mut().enumerate() {
                let len = target.store().locate(chunk).unwrap().unwrap().raw_length;
                *chunk = fake_blob(&target, len as usize, 70 + i as u64);
            }
        },
    );

    std::fs::write(setup.src.join("sub/c.txt"), b"changed text\n").unwrap();
    backup(&source, &[&setup.src], 2_000_000_000, &[]);
    let (source, target) = {
        drop((source, target));
        reopen(&setup)
    };
    let outcome = copy(&target, &source, &all());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let copied = &outcome.snapshots[1];
    // Nothing learned: every distinct chunk is read.
    assert_eq!(copied.bytes_read, 300_000 + 200_000 + 13, "{copied:?}");
    let copy_entry = entry_of(&target, &copied_id(&outcome, 1));
    assert_restores(&target, &copy_entry, &setup.src, &setup.path("restore"));
}

#[test]
fn a_destination_snapshot_that_only_shares_the_key_is_not_walked() {
    let setup = Setup::new();
    let tree = setup.path("tree");
    let size = big_tree(&tree);
    let source = setup.repo("a", Some("one"));
    let target = setup.repo("b", Some("two"));
    // The destination's own backup, with the time, host, user, paths and tags of the source's
    // first snapshot: a copy would skip that snapshot, but it is no copy of it.
    backup(&target, &[&tree], 1_000_000_000, &[]);
    backup(&source, &[&tree], 1_000_000_000, &[]);
    std::fs::write(tree.join("notes/today.txt"), pseudo_random(5_000, 6)).unwrap();
    backup(&source, &[&tree], 2_000_000_000, &[]);

    let outcome = copy(&target, &source, &all());
    assert_eq!((outcome.skipped(), outcome.copied()), (1, 1), "{outcome:?}");
    let copied = &outcome.snapshots[1];
    assert!(copied.bytes_read >= size, "{copied:?}");
    let copy_entry = entry_of(&target, &copied_id(&outcome, 1));
    assert_eq!(
        copy_entry.snapshot.parent,
        entries(&target).first().map(|e| e.id)
    );
    assert_restores(&target, &copy_entry, &tree, &setup.path("restore"));
}
