//! Locks: shared locks coexist, an exclusive one stands alone, stale locks are told apart and
//! removed by `unlock`, and an operation notices when its lock was taken away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use respaldo::{Error, LockInfo, LockKind, Repository, STALE_AFTER};

fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap()
}

fn lock_info(hostname: &str, pid: u32, refreshed_ns: i64, exclusive: bool) -> LockInfo {
    LockInfo {
        exclusive,
        hostname: hostname.to_string(),
        username: "someone".to_string(),
        pid,
        operation: "backup".to_string(),
        created_ns: refreshed_ns,
        refreshed_ns,
    }
}

/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn lock_files(repo: &Repository) -> usize {
    repo.locks().unwrap().len()
}

#[test]
fn shared_locks_coexist_and_exclude_an_exclusive_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let a = repo.lock(LockKind::Shared, "backup").unwrap();
    let b = repo.lock(LockKind::Shared, "backup").unwrap();
    assert_eq!(lock_files(&repo), 2);

    let err = repo.lock(LockKind::Exclusive, "prune").unwrap_err();
    assert!(err.is_locked(), "{err}");
    let message = err.to_string();
    assert!(message.contains("shared lock locks/"), "{message}");
    assert!(message.contains("backup"), "{message}");
    assert!(message.contains("--retry-lock"), "{message}");
    // The refused lock left nothing behind.
    assert_eq!(lock_files(&repo), 2);

    drop(a);
    drop(b);
    assert_eq!(lock_files(&repo), 0, "dropping a lock removes its file");
    let exclusive = repo.lock(LockKind::Exclusive, "prune").unwrap();
    let err = repo.lock(LockKind::Shared, "backup").unwrap_err();
    assert!(err.to_string().contains("an exclusive lock"), "{err}");
    drop(exclusive);
}

#[test]
fn a_lock_waits_for_a_conflicting_one_to_go_when_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let exclusive = repo.lock(LockKind::Exclusive, "prune").unwrap();
    repo.set_lock_wait(Duration::from_secs(20));
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(exclusive);
        });
        let shared = repo.lock(LockKind::Shared, "backup").unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        drop(shared);
    });
}

#[test]
fn a_lock_of_a_process_gone_from_this_host_is_stale_and_unlock_removes_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let store = repo.store();
    let host = respaldo::hostname();
    let stale_name = store.new_lock_name().unwrap();
    store
        .write_lock(&stale_name, &lock_info(&host, dead_pid(), now_ns(), true))
        .unwrap();
    let alive_name = store.new_lock_name().unwrap();
    store
        .write_lock(
            &alive_name,
            &lock_info(&host, std::process::id(), now_ns(), false),
        )
        .unwrap();

    let locks = repo.locks().unwrap();
    let stale = locks.iter().find(|l| l.name == stale_name).unwrap();
    assert!(
        stale.stale.as_deref().unwrap().contains("no longer runs"),
        "{:?}",
        stale.stale
    );
    assert!(
        locks
            .iter()
            .find(|l| l.name == alive_name)
            .unwrap()
            .stale
            .is_none()
    );

    // A stale lock still blocks, and the message says how to remove it.
    let err = repo.lock(LockKind::Shared, "backup").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("looks stale"), "{message}");
    assert!(message.contains("respaldo unlock"), "{message}");

    let removed = repo.unlock(false).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].name, stale_name);
    assert_eq!(lock_files(&repo), 1, "the live lock stays");
    assert_eq!(repo.unlock(true).unwrap().len(), 1);
    assert_eq!(lock_files(&repo), 0);
}

#[test]
fn a_lock_not_refreshed_for_long_is_stale_whatever_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let store = repo.store();
    let long_ago = now_ns() - i64::try_from(STALE_AFTER.as_nanos()).unwrap() - 60_000_000_000;
    let name = store.new_lock_name().unwrap();
    store
        .write_lock(&name, &lock_info("another-host", 1, long_ago, false))
        .unwrap();
    let recent = store.new_lock_name().unwrap();
    store
        .write_lock(&recent, &lock_info("another-host", 1, now_ns(), false))
        .unwrap();
    let locks = repo.locks().unwrap();
    let old = locks.iter().find(|l| l.name == name).unwrap();
    assert!(
        old.stale.as_deref().unwrap().contains("not been refreshed"),
        "{:?}",
        old.stale
    );
    assert!(
        locks
            .iter()
            .find(|l| l.name == recent)
            .unwrap()
            .stale
            .is_none()
    );
    // Shared locks of others do not block a backup, stale or not.
    drop(repo.lock(LockKind::Shared, "backup").unwrap());
}

#[test]
fn an_unreadable_lock_blocks_until_removed_with_remove_all() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let name = "0".repeat(64);
    repo.store()
        .backend()
        .write(chunk_store::FileKind::Lock, &name, b"not a lock")
        .unwrap();
    let err = repo.lock(LockKind::Shared, "backup").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("unreadable"), "{message}");
    assert!(message.contains(&format!("locks/{name}")), "{message}");
    assert!(message.contains("--remove-all"), "{message}");
    assert!(repo.unlock(false).unwrap().is_empty(), "not provably stale");
    assert_eq!(repo.unlock(true).unwrap().len(), 1);
    drop(repo.lock(LockKind::Exclusive, "prune").unwrap());
}

#[test]
fn an_operation_notices_that_its_lock_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let lock = repo.lock(LockKind::Shared, "backup").unwrap();
    lock.ensure_held().unwrap();
    repo.unlock(true).unwrap();
    match lock.ensure_held() {
        Err(Error::LockLost { lock: file, reason }) => {
            assert!(file.starts_with("locks/"), "{file}");
            assert!(reason.contains("removed"), "{reason}");
        }
        other => panic!("expected a lost lock, got {other:?}"),
    }
}

#[test]
fn a_backup_takes_a_shared_lock_and_is_refused_beside_an_exclusive_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a"), b"hello").unwrap();
    let options = respaldo::BackupOptions {
        paths: vec![source],
        ..Default::default()
    };
    let exclusive = repo.lock(LockKind::Exclusive, "prune").unwrap();
    let err = repo.backup(&options, &respaldo::NoProgress).unwrap_err();
    assert!(err.is_locked(), "{err}");
    assert!(repo.catalog().unwrap().entries().is_empty());
    drop(exclusive);
    repo.backup(&options, &respaldo::NoProgress).unwrap();
    assert_eq!(lock_files(&repo), 0, "the backup released its lock");
}

#[test]
fn a_held_lock_is_refreshed_and_a_removed_one_is_not_brought_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    repo.set_lock_refresh_every(Duration::from_millis(50));
    let lock = repo.lock(LockKind::Shared, "backup").unwrap();
    let name = lock.name().unwrap().to_string();
    let first = repo.store().read_lock(&name).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let later = repo.store().read_lock(&name).unwrap();
    assert!(
        later.refreshed_ns > first.refreshed_ns,
        "the lock was rewritten with a newer time"
    );
    assert_eq!(later.created_ns, first.created_ns);
    lock.ensure_held().unwrap();
    drop(lock);

    // Removed long before its first refresh is due, so that the refresher can only find it
    // gone (rewriting it in between its read and its write is the race `ensure_held` of an
    // exclusive lock guards against).
    repo.set_lock_refresh_every(Duration::from_millis(200));
    let lock = repo.lock(LockKind::Shared, "backup").unwrap();
    let name = lock.name().unwrap().to_string();
    repo.store().remove_lock(&name).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        repo.store().read_lock(&name).unwrap_err().is_not_found(),
        "the refresher does not rewrite a lock someone removed"
    );
    assert!(matches!(lock.ensure_held(), Err(Error::LockLost { .. })));
}

#[test]
fn an_exclusive_lock_notices_another_lock_before_it_deletes_anything() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repository(dir.path());
    let exclusive = repo.lock(LockKind::Exclusive, "prune").unwrap();
    exclusive.ensure_held().unwrap();
    // A lock that appeared meanwhile (a refresher rewriting a lock that `unlock` had removed).
    let store = repo.store();
    let other = store.new_lock_name().unwrap();
    store
        .write_lock(&other, &lock_info("another-host", 1, now_ns(), false))
        .unwrap();
    match exclusive.ensure_held() {
        Err(Error::LockLost { reason, .. }) => {
            assert!(reason.contains("another process"), "{reason}")
        }
        other => panic!("expected a lost lock, got {other:?}"),
    }
}

#[test]
fn without_a_lock_a_read_only_operation_leaves_no_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    repo.set_no_lock(true);
    let guard = repo.read_lock("restore").unwrap();
    assert!(guard.name().is_none());
    guard.ensure_held().unwrap();
    assert_eq!(lock_files(&repo), 0);
    // Writers lock all the same.
    let writer = repo.lock(LockKind::Shared, "backup").unwrap();
    assert_eq!(lock_files(&repo), 1);
    drop(writer);
}
