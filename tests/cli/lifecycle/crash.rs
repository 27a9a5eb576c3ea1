//! Crash safety, process by process: a `backup` or a `prune` killed with SIGKILL at a random
//! moment leaves a repository that `unlock` frees, `check --read-data` passes, whose snapshots
//! all restore byte for byte, and where the next `backup` or `prune` succeeds.
//!
//! Each crash point starts from a copy of the same template repository (and an empty index
//! cache), so every point is the same operation cut off at a different moment: the delay is
//! drawn uniformly from `[0, D]`, `D` being how long the uninterrupted operation took.
//! `RESPALDO_CRASH_POINTS` (default 20) sets how many points; `RESPALDO_CRASH_SEED` repeats the
//! delays of a run (each test prints its seed). `tests/crash-long.sh` runs many more points.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

use super::support::{self, Prng};
use crate::util::{Env, code, describe, json, summary_line};

/// Which fields of a dry-run prune describe a settled repository (nothing left to do).
const SETTLED: [&str; 6] = [
    "snapshots",
    "blobs_used",
    "blobs_unused",
    "packs_deleted",
    "packs_repacked",
    "packs_unindexed",
];

#[test]
fn backup_killed_at_random_points_leaves_a_valid_repository() {
    let points = support::crash_points();
    let seed = support::crash_seed("backup crash");
    let mut rng = Prng::new(seed);

    // The template: one snapshot of `a`. Every crash point backs up `a` (unchanged: all of it
    // deduplicated) and `b` (new: a few hundred small files and two multi-MiB ones).
    let base = Env::new();
    let a = base.path("a");
    support::make_source(&a, 100, 8 << 10, &[("a-big.bin", 512 << 10, 11)], 1);
    let b = base.path("b");
    support::make_source(
        &b,
        250,
        8 << 10,
        &[("b-big-1.bin", 2 << 20, 21), ("b-big-2.bin", 3 << 19, 22)],
        2,
    );
    base.backup(&[&a]);
    let first = support::ids(&base.snapshots());
    assert_eq!(first.len(), 1);
    let template_index = support::names(&base.repo.join("index"));
    let backup = [
        OsStr::new("backup"),
        OsStr::new("--json"),
        a.as_os_str(),
        b.as_os_str(),
    ];

    // The uninterrupted backup: how long it takes, and what it adds.
    let (full, full_added) = {
        let env = support::copy_env(&base);
        let (out, took) = support::timed(support::command(&env, backup));
        assert_eq!(code(&out), 0, "{}", describe(&out));
        (took, summary_line(&out)["bytes_added"].as_u64().unwrap())
    };
    eprintln!("backup crash: the uninterrupted backup takes {full:?} and adds {full_added} bytes");

    let (mut killed, mut with_lock, mut with_index) = (0, 0, 0);
    for point in 0..points {
        let delay = rng.up_to(full);
        let env = support::copy_env(&base);
        let crash = support::crash(support::command(&env, backup), delay);
        let ctx = format!(
            "backup crash point {point} (seed {seed}, killed after {delay:?} of {full:?}, pid {})",
            crash.pid
        );
        if crash.killed {
            killed += 1;
        } else {
            assert_eq!(code(&crash.out), 0, "{ctx}: {}", describe(&crash.out));
        }

        // The lock it left (if it had one) is stale, still blocks prune, and unlock removes it.
        let left = support::names(&env.repo.join("locks"));
        if !left.is_empty() {
            with_lock += 1;
            support::assert_stale_lock_blocks(&env, &[OsStr::new("prune")], crash.pid, &ctx);
        }
        support::assert_unlock_removes_dead_locks(&env, crash.pid, &left, &ctx);

        support::assert_check_read_data(&env, &ctx);
        let before = support::assert_all_restore(&env, &ctx);
        assert!(
            support::ids(&before).is_superset(&first),
            "{ctx}: the template's snapshot is gone"
        );
        // An index file of the killed backup made it: the next backup must reuse its blobs.
        let indexed = support::names(&env.repo.join("index")) != template_index;
        with_index += usize::from(indexed);

        let out = env.run(backup);
        assert_eq!(
            code(&out),
            0,
            "{ctx}: the next backup failed:\n{}",
            describe(&out)
        );
        let added = summary_line(&out)["bytes_added"].as_u64().unwrap();
        assert!(
            added <= full_added,
            "{ctx}: the next backup added {added} bytes, more than a whole one ({full_added})"
        );
        if indexed {
            assert!(
                added < full_added,
                "{ctx}: the killed backup's index file was written, yet the next backup \
                 reused nothing ({added} bytes added)"
            );
        }
        let after = env.snapshots();
        assert_eq!(after.len(), before.len() + 1, "{ctx}");
        if added < full_added {
            // It reused what the killed backup stored: restore it all.
            support::assert_restores(&env, after.last().unwrap(), &ctx);
        } else {
            // It stored everything itself (as after a kill that stored nothing): its blobs
            // must at least be where the index says.
            let out = env.run(["check"]);
            assert_eq!(
                code(&out),
                0,
                "{ctx}: check after the next backup:\n{}",
                describe(&out)
            );
        }
        eprintln!(
            "{ctx}: {}, lock left: {}, index file written: {indexed}, next backup added \
             {added} of {full_added} bytes",
            if crash.killed {
                "killed"
            } else {
                "finished first"
            },
            !left.is_empty(),
        );
    }
    eprintln!(
        "backup crash: seed {seed}: {killed} of {points} killed, {with_lock} left a lock, \
         {with_index} left an index file"
    );
    // How many kills land in time depends on the machine's load, which a test must not
    // depend on: a thin run is reported, not failed (each point above was checked in full).
    if killed * 2 < points {
        eprintln!("warning: most backups finished before their kill: this run tested little");
    }
    if points >= 10 && with_lock == 0 {
        eprintln!("warning: no killed backup left a lock (seed {seed}): unlock was not exercised");
    }
}

/// A repository to prune, in `env` (already initialised), and the snapshots that stay.
///
/// Eighteen snapshots, each of its own folder, sixteen of them forgotten, so that prune does
/// every kind of work and spends much of its time changing the repository (where a crash
/// matters), not only reading it:
/// - `old` (forgotten) shares `common.bin` with `keep-a`: its data pack is repacked, alone;
/// - `gone-0` to `gone-11` (forgotten) hold only their own data: their packs and index files
///   are deleted;
/// - `half-0` to `half-2` (forgotten) hold only data that `keep-b` holds too: their data packs
///   stay, their tree packs go, so their index files are replaced.
fn prune_template(env: &Env) -> Vec<String> {
    let common = ("common.bin", 256 << 10, 100);
    let shared: Vec<(String, usize, u64)> = (0..3)
        .map(|j| (format!("shared-{j}.bin"), 128 << 10, 300 + j))
        .collect();
    let shared: Vec<(&str, usize, u64)> = shared
        .iter()
        .map(|(n, s, x)| (n.as_str(), *s, *x))
        .collect();
    let mut forgotten = Vec::new();
    let backup = |name: &str, files: usize, big: &[(&str, usize, u64)], seed: u64| {
        let dir = env.path(name);
        support::make_source(&dir, files, 4 << 10, big, seed);
        env.backup(&[&dir])["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    forgotten.push(backup("old", 10, &[common, ("old.bin", 192 << 10, 101)], 1));
    let keep_a = backup("keep-a", 30, &[common], 2);
    for i in 0..12 {
        forgotten.push(backup(
            &format!("gone-{i}"),
            3,
            &[("own.bin", 64 << 10, 200 + i)],
            10 + i,
        ));
    }
    for (j, file) in shared.iter().enumerate() {
        forgotten.push(backup(&format!("half-{j}"), 0, &[*file], 0));
    }
    let mut big = shared.clone();
    big.push(("new.bin", 256 << 10, 400));
    let keep_b = backup("keep-b", 10, &big, 3);

    let mut args = vec!["forget".to_string(), "--quiet".to_string()];
    args.extend(forgotten);
    env.ok(&args);
    vec![keep_a, keep_b]
}

#[test]
fn prune_killed_at_random_points_leaves_a_valid_repository() {
    prune_crash_test(Env::new(), "prune crash");
}

#[test]
fn prune_killed_at_random_points_leaves_a_valid_unencrypted_repository() {
    prune_crash_test(Env::unencrypted(), "unencrypted prune crash");
}

/// Kills `prune` at random points of a copy of the [`prune_template`] built in `base`; after
/// each: unlock, check, restore, prune again, check.
fn prune_crash_test(base: Env, name: &str) {
    let points = support::crash_points();
    let seed = support::crash_seed(name);
    let mut rng = Prng::new(seed);
    let kept = prune_template(&base);
    let kept: BTreeSet<String> = kept.into_iter().collect();
    let keep_a = base.path("keep-a");
    let point_env = || support::copy_env(&base);

    // The uninterrupted prune: how long it takes, that it does every kind of work, and what a
    // dry run says once it is done.
    let (full, done) = {
        let env = point_env();
        let (out, took) = support::timed(support::command(&env, ["prune", "--json"]));
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let outcome = json(&out);
        for field in [
            "packs_repacked",
            "packs_deleted",
            "index_files_replaced",
            "index_files_written",
        ] {
            assert!(
                outcome[field].as_u64().unwrap() > 0,
                "the prune to crash does no {field}: {outcome}"
            );
        }
        eprintln!("{name}: the uninterrupted prune takes {took:?}: {outcome}");
        let settled = settled(&env);
        for field in ["packs_deleted", "packs_repacked", "packs_unindexed"] {
            assert_eq!(
                settled[field], 0,
                "a finished prune leaves {field}: {settled}"
            );
        }
        (took, settled)
    };

    let (mut killed, mut with_lock, mut changed) = (0, 0, 0);
    for point in 0..points {
        let delay = rng.up_to(full);
        let env = point_env();
        let crash = support::crash(support::command(&env, ["prune", "--json"]), delay);
        let ctx = format!(
            "{name} point {point} (seed {seed}, killed after {delay:?} of {full:?}, pid {})",
            crash.pid
        );
        if crash.killed {
            killed += 1;
        } else {
            assert_eq!(code(&crash.out), 0, "{ctx}: {}", describe(&crash.out));
        }

        let left = support::names(&env.repo.join("locks"));
        if !left.is_empty() {
            with_lock += 1;
            // An exclusive lock, even stale, keeps a backup out.
            let args = [OsStr::new("backup"), keep_a.as_os_str()];
            support::assert_stale_lock_blocks(&env, &args, crash.pid, &ctx);
        }
        support::assert_unlock_removes_dead_locks(&env, crash.pid, &left, &ctx);

        support::assert_check_read_data(&env, &ctx);
        let remaining = support::assert_all_restore(&env, &ctx);
        assert_eq!(support::ids(&remaining), kept, "{ctx}: snapshots changed");
        // Whether the killed prune had changed anything yet.
        let touched = !same_files(&base.repo, &env.repo);
        changed += usize::from(touched);

        let out = env.run(["prune", "--json"]);
        assert_eq!(
            code(&out),
            0,
            "{ctx}: the second prune failed:\n{}",
            describe(&out)
        );
        let ctx2 = format!("{ctx}, after the second prune");
        support::assert_check_read_data(&env, &ctx2);
        support::assert_all_restore(&env, &ctx2);
        assert_eq!(
            settled(&env),
            done,
            "{ctx}: the second prune left the repository otherwise than an uninterrupted one"
        );
        eprintln!(
            "{ctx}: {}, lock left: {}, repository changed: {touched}, second prune: {}",
            if crash.killed {
                "killed"
            } else {
                "finished first"
            },
            !left.is_empty(),
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .collect::<String>()
        );
    }
    eprintln!(
        "{name}: seed {seed}: {killed} of {points} killed, {with_lock} left a lock, {changed} \
         had changed the repository"
    );
    // How many kills land in time depends on the machine's load, which a test must not
    // depend on: a thin run is reported, not failed (each point above was checked in full).
    if killed * 2 < points {
        eprintln!("warning: most prunes finished before their kill: this run tested little");
    }
    if points >= 10 && with_lock == 0 {
        eprintln!("warning: no killed prune left a lock (seed {seed}): unlock was not exercised");
    }
}

/// Whether the repositories `a` and `b` hold the same pack, index and snapshot files.
fn same_files(a: &Path, b: &Path) -> bool {
    let kinds = |repo: &Path| {
        let mut all = support::names(&repo.join("index"));
        all.extend(support::names(&repo.join("snapshots")));
        for fan in support::names(&repo.join("packs")) {
            all.extend(support::names(&repo.join("packs").join(fan)));
        }
        all
    };
    kinds(a) == kinds(b)
}

/// A prune killed after step 1 (its new pack and the index file listing it are written) and
/// before step 3 (deletions), then run again. Since every file is written atomically, the
/// state such a kill leaves is exactly: the repository before the prune, plus the new pack and
/// index file the finished prune wrote. Built that way here, so that the crash point is hit
/// every time rather than by chance.
///
/// In an unencrypted repository everything is deterministic: the second prune repacks the old
/// pack again (it wins the tie for the blobs it shares with the new pack when its id sorts
/// first), writes a pack and an index file byte-identical to the first prune's, under the same
/// names, then deletes both as the duplicate pack and the replaced index file.
#[test]
fn a_prune_after_a_crash_between_repack_and_deletions_keeps_every_blob() {
    for attempt in 0..8u64 {
        let base = Env::unencrypted();
        let common = ("common.bin", 256 << 10, 100);
        let old = base.path("old");
        support::make_source(
            &old,
            10,
            4 << 10,
            &[common, ("old.bin", 192 << 10, 101 + attempt)],
            1 + attempt,
        );
        let keep = base.path("keep");
        support::make_source(&keep, 10, 4 << 10, &[common], 2);
        let forgotten = base.backup(&[&old])["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        base.backup(&[&keep]);
        base.ok(["forget", &forgotten]);

        // What the finished prune adds (step 1) and deletes.
        let finished = support::copy_env(&base);
        finished.ok(["prune"]);
        let (added, removed) = diff_files(&base.repo, &finished.repo);
        let new_pack = added
            .iter()
            .find(|p| p.starts_with("packs/"))
            .expect("the prune repacked nothing")
            .clone();
        // The tie between the old pack and the new one goes to the lower id: only when the
        // old one sorts first does the second prune repack it again.
        let old_pack = removed
            .iter()
            .filter(|p| p.starts_with("packs/"))
            .max_by_key(|p| std::fs::metadata(base.repo.join(p)).unwrap().len())
            .unwrap()
            .clone();
        let name = |p: &str| p.rsplit('/').next().unwrap().to_string();
        if name(&old_pack) > name(&new_pack) {
            eprintln!("attempt {attempt}: the new pack sorts first, no tie to lose; again");
            continue;
        }

        // The crash: the repository before the prune, plus what step 1 wrote.
        let crashed = support::copy_env(&base);
        for file in &added {
            let to = crashed.repo.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(finished.repo.join(file), to).unwrap();
        }
        support::assert_check_read_data(&crashed, "after the simulated crash");
        crashed.ok(["prune"]);
        support::assert_check_read_data(&crashed, "after the prune that followed the crash");
        support::assert_all_restore(&crashed, "after the prune that followed the crash");
        return;
    }
    panic!("in 8 attempts the old pack never sorted before the new one");
}

/// Files added and removed from repository `a` to repository `b`, as paths relative to the
/// repository (`packs/XX/NAME`, `index/NAME`, ...), locks aside.
fn diff_files(a: &Path, b: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let files = |repo: &Path| {
        let mut all = BTreeSet::new();
        for kind in ["index", "snapshots", "keys"] {
            for n in support::names(&repo.join(kind)) {
                all.insert(format!("{kind}/{n}"));
            }
        }
        for fan in support::names(&repo.join("packs")) {
            for n in support::names(&repo.join("packs").join(&fan)) {
                all.insert(format!("packs/{fan}/{n}"));
            }
        }
        all
    };
    let (fa, fb) = (files(a), files(b));
    (
        fb.difference(&fa).cloned().collect(),
        fa.difference(&fb).cloned().collect(),
    )
}

/// What a dry-run prune says is left to do (the [`SETTLED`] fields).
fn settled(env: &Env) -> Value {
    let out = env.ok(["prune", "--dry-run", "--json"]);
    let report = json(&out);
    SETTLED
        .iter()
        .map(|f| (f.to_string(), report[*f].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
