//! `forget`: a retention policy or explicit ids remove exactly the right snapshot manifests,
//! per group; a dry run removes nothing; an empty policy is refused; no data is deleted; a
//! failed deletion reports what was already removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use chunk_store::{FileKind, LocalBackend};
use jiff::tz::TimeZone;
use respaldo::{
    ChunkId, Error, ForgetOptions, GroupBy, InitOptions, KdfParams, KeepReason, LockKind,
    Repository, RetentionPolicy, Snapshot, SnapshotEntry, SnapshotFilter,
};
use snapshot_index::Tree;

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;
/// 2026-11-20T00:00:00Z.
const DAY0: i64 = 1_795_132_800_000_000_000;

/// Saves a snapshot of `tree` taken at `time_ns` on `host`, with `tags`.
fn snapshot_at(
    repo: &Repository,
    tree: ChunkId,
    host: &str,
    tags: &[&str],
    time_ns: i64,
) -> SnapshotEntry {
    repo.store().flush().unwrap();
    let snapshot = Snapshot {
        time_ns,
        utc_offset_s: 0,
        hostname: host.to_string(),
        username: "tester".to_string(),
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        paths: vec!["/home".to_string()],
        tree,
        parent: None,
        program_version: "test".to_string(),
        summary: Default::default(),
    };
    let id = snapshot.save(repo.store()).unwrap();
    SnapshotEntry { id, snapshot }
}

/// A root tree holding one file of `content` (stored), and that file's chunk ids.
fn tree_of(repo: &Repository, name: &str, content: &[u8]) -> (ChunkId, Vec<ChunkId>) {
    let file = common::file(repo, name, &[content]);
    let chunks = file.content.clone();
    let tree = Tree::new(vec![file]).unwrap().save(repo.store()).unwrap();
    (tree, chunks)
}

/// The manifests under `snapshots/`, sorted.
fn manifests(repo: &Repository) -> Vec<String> {
    repo.store().backend().list(FileKind::Snapshot).unwrap()
}

fn hex_sorted(entries: &[&SnapshotEntry]) -> Vec<String> {
    let mut names: Vec<String> = entries.iter().map(|e| e.id.to_hex()).collect();
    names.sort();
    names
}

fn options(policy: RetentionPolicy) -> ForgetOptions {
    ForgetOptions {
        policy,
        time_zone: TimeZone::UTC,
        ..ForgetOptions::default()
    }
}

/// Six snapshots on four days (UTC), oldest first.
fn six_snapshots(repo: &Repository) -> Vec<SnapshotEntry> {
    let (tree, _) = tree_of(repo, "a.txt", b"hello");
    [
        DAY0 + HOUR,
        DAY0 + 5 * HOUR,
        DAY0 + DAY + 2 * HOUR,
        DAY0 + DAY + 10 * HOUR,
        DAY0 + 2 * DAY + 3 * HOUR,
        DAY0 + 3 * DAY + 4 * HOUR,
    ]
    .into_iter()
    .map(|t| snapshot_at(repo, tree, "host-a", &[], t))
    .collect()
}

#[test]
fn keep_last_and_daily_remove_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let s = six_snapshots(&repo);

    let outcome = repo
        .forget(&options(RetentionPolicy {
            keep_last: 1,
            keep_daily: 3,
            ..Default::default()
        }))
        .unwrap();

    // Kept: the newest (last and daily), the newest of day 2 and of day 1.
    assert_eq!(manifests(&repo), hex_sorted(&[&s[3], &s[4], &s[5]]));
    // Removed oldest first.
    assert_eq!(outcome.removed, vec![s[0].id, s[1].id, s[2].id]);
    assert!(!outcome.dry_run);

    assert_eq!(outcome.groups.len(), 1);
    let group = &outcome.groups[0];
    assert_eq!(group.key.host.as_deref(), Some("host-a"));
    assert_eq!(group.key.paths, Some(vec!["/home".to_string()]));
    // Every snapshot of the group, newest first, with its reasons.
    let order: Vec<ChunkId> = group.decisions.iter().map(|(e, _)| e.id).collect();
    assert_eq!(order, s.iter().rev().map(|e| e.id).collect::<Vec<_>>());
    for (entry, decision) in &group.decisions {
        assert_eq!(entry.id, decision.id);
    }
    let (_, newest) = &group.decisions[0];
    assert_eq!(
        newest.reasons,
        [KeepReason::Last, KeepReason::Daily("2026-11-23".into())]
    );
    let (_, day2) = &group.decisions[2];
    assert!(day2.keep);
    assert_eq!(day2.reasons, [KeepReason::Daily("2026-11-21".into())]);
    assert_eq!(group.kept().count(), 3);
    assert_eq!(group.removed().count(), 3);
    assert!(group.removed().all(|(_, d)| d.reasons.is_empty()));

    // Idempotent: the same policy again removes nothing.
    let again = repo
        .forget(&options(RetentionPolicy {
            keep_last: 1,
            keep_daily: 3,
            ..Default::default()
        }))
        .unwrap();
    assert!(again.removed.is_empty());
    assert_eq!(manifests(&repo).len(), 3);
    // The lock is gone once forget returns.
    assert!(repo.locks().unwrap().is_empty());
}

#[test]
fn keep_daily_takes_the_time_zone_into_account() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let (tree, _) = tree_of(&repo, "a.txt", b"hello");
    // 21:30 and 22:30 UTC on 11-20 are one day in UTC, but two in UTC+2 (23:30 on 11-20,
    // 00:30 on 11-21); `c` is two days older.
    let c = snapshot_at(&repo, tree, "h", &[], DAY0 - 2 * DAY + 12 * HOUR);
    let a = snapshot_at(&repo, tree, "h", &[], DAY0 + 21 * HOUR + HOUR / 2);
    let b = snapshot_at(&repo, tree, "h", &[], DAY0 + 22 * HOUR + HOUR / 2);
    let policy = RetentionPolicy {
        keep_daily: 2,
        ..Default::default()
    };

    let mut plus_two = options(policy.clone());
    plus_two.time_zone = TimeZone::fixed(jiff::tz::offset(2));
    plus_two.dry_run = true;
    assert_eq!(repo.forget(&plus_two).unwrap().removed, vec![c.id]);

    let outcome = repo.forget(&options(policy)).unwrap();
    assert_eq!(outcome.removed, vec![a.id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&b, &c]));
}

#[test]
fn dry_run_removes_nothing_and_takes_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let s = six_snapshots(&repo);
    let before = manifests(&repo);

    // An exclusive lock (a prune) blocks a real forget, not a dry run.
    let prune = repo.lock(LockKind::Exclusive, "prune").unwrap();
    let mut opts = options(RetentionPolicy {
        keep_last: 2,
        ..Default::default()
    });
    opts.dry_run = true;
    let outcome = repo.forget(&opts).unwrap();
    assert!(outcome.dry_run);
    assert_eq!(outcome.removed, vec![s[0].id, s[1].id, s[2].id, s[3].id]);
    assert_eq!(manifests(&repo), before);

    opts.dry_run = false;
    let err = repo.forget(&opts).unwrap_err();
    assert!(err.is_locked(), "{err}");
    assert_eq!(manifests(&repo), before);

    drop(prune);
    let outcome = repo.forget(&opts).unwrap();
    assert_eq!(outcome.removed.len(), 4);
    assert_eq!(manifests(&repo), hex_sorted(&[&s[4], &s[5]]));
}

#[test]
fn explicit_ids_and_prefixes_remove_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let s = six_snapshots(&repo);

    let opts = ForgetOptions {
        snapshots: vec![
            s[4].id.to_hex(),
            s[1].id.to_hex()[..8].to_string(),
            // Named twice: removed once.
            s[4].id.to_hex()[..10].to_uppercase(),
        ],
        time_zone: TimeZone::UTC,
        ..ForgetOptions::default()
    };
    let outcome = repo.forget(&opts).unwrap();
    assert_eq!(outcome.removed, vec![s[1].id, s[4].id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&s[0], &s[2], &s[3], &s[5]]));
    // The groups hold only the named snapshots, newest first, each removed.
    assert_eq!(outcome.groups.len(), 1);
    let named: Vec<(ChunkId, bool)> = outcome.groups[0]
        .decisions
        .iter()
        .map(|(e, d)| (e.id, d.keep))
        .collect();
    assert_eq!(named, [(s[4].id, false), (s[1].id, false)]);

    // An unknown id removes nothing at all, even when named with existing ones.
    let before = manifests(&repo);
    let err = repo
        .forget(&ForgetOptions {
            snapshots: vec![s[0].id.to_hex(), "ffffffffffffffff".to_string()],
            ..ForgetOptions::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("ffffffffffffffff"), "{err}");
    assert_eq!(manifests(&repo), before);

    // Ids together with a policy are refused.
    let err = repo
        .forget(&ForgetOptions {
            snapshots: vec![s[0].id.to_hex()],
            policy: RetentionPolicy {
                keep_last: 1,
                ..Default::default()
            },
            ..ForgetOptions::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(manifests(&repo), before);
}

#[test]
fn explicit_ids_resolve_among_filtered_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let (tree, _) = tree_of(&repo, "a.txt", b"hello");
    let a = snapshot_at(&repo, tree, "host-a", &[], DAY0);
    let b = snapshot_at(&repo, tree, "host-b", &[], DAY0 + HOUR);
    let filter = SnapshotFilter {
        hosts: vec!["host-a".to_string()],
        ..SnapshotFilter::default()
    };

    // `latest` among host-a's snapshots is `a`, not the newer `b`.
    let outcome = repo
        .forget(&ForgetOptions {
            snapshots: vec!["latest".to_string()],
            filter: filter.clone(),
            ..ForgetOptions::default()
        })
        .unwrap();
    assert_eq!(outcome.removed, vec![a.id]);

    // `b` does not pass the filter: not found, not removed.
    let err = repo
        .forget(&ForgetOptions {
            snapshots: vec![b.id.to_hex()],
            filter,
            ..ForgetOptions::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("no snapshot matches"), "{err}");
    assert_eq!(manifests(&repo), hex_sorted(&[&b]));
}

#[test]
fn an_empty_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let _ = six_snapshots(&repo);
    let before = manifests(&repo);

    for dry_run in [false, true] {
        let mut opts = options(RetentionPolicy::default());
        opts.dry_run = dry_run;
        let err = repo.forget(&opts).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("no policy was specified, no snapshots will be removed"),
            "{message}"
        );
        assert!(message.contains("--keep-last"), "{message}");
    }
    // A zero keep_within is no rule either.
    let err = repo
        .forget(&options(RetentionPolicy {
            keep_within: Some(std::time::Duration::ZERO),
            ..Default::default()
        }))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(manifests(&repo), before);
    assert!(repo.locks().unwrap().is_empty());
}

#[test]
fn groups_by_host_keep_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let (tree, _) = tree_of(&repo, "a.txt", b"hello");
    let a: Vec<SnapshotEntry> = (0..3)
        .map(|i| snapshot_at(&repo, tree, "host-a", &[], DAY0 + i * HOUR))
        .collect();
    let b: Vec<SnapshotEntry> = (0..2)
        .map(|i| snapshot_at(&repo, tree, "host-b", &[], DAY0 + 10 * HOUR + i * HOUR))
        .collect();
    let keep_last_1 = RetentionPolicy {
        keep_last: 1,
        ..Default::default()
    };

    // One group of everything: only the newest of all (host-b's) is kept.
    let mut single = options(keep_last_1.clone());
    single.group_by = "".parse::<GroupBy>().unwrap();
    single.dry_run = true;
    let outcome = repo.forget(&single).unwrap();
    assert_eq!(outcome.groups.len(), 1);
    assert_eq!(outcome.groups[0].key.to_string(), "all snapshots");
    assert_eq!(outcome.removed.len(), 4);

    // Grouped by host: the newest of each host is kept.
    let mut by_host = options(keep_last_1.clone());
    by_host.group_by = "host".parse().unwrap();
    let outcome = repo.forget(&by_host).unwrap();
    let keys: Vec<String> = outcome.groups.iter().map(|g| g.key.to_string()).collect();
    assert_eq!(keys, ["host host-a", "host host-b"]);
    assert_eq!(outcome.removed, vec![a[0].id, a[1].id, b[0].id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&a[2], &b[1]]));
}

#[test]
fn the_filter_limits_what_is_considered() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let (tree, _) = tree_of(&repo, "a.txt", b"hello");
    let a: Vec<SnapshotEntry> = (0..3)
        .map(|i| snapshot_at(&repo, tree, "host-a", &["nightly"], DAY0 + i * HOUR))
        .collect();
    let b: Vec<SnapshotEntry> = (0..3)
        .map(|i| snapshot_at(&repo, tree, "host-b", &[], DAY0 + i * HOUR))
        .collect();
    let mut opts = options(RetentionPolicy {
        keep_last: 1,
        ..Default::default()
    });
    opts.filter = SnapshotFilter {
        tags: vec!["nightly".to_string()],
        ..SnapshotFilter::default()
    };
    let outcome = repo.forget(&opts).unwrap();
    assert_eq!(outcome.groups.len(), 1);
    assert_eq!(outcome.removed, vec![a[0].id, a[1].id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&a[2], &b[0], &b[1], &b[2]]));

    // keep_tags keeps tagged snapshots in every group.
    let outcome = repo
        .forget(&options(RetentionPolicy {
            keep_tags: vec!["nightly".to_string()],
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(outcome.removed, vec![b[0].id, b[1].id, b[2].id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&a[2]]));
}

#[test]
fn forgotten_data_is_still_readable() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let old_content = common::pseudo_random(200_000, 1);
    let (old_tree, old_chunks) = tree_of(&repo, "old.bin", &old_content);
    let old = snapshot_at(&repo, old_tree, "h", &[], DAY0);
    let (new_tree, _) = tree_of(&repo, "new.bin", &common::pseudo_random(1000, 2));
    let _new = snapshot_at(&repo, new_tree, "h", &[], DAY0 + HOUR);
    let packs = repo.store().backend().list(FileKind::Pack).unwrap();
    let index_files = repo.store().backend().list(FileKind::Index).unwrap();

    let outcome = repo
        .forget(&options(RetentionPolicy {
            keep_last: 1,
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(outcome.removed, vec![old.id]);

    // No pack and no index file was deleted, and the old snapshot's data reads back.
    assert_eq!(repo.store().backend().list(FileKind::Pack).unwrap(), packs);
    assert_eq!(
        repo.store().backend().list(FileKind::Index).unwrap(),
        index_files
    );
    let mut read = Vec::new();
    for id in &old_chunks {
        read.extend(repo.store().get_blob(id).unwrap());
    }
    assert_eq!(read, old_content);
    assert!(Tree::load(repo.store(), &old_tree).is_ok());
}

#[test]
fn a_failed_deletion_reports_what_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    // Fails to delete one chosen snapshot manifest.
    let fail: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let chosen = fail.clone();
    let backend = Arc::new(common::FaultyBackend {
        inner: LocalBackend::new(dir.path().join("repo")),
        fault: move |change: &str, kind: FileKind, name: &str| {
            let chosen = chosen.lock().unwrap();
            (change == "delete" && kind == FileKind::Snapshot && chosen.as_deref() == Some(name))
                .then(|| chunk_store::Error::Io {
                    op: "delete",
                    path: format!("snapshots/{name}").into(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                })
        },
    });
    let init = InitOptions {
        password: Some("test password".to_string()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo =
        Repository::init_with_backend(backend.clone(), &init, &dir.path().join("cache")).unwrap();
    let s = six_snapshots(&repo);
    *fail.lock().unwrap() = Some(s[2].id.to_hex());

    let opts = options(RetentionPolicy {
        keep_last: 2,
        ..Default::default()
    });
    let err = repo.forget(&opts).unwrap_err();
    match &err {
        Error::ForgetIncomplete {
            file,
            removed,
            remaining,
            ..
        } => {
            assert_eq!(file, &format!("snapshots/{}", s[2].id.to_hex()));
            assert_eq!(removed, &vec![s[0].id, s[1].id]);
            assert_eq!(*remaining, 2);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&s[2].id.to_hex()), "{message}");
    assert!(message.contains("already removed 2 snapshots"), "{message}");
    assert!(message.contains(&s[0].id.to_hex()[..8]), "{message}");
    assert!(message.contains(&s[1].id.to_hex()[..8]), "{message}");
    assert!(
        message.contains("2 snapshots it meant to remove are still there"),
        "{message}"
    );
    assert_eq!(manifests(&repo), hex_sorted(&[&s[2], &s[3], &s[4], &s[5]]));
    assert!(repo.locks().unwrap().is_empty(), "the lock was released");

    // Once the cause is gone, running forget again removes the rest.
    *fail.lock().unwrap() = None;
    let outcome = repo.forget(&opts).unwrap();
    assert_eq!(outcome.removed, vec![s[2].id, s[3].id]);
    assert_eq!(manifests(&repo), hex_sorted(&[&s[4], &s[5]]));
}
