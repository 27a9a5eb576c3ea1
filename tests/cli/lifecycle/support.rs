//! What the lifecycle tests share: a seeded PRNG for crash points, deterministic source folders,
//! copying repositories, running a child and killing it, and the checks made after each crash
//! (stale locks removed, `check --read-data` clean, snapshots restored byte for byte).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tree;
use crate::util::{Env, code, describe, json, stderr};

/// SplitMix64: small, seedable, good enough to pick crash points and file sizes.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, max]`, to the nanosecond.
    pub fn up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX - 1);
        Duration::from_nanos(self.below(nanos + 1))
    }
}

/// How many crash points a crash test tries: `RESPALDO_CRASH_POINTS`, default 20.
pub fn crash_points() -> usize {
    match std::env::var("RESPALDO_CRASH_POINTS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RESPALDO_CRASH_POINTS={v:?} is not a count")),
        Err(_) => 20,
    }
}

/// The seed of a crash test: `RESPALDO_CRASH_SEED` when set, otherwise drawn from the clock.
/// Printed either way, so that a failure's delays can be drawn again.
pub fn crash_seed(test: &str) -> u64 {
    let seed = match std::env::var("RESPALDO_CRASH_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RESPALDO_CRASH_SEED={v:?} is not a u64")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        }
    };
    eprintln!(
        "{test}: crash seed {seed}, {} points (RESPALDO_CRASH_SEED={seed} draws the same delays)",
        crash_points()
    );
    seed
}

/// Writes `count` files of 0 to `max` bytes (pseudo-random, from `seed`) under `dir`, 50 per
/// subfolder, plus each `(name, size, seed)` of `big` at the top.
pub fn make_source(dir: &Path, count: usize, max: usize, big: &[(&str, usize, u64)], seed: u64) {
    let mut rng = Prng::new(seed);
    for i in 0..count {
        let sub = dir.join(format!("part-{:02}", i / 50));
        fs::create_dir_all(&sub).unwrap();
        let len = rng.below(max as u64 + 1) as usize;
        fs::write(
            sub.join(format!("file-{i:04}.dat")),
            tree::pseudo_random(len, rng.next_u64()),
        )
        .unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    for (name, size, seed) in big {
        fs::write(dir.join(name), tree::pseudo_random(*size, *seed)).unwrap();
    }
}

/// Copies folder `from` to `to` (created), recursively: a repository, for one crash point.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A new environment (own folder, empty cache) holding a copy of `base`'s repository, opened
/// with the same password.
pub fn copy_env(base: &Env) -> Env {
    let mut env = Env::empty();
    env.password.clone_from(&base.password);
    copy_dir(&base.repo, &env.repo);
    env
}

/// The names in `dir` that are real files (not dot-named writes in progress); none when
/// `dir` does not exist.
pub fn names(dir: &Path) -> BTreeSet<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Every dot-named file (a write in progress, or the remains of one) under `root`.
pub fn dot_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with('.') {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Total size of the files under `root`.
pub fn disk_usage(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                total += entry.metadata().unwrap().len();
            }
        }
    }
    total
}

/// `respaldo ARGS... --repo REPO` as a command with piped output, not started.
pub fn command<I, S>(env: &Env, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = env.command();
    cmd.args(args)
        .arg("--repo")
        .arg(&env.repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A child run to its end, and how long it took from spawn to exit.
pub fn timed(mut cmd: Command) -> (Output, Duration) {
    let started = Instant::now();
    let out = cmd.spawn().unwrap().wait_with_output().unwrap();
    (out, started.elapsed())
}

/// A child that was sent SIGKILL after a delay (unless it had finished by then).
pub struct Crash {
    pub out: Output,
    pub pid: u32,
    /// Whether SIGKILL ended it (rather than it finishing first).
    pub killed: bool,
}

/// Starts `cmd`, waits `delay`, sends SIGKILL (`Child::kill`) unless it has finished, reaps it.
pub fn crash(mut cmd: Command, delay: Duration) -> Crash {
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    std::thread::sleep(delay);
    if child.try_wait().unwrap().is_none() {
        // Killing a child that exited meanwhile (a zombie until reaped) is harmless.
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let killed = out.status.signal() == Some(9);
    Crash { out, pid, killed }
}

/// After process `pid` died: the repository's lock files are exactly `left` (those it left
/// behind, if any); `unlock` removes each of them because its process is gone, keeps nothing,
/// and `locks/` is empty afterwards.
pub fn assert_unlock_removes_dead_locks(env: &Env, pid: u32, left: &BTreeSet<String>, ctx: &str) {
    let out = env.run(["unlock", "--json"]);
    assert_eq!(code(&out), 0, "{ctx}: unlock failed:\n{}", describe(&out));
    let report = json(&out);
    let removed: BTreeSet<String> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        &removed, left,
        "{ctx}: unlock removed other locks than the dead process left: {report}"
    );
    for lock in report["removed"].as_array().unwrap() {
        let stale = lock["stale"].as_str().unwrap_or_default();
        assert!(
            stale.contains(&format!("process {pid} no longer runs")),
            "{ctx}: the lock of dead process {pid} is not stale for that reason: {report}"
        );
        let description = lock["description"].as_str().unwrap();
        assert!(
            description.contains(&format!("pid {pid}")),
            "{ctx}: {report}"
        );
    }
    assert_eq!(
        report["remaining"].as_array().unwrap().len(),
        0,
        "{ctx}: unlock kept a lock although no process runs: {report}"
    );
    let after = names(&env.repo.join("locks"));
    assert!(
        after.is_empty(),
        "{ctx}: lock files left after unlock: {after:?}"
    );
}

/// A stale lock left by dead process `pid` still blocks `args` (a command whose lock conflicts
/// with it): exit 11, and the message says the repository is locked and why the lock looks stale.
pub fn assert_stale_lock_blocks(env: &Env, args: &[&OsStr], pid: u32, ctx: &str) {
    let out = env.run(args);
    assert_eq!(
        code(&out),
        11,
        "{ctx}: {args:?} was not blocked:\n{}",
        describe(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("locked") && err.contains(&format!("process {pid} no longer runs")),
        "{ctx}: the message does not say the lock is stale:\n{err}"
    );
}

/// `check --read-data` exits 0.
pub fn assert_check_read_data(env: &Env, ctx: &str) {
    let out = env.run(["check", "--read-data"]);
    assert_eq!(
        code(&out),
        0,
        "{ctx}: check --read-data failed:\n{}",
        describe(&out)
    );
}

/// Restores `snapshot` (an entry of `snapshots --json`) into a fresh folder and compares each
/// of its paths, byte for byte and with metadata, with the source still on disk.
pub fn assert_restores(env: &Env, snapshot: &Value, ctx: &str) {
    let id = snapshot["id"].as_str().unwrap();
    let target = tempfile::Builder::new()
        .prefix("restore-")
        .tempdir_in(env.dir.path())
        .unwrap();
    let out = env.run([
        OsStr::new("restore"),
        OsStr::new(id),
        OsStr::new("--quiet"),
        OsStr::new("--target"),
        target.path().as_os_str(),
    ]);
    assert_eq!(
        code(&out),
        0,
        "{ctx}: restore of {id} failed:\n{}",
        describe(&out)
    );
    for path in snapshot["paths"].as_array().unwrap() {
        let source = Path::new(path.as_str().unwrap());
        let diffs = tree::compare(source, &tree::restored(target.path(), source));
        assert!(
            diffs.is_empty(),
            "{ctx}: snapshot {id} does not restore {} as it was:\n{}",
            source.display(),
            diffs.join("\n")
        );
    }
}

/// Every snapshot of the repository restores byte for byte; returns them.
pub fn assert_all_restore(env: &Env, ctx: &str) -> Vec<Value> {
    let snapshots = env.snapshots();
    for snapshot in &snapshots {
        assert_restores(env, snapshot, ctx);
    }
    snapshots
}

/// The ids of `snapshots --json`.
pub fn ids(snapshots: &[Value]) -> BTreeSet<String> {
    snapshots
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}
