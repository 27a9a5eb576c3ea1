//! The binary on object storage: a real S3 server (Garage) on loopback, started by each test
//! (see `crates/test-s3`). Backup, restore, forget, prune and check; three hosts backing up
//! into one bucket at once; a server that stops, hangs or loses an object.
//!
//! Without a Garage binary these tests skip, unless `RESPALDO_TEST_S3_REQUIRED` is set (as
//! `.ci/run` does).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chunk_store::{Backend, FileKind, RequestPolicy, S3Access, S3Location};
use test_s3::{BUCKET, REGION, S3Server, StallProxy};

use crate::tree;
use crate::util::{Env, code, describe, json, stderr, summary_line};

/// One repository in the test server's bucket, seen by one "host" (its own cache folder).
struct Bucket {
    /// What reaches the server: credentials and region.
    server_env: Vec<(&'static str, String)>,
    env: Env,
    /// `s3:http://127.0.0.1:PORT/respaldo/PREFIX`, or the same through a proxy.
    location: String,
    extra_env: Vec<(&'static str, String)>,
}

impl Bucket {
    fn new(server: &S3Server, prefix: &str) -> Self {
        Bucket {
            server_env: server.env(),
            env: Env::empty(),
            location: server.location(prefix),
            extra_env: Vec::new(),
        }
    }

    /// Another host on the same repository: its own folders and cache.
    fn other_host(&self) -> Self {
        let mut env = Env::empty();
        env.password.clone_from(&self.env.password);
        Bucket {
            server_env: self.server_env.clone(),
            env,
            location: self.location.clone(),
            extra_env: self.extra_env.clone(),
        }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.env.command();
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL");
        for (name, value) in self.server_env.iter().chain(&self.extra_env) {
            cmd.env(name, value);
        }
        cmd.args(args).arg("--repo").arg(&self.location);
        cmd
    }

    fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().unwrap()
    }

    fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(&args);
        assert_eq!(code(&out), 0, "respaldo {args:?}:\n{}", describe(&out));
        out
    }

    fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn backup(&self, args: &[&OsStr]) -> serde_json::Value {
        let mut all: Vec<&OsStr> = vec![OsStr::new("backup"), OsStr::new("--json")];
        all.extend_from_slice(args);
        summary_line(&self.ok(all))
    }

    fn snapshot_count(&self) -> usize {
        json(&self.ok(["snapshots", "--json"]))
            .as_array()
            .unwrap()
            .len()
    }

    fn restore(&self, snapshot: &str, target: &Path) {
        self.ok([
            OsStr::new("restore"),
            OsStr::new(snapshot),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
    }
}

/// The objects of one kind under `prefix`, as the server lists them.
fn objects(server: &S3Server, prefix: &str, kind: FileKind) -> Vec<String> {
    raw_backend(server, prefix).list(kind).unwrap()
}

fn raw_backend(server: &S3Server, prefix: &str) -> chunk_store::ObjectBackend {
    S3Location {
        endpoint: Some(server.endpoint()),
        bucket: BUCKET.to_string(),
        prefix: prefix.to_string(),
    }
    .open_with(
        RequestPolicy::default(),
        Some(&S3Access {
            access_key_id: server.access_key_id.clone(),
            secret_access_key: server.secret_access_key.clone(),
            region: Some(REGION.to_string()),
        }),
    )
    .unwrap()
}

fn write_source(dir: &Path, files: usize, seed: u64) {
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 4));
        fs::create_dir_all(&sub).unwrap();
        let len = 1000 + (i * 7919) % 60_000;
        fs::write(
            sub.join(format!("f{i:03}")),
            tree::pseudo_random(len, seed + i as u64),
        )
        .unwrap();
    }
}

fn assert_same(source: &Path, target: &Path) {
    let restored = tree::restored(target, source);
    let diffs = tree::compare(source, &restored);
    assert!(diffs.is_empty(), "restore differs:\n{}", diffs.join("\n"));
}

fn added(summary: &serde_json::Value) -> u64 {
    summary["bytes_added"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes_added in {summary}"))
}

#[test]
fn backup_restore_forget_prune_check_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = Bucket::new(&server, "lifecycle");
    repo.ok(["init"]);
    assert_eq!(objects(&server, "lifecycle", FileKind::Config), ["config"]);

    let source = repo.env.path("data");
    write_source(&source, 40, 1);
    let first = repo.backup(&[source.as_os_str()]);
    assert!(added(&first) > 0);
    fs::write(source.join("d0/new"), tree::pseudo_random(300_000, 77)).unwrap();
    fs::remove_file(source.join("d1/f001")).unwrap();
    let second = repo.backup(&[source.as_os_str()]);
    assert!(added(&second) < added(&first), "{second} vs {first}");
    assert_eq!(repo.snapshot_count(), 2);

    let target = repo.env.path("restored");
    repo.restore("latest", &target);
    assert_same(&source, &target);

    // Another host with an empty cache: the index comes from the repository's index files.
    let other = repo.other_host();
    let target2 = other.env.path("restored");
    other.restore("latest", &target2);
    assert_same(&source, &target2);

    let packs_before = objects(&server, "lifecycle", FileKind::Pack).len();
    repo.ok(["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(repo.snapshot_count(), 1);
    let packs_after = objects(&server, "lifecycle", FileKind::Pack).len();
    assert!(
        packs_after <= packs_before,
        "{packs_after} > {packs_before}"
    );
    repo.ok(["check", "--read-data"]);
    let target3 = repo.env.path("restored-after-prune");
    repo.restore("latest", &target3);
    assert_same(&source, &target3);
    // No lock is left behind.
    assert!(objects(&server, "lifecycle", FileKind::Lock).is_empty());
}

#[test]
fn three_hosts_back_up_into_one_bucket_at_once_and_deduplicate_across_hosts() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let first = Bucket::new(&server, "shared");
    first.ok(["init"]);
    let hosts = [first.other_host(), first.other_host(), first.other_host()];
    let sources: Vec<PathBuf> = hosts
        .iter()
        .enumerate()
        .map(|(h, host)| {
            let dir = host.env.path("data");
            write_source(&dir, 30, 100 * (h as u64 + 1));
            dir
        })
        .collect();

    // Round one: all three at the same time.
    let children: Vec<Child> = hosts
        .iter()
        .zip(&sources)
        .enumerate()
        .map(|(h, (host, dir))| {
            host.spawn([
                OsStr::new("backup"),
                OsStr::new("--json"),
                OsStr::new("--host"),
                OsStr::new(&format!("host-{h}")),
                dir.as_os_str(),
            ])
        })
        .collect();
    let mut round_one = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", describe(&out));
        round_one += added(&summary_line(&out));
    }
    assert_eq!(first.snapshot_count(), 3);

    // Every host's snapshot restores, from any host.
    for (h, dir) in sources.iter().enumerate() {
        let target = first.env.path(format!("restore-{h}"));
        let snapshots = json(&first.ok(["snapshots", "--json", "--host", &format!("host-{h}")]));
        let id = snapshots[0]["id"].as_str().unwrap().to_string();
        first.restore(&id, &target);
        assert_same(dir, &target);
    }

    // Round two: each host backs up a copy of the other hosts' data (new paths, so no parent
    // helps): it is all in the bucket already, written by the others.
    let mut round_two = 0;
    for (h, host) in hosts.iter().enumerate() {
        let mine = host.env.path("theirs");
        for (other, dir) in sources.iter().enumerate() {
            if other != h {
                copy_dir(dir, &mine.join(format!("from-{other}")));
            }
        }
        let summary = host.backup(&[
            OsStr::new("--host"),
            OsStr::new(&format!("host-{h}")),
            mine.as_os_str(),
        ]);
        round_two += added(&summary);
    }
    assert!(
        round_two * 10 < round_one,
        "round two added {round_two} bytes, round one {round_one}: no cross-host dedup"
    );
    first.ok(["check", "--read-data"]);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn server_stopped_during_a_backup_commits_nothing_and_the_next_backup_works() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let proxy = StallProxy::start(server.port());
    let mut repo = Bucket::new(&server, "crash");
    repo.location = format!("s3:{}/{BUCKET}/crash", proxy.endpoint());
    repo.extra_env = vec![
        ("RESPALDO_S3_TIMEOUT", "20s".to_string()),
        ("RESPALDO_S3_RETRIES", "1".to_string()),
    ];
    repo.ok(["init", "--no-encryption"]);
    repo.env.password = None;
    let kept = repo.env.path("kept");
    write_source(&kept, 5, 9);
    repo.backup(&[kept.as_os_str()]);

    // A backup from standard input that the test feeds: it cannot finish before the test
    // lets it. Once its first pack is up, the server goes away under it.
    let backend = raw_backend(&server, "crash");
    let packs_before = backend.list(FileKind::Pack).unwrap().len();
    let mut child = repo
        .command(["backup", "--stdin", "--stdin-filename", "stream.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&tree::pseudo_random(40 << 20, 500))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while backend.list(FileKind::Pack).unwrap().len() == packs_before {
        assert!(Instant::now() < deadline, "the backup wrote no pack");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.set_stalled(true);
    server.stop();
    proxy.set_stalled(false);
    // The rest of the stream; the backup may already have given up.
    let _ = stdin.write_all(&tree::pseudo_random(8 << 20, 501));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let message = stderr(&out);
    assert!(
        message.contains("no answer from the server") && message.contains("crash"),
        "{message}"
    );

    let source = repo.env.path("big");
    fs::create_dir_all(&source).unwrap();
    for i in 0..3u64 {
        fs::write(
            source.join(format!("big{i}")),
            tree::pseudo_random(12 << 20, 500 + i),
        )
        .unwrap();
    }
    server.resume();
    assert_eq!(repo.snapshot_count(), 1, "a snapshot was committed");
    repo.ok(["check"]);
    let summary = repo.backup(&[source.as_os_str()]);
    assert!(added(&summary) > 0);
    assert_eq!(repo.snapshot_count(), 2);
    let target = repo.env.path("restored");
    repo.restore("latest", &target);
    assert_same(&source, &target);
    repo.ok(["check", "--read-data"]);
}

#[test]
fn a_hung_server_fails_the_command_within_its_time_limit() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = StallProxy::start(server.port());
    let mut repo = Bucket::new(&server, "hung");
    repo.location = format!("s3:{}/{BUCKET}/hung", proxy.endpoint());
    repo.ok(["init"]);
    repo.extra_env = vec![
        ("RESPALDO_S3_TIMEOUT", "1s".to_string()),
        ("RESPALDO_S3_RETRIES", "1".to_string()),
    ];
    proxy.set_stalled(true);
    let started = Instant::now();
    let out = repo.run(["snapshots"]);
    let waited = started.elapsed();
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    let message = stderr(&out);
    assert!(
        message.contains("no answer from the server") && message.contains("RESPALDO_S3_TIMEOUT"),
        "{message}"
    );
}

#[test]
fn a_pack_that_disappears_is_named_by_check_and_restore() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = Bucket::new(&server, "lost");
    repo.ok(["init"]);
    let source = repo.env.path("data");
    write_source(&source, 20, 5);
    repo.backup(&[source.as_os_str()]);
    let backend = raw_backend(&server, "lost");
    let packs = backend.list(FileKind::Pack).unwrap();
    // Remove a data pack (the biggest one; tree packs are small).
    let lost = packs
        .iter()
        .max_by_key(|p| backend.size(FileKind::Pack, p).unwrap())
        .unwrap()
        .clone();
    backend.delete(FileKind::Pack, &lost).unwrap();

    let out = repo.run(["check"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        text.contains(&lost[..12]),
        "check does not name the pack:\n{text}"
    );

    let target = repo.env.path("restored");
    let out = repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains(&lost[..12]), "{}", describe(&out));
}

#[test]
fn wrong_credentials_are_refused_with_the_http_status() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let mut repo = Bucket::new(&server, "creds");
    repo.ok(["init"]);
    repo.extra_env = vec![("AWS_SECRET_ACCESS_KEY", "0".repeat(64))];
    let out = repo.run(["snapshots"]);
    assert_ne!(code(&out), 0);
    let message = stderr(&out);
    assert!(
        message.contains("HTTP 403") && message.contains("AWS_ACCESS_KEY_ID"),
        "{message}"
    );
}

#[test]
fn copy_moves_snapshots_from_a_local_repository_to_s3_and_back() {
    let Some(server) = S3Server::start() else {
        return;
    };
    // A local repository with two snapshots.
    let local = Env::new();
    let source = local.path("data");
    write_source(&source, 20, 40);
    local.backup(&[&source]);
    fs::write(source.join("d2/added"), tree::pseudo_random(200_000, 41)).unwrap();
    local.backup(&[&source]);

    // Into a bucket with its own password: both snapshots, restorable from there.
    let mut remote = Bucket::new(&server, "copied");
    remote.env.password = Some("another password".to_string());
    remote.ok(["init"]);
    let copy_from = |dest: &Bucket, from: &Path, password: &str| {
        let mut cmd = dest.command([
            OsStr::new("copy"),
            OsStr::new("--from-repo"),
            from.as_os_str(),
        ]);
        cmd.env("RESPALDO_FROM_PASSWORD", password);
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 0, "{}", describe(&out));
    };
    copy_from(&remote, &local.repo, crate::util::PASSWORD);
    assert_eq!(remote.snapshot_count(), 2);
    let target = remote.env.path("from-s3");
    remote.restore("latest", &target);
    assert_same(&source, &target);
    // Again: nothing new to copy, nothing uploaded.
    let packs = objects(&server, "copied", FileKind::Pack);
    copy_from(&remote, &local.repo, crate::util::PASSWORD);
    assert_eq!(remote.snapshot_count(), 2);
    assert_eq!(objects(&server, "copied", FileKind::Pack), packs);

    // And back, from the bucket into a new local repository.
    let back = Env::new();
    let mut cmd = back.command();
    cmd.args(["copy", "--repo"])
        .arg(&back.repo)
        .arg("--from-repo")
        .arg(&remote.location)
        .env("RESPALDO_FROM_PASSWORD", "another password");
    for (name, value) in server.env() {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(back.snapshots().len(), 2);
    let target = back.path("back-home");
    back.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_same(&source, &target);
}

#[test]
fn credentials_can_come_from_an_aws_credentials_file() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let mut repo = Bucket::new(&server, "profile");
    repo.ok(["init", "--no-encryption"]);
    repo.env.password = None;
    // The same key, from a profile of a credentials file instead of the variables.
    let home = repo.env.path("home");
    fs::create_dir_all(home.join(".aws")).unwrap();
    fs::write(
        home.join(".aws/credentials"),
        format!(
            "[backups]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key_id, server.secret_access_key
        ),
    )
    .unwrap();
    repo.server_env = vec![("AWS_REGION", REGION.to_string())];
    repo.extra_env = vec![
        ("HOME", home.display().to_string()),
        ("AWS_PROFILE", "backups".to_string()),
    ];
    let mut cmd = repo.command(["snapshots", "--json"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));

    // Without the profile there is no key: nothing is sent, and the message says what to set.
    repo.extra_env = vec![("HOME", home.display().to_string())];
    let mut cmd = repo.command(["snapshots"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("AWS_ACCESS_KEY_ID"),
        "{}",
        describe(&out)
    );
}
