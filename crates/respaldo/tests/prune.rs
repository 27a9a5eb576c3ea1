//! Prune: what no snapshot needs goes, what one needs stays readable, whatever the moment a
//! prune is interrupted.
//!
//! The crash test is exhaustive: a prune is cut off at every one of its writes and deletions in
//! turn (a backend that fails every change from the N-th on leaves exactly what a crash at
//! that point leaves on disk); after each, `check --read-data` passes, every remaining
//! snapshot restores byte for byte, and the next prune succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chunk_store::{Backend, FileKind, LocalBackend};
use chunker::CutPoints;
use respaldo::{
    BackupOptions, CheckOptions, NoProgress, PruneOptions, ReadData, Repository, RestoreOptions,
};

const PASSWORD: &str = "test password";

/// A backend that stops changing anything after `budget` changes, as if the process had died
/// there: later writes and deletions fail and leave no trace. `changes` counts the attempts.
fn crash_after(root: PathBuf, budget: usize, changes: Arc<AtomicUsize>) -> Arc<dyn Backend> {
    Arc::new(common::FaultyBackend {
        inner: LocalBackend::new(root),
        fault: move |_: &str, _: FileKind, _: &str| {
            (changes.fetch_add(1, Ordering::SeqCst) >= budget).then(|| chunk_store::Error::Io {
                op: "simulated crash before",
                path: PathBuf::from("change"),
                source: std::io::Error::other("crashed"),
            })
        },
    })
}

/// Files of a source folder: name → content.
type Files = BTreeMap<String, Vec<u8>>;

fn write_files(dir: &Path, files: &Files) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

/// Three versions of a folder: the first shares `keep` with the others and holds `old`, which
/// only it has; forgetting it leaves a pack half unused.
fn versions() -> Vec<Files> {
    let keep = common::pseudo_random(300_000, 1);
    let old = common::pseudo_random(300_000, 2);
    let v1: Files = [("keep", keep.clone()), ("old", old)]
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    let mut v2 = v1.clone();
    v2.remove("old");
    v2.insert("new".to_string(), common::pseudo_random(200_000, 3));
    let mut v3 = v2.clone();
    v3.insert("newer".to_string(), common::pseudo_random(100_000, 4));
    vec![v1, v2, v3]
}

/// A repository in `dir/repo` with one snapshot per version of `dir/src`, the first forgotten
/// (its manifest deleted). Returns the source path and the versions still in snapshots.
fn repository_to_prune(dir: &Path) -> (PathBuf, Vec<Files>) {
    repository_to_prune_in(dir, true)
}

/// [`repository_to_prune`], encrypted or not.
fn repository_to_prune_in(dir: &Path, encrypted: bool) -> (PathBuf, Vec<Files>) {
    let repo = if encrypted {
        common::repository(dir)
    } else {
        Repository::init(
            &dir.join("repo"),
            &respaldo::InitOptions::default(),
            &dir.join("cache"),
        )
        .unwrap()
    };
    let src = dir.join("src");
    let mut ids = Vec::new();
    let all = versions();
    for (i, files) in all.iter().enumerate() {
        write_files(&src, files);
        let outcome = repo
            .backup(
                &BackupOptions {
                    paths: vec![src.clone()],
                    time_ns: Some(1_700_000_000_000_000_000 + i as i64),
                    ..BackupOptions::default()
                },
                &NoProgress,
            )
            .unwrap();
        ids.push(outcome.snapshot_id);
    }
    repo.store()
        .backend()
        .delete(FileKind::Snapshot, &ids[0].to_hex())
        .unwrap();
    (src, all[1..].to_vec())
}

fn open(repo: &Path, cache: &Path) -> Repository {
    Repository::open(repo, Some(PASSWORD), cache).unwrap()
}

/// Restores every snapshot into `scratch` and compares it with the expected versions.
fn assert_snapshots_restore(repo: &Repository, src: &Path, expected: &[Files], scratch: &Path) {
    let catalog = repo.catalog().unwrap();
    assert_eq!(catalog.entries().len(), expected.len());
    for (entry, files) in catalog.entries().iter().zip(expected) {
        let target = scratch.join(entry.id.to_hex());
        repo.restore(
            entry,
            &RestoreOptions {
                target: target.clone(),
                verify: true,
                ..RestoreOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        let restored = target.join(src.strip_prefix("/").unwrap());
        let mut found = Files::new();
        for file in std::fs::read_dir(&restored).unwrap() {
            let file = file.unwrap();
            found.insert(
                file.file_name().to_string_lossy().into_owned(),
                std::fs::read(file.path()).unwrap(),
            );
        }
        assert!(found == *files, "snapshot {} differs after prune", entry.id);
    }
}

fn assert_checks_clean(repo: &Repository) {
    let outcome = repo
        .check(
            &CheckOptions {
                read_data: ReadData::All,
            },
            &NoProgress,
        )
        .unwrap();
    assert!(outcome.is_ok(), "check found {:#?}", outcome.errors);
}

fn pack_count(repo: &Path) -> usize {
    LocalBackend::new(repo).list(FileKind::Pack).unwrap().len()
}

#[test]
fn prune_deletes_and_repacks_what_no_snapshot_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (src, expected) = repository_to_prune(dir.path());
    let repo_dir = dir.path().join("repo");
    let repo = open(&repo_dir, &dir.path().join("cache"));
    // The forgotten file's chunks, as the repository's (keyed) chunker cut it.
    let old = common::pseudo_random(300_000, 2);
    let old_ids: Vec<_> = repo
        .store()
        .chunker()
        .chunk_slice(&old)
        .map(|chunk| repo.store().blob_id(chunk))
        .collect();
    for id in &old_ids {
        assert!(repo.store().contains(id).unwrap());
    }

    let dry = repo
        .prune(
            &PruneOptions {
                dry_run: true,
                ..PruneOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(dry.dry_run);
    assert!(dry.packs_repacked + dry.packs_deleted > 0, "{dry:?}");
    assert!(dry.bytes_freed() >= 300_000, "{dry:?}");
    let before = common::list_all(&repo_dir);
    let outcome = repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
    assert_eq!(
        (
            outcome.packs_deleted,
            outcome.packs_repacked,
            outcome.bytes_freed()
        ),
        (dry.packs_deleted, dry.packs_repacked, dry.bytes_freed()),
        "the dry run announced what prune did"
    );
    assert_ne!(before, common::list_all(&repo_dir));
    assert!(outcome.blobs_unused >= 1, "{outcome:?}");
    for id in &old_ids {
        assert!(
            !repo.store().contains(id).unwrap(),
            "the forgotten file's data is gone"
        );
    }
    assert_checks_clean(&repo);
    assert_snapshots_restore(&repo, &src, &expected, &dir.path().join("restore"));

    // Nothing is left to do.
    let again = repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
    assert_eq!(
        (
            again.packs_deleted,
            again.packs_repacked,
            again.bytes_freed()
        ),
        (0, 0, 0)
    );
}

#[test]
fn a_dry_run_changes_nothing_and_unlimited_max_unused_never_repacks() {
    let dir = tempfile::tempdir().unwrap();
    repository_to_prune(dir.path());
    let repo_dir = dir.path().join("repo");
    let repo = open(&repo_dir, &dir.path().join("cache"));
    let before = common::list_all(&repo_dir);
    repo.prune(
        &PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(before, common::list_all(&repo_dir));

    let outcome = repo
        .prune(
            &PruneOptions {
                max_unused: None,
                dry_run: false,
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(outcome.packs_repacked, 0, "{outcome:?}");
    assert_checks_clean(&repo);
}

#[test]
fn packs_no_index_lists_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let src = dir.path().join("src");
    write_files(&src, &versions()[0]);
    repo.backup(
        &BackupOptions {
            paths: vec![src],
            ..BackupOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    let repo_dir = dir.path().join("repo");
    let packs = pack_count(&repo_dir);
    // A pack without an index file, as an interrupted backup leaves it.
    let backend = LocalBackend::new(&repo_dir);
    let name = backend.list(FileKind::Pack).unwrap()[0].clone();
    let mut bytes = backend.read(FileKind::Pack, &name).unwrap();
    bytes.push(0);
    backend
        .write(
            FileKind::Pack,
            blake3::hash(&bytes).to_hex().as_str(),
            &bytes,
        )
        .unwrap();
    let outcome = repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
    assert_eq!(outcome.packs_unindexed, 1, "{outcome:?}");
    assert_eq!(pack_count(&repo_dir), packs);
    assert_checks_clean(&repo);
}

#[test]
fn prune_refuses_to_run_on_a_damaged_repository_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    repository_to_prune(dir.path());
    let repo_dir = dir.path().join("repo");
    // Remove the index files: every blob the snapshots need is then listed nowhere.
    let backend = LocalBackend::new(&repo_dir);
    for name in backend.list(FileKind::Index).unwrap() {
        backend.delete(FileKind::Index, &name).unwrap();
    }
    let repo = open(&repo_dir, &dir.path().join("cache-2"));
    assert_prune_refuses(&repo, &repo_dir, &["repair"]);
}

/// Asserts that prune fails with a message holding each of `expected`, changing nothing.
fn assert_prune_refuses(repo: &Repository, repo_dir: &Path, expected: &[&str]) {
    let before = common::list_all(repo_dir);
    let err = repo
        .prune(&PruneOptions::default(), &NoProgress)
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("before changing anything"), "{message}");
    for part in expected {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(before, common::list_all(repo_dir));
}

#[test]
fn prune_names_a_damaged_index_file_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    repository_to_prune(dir.path());
    let repo_dir = dir.path().join("repo");
    let backend = LocalBackend::new(&repo_dir);
    let name = backend.list(FileKind::Index).unwrap().remove(0);
    let path = repo_dir.join("index").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    // The cache that absorbed the file intact: the damage is for prune to find.
    let repo = open(&repo_dir, &dir.path().join("cache"));
    assert_prune_refuses(&repo, &repo_dir, &[&name, "repair index"]);
}

/// Copies a folder tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_prune_interrupted_at_any_change_leaves_a_valid_repository() {
    interrupt_prune_at_every_change(true);
}

/// Unencrypted sealing is deterministic: a prune run after one killed between its repack and
/// its deletions writes packs and index files with the very names it is about to delete.
#[test]
fn a_prune_interrupted_at_any_change_leaves_a_valid_unencrypted_repository() {
    interrupt_prune_at_every_change(false);
}

fn interrupt_prune_at_every_change(encrypted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (src, expected) = repository_to_prune_in(dir.path(), encrypted);
    let base = dir.path().join("repo");

    // Count the changes of a whole prune.
    let changes = Arc::new(AtomicUsize::new(0));
    let counting = crash_after(dir.path().join("count"), usize::MAX, changes.clone());
    copy_dir(&base, &dir.path().join("count"));
    let repo =
        Repository::open_with_backend(counting, Some(PASSWORD), &dir.path().join("c0")).unwrap();
    repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
    drop(repo);
    let total = changes.load(Ordering::SeqCst);
    assert!(
        total >= 6,
        "a prune with work to do changes several files: {total}"
    );

    for budget in 0..total {
        let copy = dir.path().join(format!("crash-{budget}"));
        copy_dir(&base, &copy);
        let cache = dir.path().join(format!("cache-{budget}"));
        let crashing = crash_after(copy.clone(), budget, Arc::new(AtomicUsize::new(0)));
        let repo = Repository::open_with_backend(crashing, Some(PASSWORD), &cache).unwrap();
        let result = repo.prune(&PruneOptions::default(), &NoProgress);
        // The last change is the release of the lock, which a crash may also prevent.
        if budget + 1 < total {
            assert!(
                result.is_err(),
                "prune cut off after {budget} change(s) reports an error"
            );
        }
        drop(repo);

        let repo = open(&copy, &cache);
        // The "dead" prune's lock is this process's own: remove it as a user would.
        repo.unlock(true).unwrap();
        assert_checks_clean(&repo);
        assert_snapshots_restore(
            &repo,
            &src,
            &expected,
            &dir.path().join(format!("r-{budget}")),
        );
        repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
        assert_checks_clean(&repo);
        assert_snapshots_restore(
            &repo,
            &src,
            &expected,
            &dir.path().join(format!("r2-{budget}")),
        );
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

#[test]
fn the_index_cache_of_another_process_follows_a_prune() {
    let dir = tempfile::tempdir().unwrap();
    let (src, expected) = repository_to_prune(dir.path());
    let repo_dir = dir.path().join("repo");
    // Two processes, each with its own cache: the second opened before the prune.
    let other = open(&repo_dir, &dir.path().join("cache-other"));
    let pruner = open(&repo_dir, &dir.path().join("cache-pruner"));
    pruner.prune(&PruneOptions::default(), &NoProgress).unwrap();
    drop(pruner);
    // Its lock brings its cache up to date: nothing points into a deleted pack.
    assert_snapshots_restore(&other, &src, &expected, &dir.path().join("restore"));
    let reopened = open(&repo_dir, &dir.path().join("cache-other"));
    assert_checks_clean(&reopened);
}
