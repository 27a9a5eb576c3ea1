//! Several processes on one repository at once: backups share it, prune waits for them (with
//! `--retry-lock`) or gives up with exit code 11; the repository stays valid either way.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use super::support;
use crate::util::{Env, code, describe, json, stderr};

/// A source folder under `env`: `files` small files and one MiB of its own, plus the 512 KiB
/// `shared.bin` that every folder holds (so that concurrent backups store the same blobs).
fn source(env: &Env, name: &str, files: usize, seed: u64) -> PathBuf {
    let dir = env.path(name);
    support::make_source(
        &dir,
        files,
        8 << 10,
        &[
            ("own.bin", 1 << 20, 1000 + seed),
            ("shared.bin", 512 << 10, 999),
        ],
        seed,
    );
    dir
}

fn spawn<I, S>(env: &Env, args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    support::command(env, args).spawn().unwrap()
}

fn backup_args<'a>(dir: &'a Path, extra: &'a [&'a str]) -> Vec<&'a OsStr> {
    let mut args = vec![OsStr::new("backup"), OsStr::new("--quiet")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(dir.as_os_str());
    args
}

/// The id of the only snapshot of `dir`.
fn snapshot_of(env: &Env, dir: &Path) -> String {
    let found: Vec<String> = env
        .snapshots()
        .iter()
        .filter(|s| s["paths"][0].as_str() == Some(dir.to_str().unwrap()))
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found.len(), 1, "snapshots of {}: {found:?}", dir.display());
    found[0].clone()
}

/// The repository is valid and every snapshot restores byte for byte; returns how many
/// snapshots there are.
fn assert_valid(env: &Env, ctx: &str) -> usize {
    support::assert_check_read_data(env, ctx);
    let snapshots = support::assert_all_restore(env, ctx);
    let locks = support::names(&env.repo.join("locks"));
    assert!(locks.is_empty(), "{ctx}: locks left behind: {locks:?}");
    snapshots.len()
}

/// Asserts that `out` (a `what` that lost a lock race) exited 11 saying the repository is
/// locked, or 0.
fn assert_won_or_locked(out: &Output, what: &str) {
    match code(out) {
        0 => {}
        11 => assert!(
            stderr(out).contains("locked"),
            "{what} exited 11 without saying the repository is locked:\n{}",
            describe(out)
        ),
        _ => panic!(
            "{what} neither succeeded nor reported the lock:\n{}",
            describe(out)
        ),
    }
}

#[test]
fn four_backups_at_once_into_one_repository() {
    let env = Env::new();
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| source(&env, &format!("src-{i}"), 100, i))
        .collect();
    let started = Instant::now();
    let children: Vec<Child> = dirs
        .iter()
        .map(|d| spawn(&env, backup_args(d, &[])))
        .collect();
    for (dir, child) in dirs.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            code(&out),
            0,
            "backup of {} failed:\n{}",
            dir.display(),
            describe(&out)
        );
    }
    eprintln!("four backups at once took {:?}", started.elapsed());
    assert_eq!(env.snapshots().len(), 4);
    for dir in &dirs {
        snapshot_of(&env, dir);
    }
    assert_eq!(assert_valid(&env, "after four backups at once"), 4);
}

/// A repository with snapshots of `a` and `b`, `a` forgotten; a backup of `c` (new data, and
/// `shared.bin`, whose blobs are in the forgotten backup's pack too) and a prune start together.
fn race(with_retry: bool) -> (Env, Output, Output, PathBuf) {
    let env = Env::new();
    let a = source(&env, "a", 40, 1);
    let b = source(&env, "b", 40, 2);
    env.backup(&[&a]);
    env.backup(&[&b]);
    env.ok(["forget", &snapshot_of(&env, &a)]);
    // Changed data, big enough that the backup holds its lock for a while.
    let c = source(&env, "c", 200, 3);
    support::make_source(&c.join("more"), 0, 0, &[("more.bin", 2 << 20, 33)], 0);

    let retry: &[&str] = if with_retry {
        &["--retry-lock", "60s"]
    } else {
        &[]
    };
    let backup = spawn(&env, backup_args(&c, retry));
    let mut prune_args = vec!["prune", "--quiet"];
    prune_args.extend_from_slice(retry);
    let prune = spawn(&env, prune_args);
    let backup = backup.wait_with_output().unwrap();
    let prune = prune.wait_with_output().unwrap();
    (env, backup, prune, c)
}

#[test]
fn prune_racing_a_backup_waits_with_retry_lock() {
    let (env, backup, prune, c) = race(true);
    assert_eq!(code(&backup), 0, "backup:\n{}", describe(&backup));
    assert_eq!(code(&prune), 0, "prune:\n{}", describe(&prune));
    assert_eq!(assert_valid(&env, "after prune and backup at once"), 2);
    snapshot_of(&env, &c);
    // The prune did its work, whichever ran first: nothing is left to delete.
    let plan = json(&env.ok(["prune", "--dry-run", "--json"]));
    for field in ["packs_deleted", "packs_repacked", "packs_unindexed"] {
        assert_eq!(plan[field], 0, "the prune left {field}: {plan}");
    }
}

#[test]
fn prune_racing_a_backup_without_retry_lock_fails_with_locked() {
    let (env, backup, prune, c) = race(false);
    eprintln!(
        "race without --retry-lock: backup exited {}, prune exited {}",
        code(&backup),
        code(&prune)
    );
    // Both succeed if they did not overlap; otherwise the loser exits 11. Both can lose: each
    // writes its lock before it lists the others, so two processes that write before either
    // lists both see a conflict (the protocol only promises they never both win).
    assert_won_or_locked(&backup, "backup");
    assert_won_or_locked(&prune, "prune");
    let snapshots = assert_valid(&env, "after prune and backup at once");
    assert_eq!(snapshots, if code(&backup) == 0 { 2 } else { 1 });

    // A prune started while the backup surely holds its lock: it must give up, saying so.
    let backup = spawn(&env, backup_args(&c, &["--host", "second"]));
    let waited = Instant::now();
    while support::names(&env.repo.join("locks")).is_empty() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the backup took no lock"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let prune = env.run(["prune"]);
    let mut backup = backup;
    let backup_still_running = backup.try_wait().unwrap().is_none();
    let backup = backup.wait_with_output().unwrap();
    assert_eq!(code(&backup), 0, "backup:\n{}", describe(&backup));
    if backup_still_running {
        assert_eq!(
            code(&prune),
            11,
            "a prune ran while a backup held its lock:\n{}",
            describe(&prune)
        );
        let err = stderr(&prune);
        assert!(
            err.contains("locked") && err.contains("held by backup"),
            "{err}"
        );
    } else {
        eprintln!("the backup finished before the prune looked: nothing to assert about it");
        assert_won_or_locked(&prune, "prune");
    }
    assert_valid(&env, "after a prune during a backup");
}
