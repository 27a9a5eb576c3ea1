//! Backup and restore, byte for byte and with metadata; incremental backups; unreadable and
//! missing sources; point-in-time restore; standard input.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use crate::tree::{self, OLD};
use crate::util::{
    Env, can_read_unreadable, code, describe, json_lines, stderr, stdout, summary_line,
};

/// Restores `snapshot` into a fresh folder `name` and returns where `source` came back.
fn restore(env: &Env, snapshot: &str, name: &str, source: &Path) -> std::path::PathBuf {
    let target = env.path(name);
    env.ok([
        OsStr::new("restore"),
        OsStr::new(snapshot),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    tree::restored(&target, source)
}

fn assert_same_tree(source: &Path, restored: &Path) {
    let diffs = tree::compare(source, restored);
    assert!(
        diffs.is_empty(),
        "restore differs from the source:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn round_trip_keeps_content_and_metadata() {
    let env = Env::new();
    let src = env.path("src");
    tree::rich_tree(&src);
    let summary = env.backup(&[&src]);
    assert_eq!(summary["files_new"], 7, "{summary}");
    assert_eq!(summary["warnings"], 0, "{summary}");
    let restored = restore(&env, "latest", "restore", &src);
    assert_same_tree(&src, &restored);
}

#[test]
fn round_trip_unencrypted_with_verify() {
    let env = Env::unencrypted();
    let src = env.path("src");
    tree::rich_tree(&src);
    env.backup(&[&src]);
    let target = env.path("restore");
    let out = env.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--verify"),
        OsStr::new("--json"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let summary = summary_line(&out);
    assert_eq!(summary["files"], 7, "{summary}");
    assert_eq!(summary["verified"], true, "{summary}");
    assert_same_tree(&src, &tree::restored(&target, &src));
}

#[test]
fn restore_by_id_prefix_and_relative_source_path() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("a.txt"), b"a\n", 0o644, OLD);
    // A relative path: made absolute by the CLI, run from the environment's folder.
    let out = env.ok(["backup", "src", "--json"]);
    let summary = summary_line(&out);
    let short = summary["short_id"].as_str().unwrap().to_string();
    assert_eq!(short.len(), 8);
    let snapshots = env.snapshots();
    assert_eq!(snapshots[0]["paths"][0], src.to_string_lossy().as_ref());
    let restored = restore(&env, &short, "restore", &src);
    assert_eq!(fs::read(restored.join("a.txt")).unwrap(), b"a\n");
}

#[test]
fn empty_folder_and_empty_file() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("nothing-here")).unwrap();
    tree::file(&src.join("zero"), b"", 0o644, OLD);
    tree::set_mtime(&src.join("nothing-here"), OLD + 1);
    tree::set_mtime(&src, OLD + 2);
    env.backup(&[&src]);
    let restored = restore(&env, "latest", "restore", &src);
    assert_same_tree(&src, &restored);
    assert_eq!(fs::metadata(restored.join("zero")).unwrap().len(), 0);
    assert_eq!(
        fs::read_dir(restored.join("nothing-here")).unwrap().count(),
        0
    );
}

#[test]
fn file_larger_than_the_maximum_chunk() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let data = tree::pseudo_random(9 << 20, 42);
    tree::file(&src.join("big"), &data, 0o644, OLD);
    let summary = env.backup(&[&src]);
    assert_eq!(summary["total_bytes"], 9 << 20, "{summary}");
    let restored = restore(&env, "latest", "restore", &src);
    assert!(
        fs::read(restored.join("big")).unwrap() == data,
        "content differs"
    );
}

#[test]
fn non_utf8_file_names() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9");
    tree::file(&src.join(name), b"latin-1\n", 0o644, OLD);
    fs::create_dir(src.join(OsStr::from_bytes(b"dir\xff"))).unwrap();
    env.backup(&[&src]);
    let restored = restore(&env, "latest", "restore", &src);
    assert_eq!(fs::read(restored.join(name)).unwrap(), b"latin-1\n");
    assert!(restored.join(OsStr::from_bytes(b"dir\xff")).is_dir());
    // `ls` writes the raw name.
    let out = env.ok(["ls", "latest"]);
    assert!(
        out.stdout.windows(4).any(|w| w == b"caf\xe9"),
        "ls does not show the raw name:\n{}",
        describe(&out)
    );
}

#[test]
fn symlinks_keep_their_targets() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("target.txt"), b"t\n", 0o644, OLD);
    std::os::unix::fs::symlink("target.txt", src.join("rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/anywhere", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("..", src.join("up")).unwrap();
    env.backup(&[&src]);
    let restored = restore(&env, "latest", "restore", &src);
    for (name, target) in [
        ("rel", "target.txt"),
        ("dangling", "/nonexistent/anywhere"),
        ("up", ".."),
    ] {
        let link = restored.join(name);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name}"
        );
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(target), "{name}");
    }
}

#[test]
fn hardlinks_come_back_as_one_inode() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("other")).unwrap();
    tree::file(&src.join("first"), b"shared content\n", 0o644, OLD);
    fs::hard_link(src.join("first"), src.join("second")).unwrap();
    fs::hard_link(src.join("first"), src.join("other/third")).unwrap();
    tree::file(&src.join("alone"), b"alone\n", 0o644, OLD);
    env.backup(&[&src]);
    let restored = restore(&env, "latest", "restore", &src);
    let ino = |p: &str| fs::metadata(restored.join(p)).unwrap().ino();
    assert_eq!(ino("first"), ino("second"));
    assert_eq!(ino("first"), ino("other/third"));
    assert_ne!(ino("first"), ino("alone"));
    assert_eq!(fs::metadata(restored.join("first")).unwrap().nlink(), 3);
    assert_eq!(
        fs::read(restored.join("other/third")).unwrap(),
        b"shared content\n"
    );
}

#[test]
fn sparse_files_stay_sparse() {
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let path = src.join("sparse");
    let size: u64 = 64 << 20;
    {
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(b"start").unwrap();
        f.seek(SeekFrom::Start(size - 3)).unwrap();
        f.write_all(b"end").unwrap();
    }
    tree::set_mtime(&path, OLD);
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    env.backup(&[&src]);
    let restored = restore(&env, "latest", "restore", &src).join("sparse");
    let meta = fs::metadata(&restored).unwrap();
    assert_eq!(meta.len(), size);
    let mut head = [0u8; 5];
    fs::File::open(&restored)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head, b"start");
    assert!(
        fs::read(&restored).unwrap() == fs::read(&path).unwrap(),
        "content differs"
    );
    if allocated(&path) >= size / 2 {
        eprintln!(
            "note: this file system does not keep the source sparse; not checking the restore"
        );
        return;
    }
    assert!(
        allocated(&restored) < size / 2,
        "the zero region was written out: {} bytes allocated for a {size}-byte file",
        allocated(&restored)
    );
}

#[test]
fn incremental_backup_reads_no_unchanged_file() {
    let env = Env::new();
    let src = env.path("src");
    tree::rich_tree(&src);
    let first = env.backup(&[&src]);
    assert_eq!(first["files_new"], 7, "{first}");
    assert!(first["bytes_read"].as_u64().unwrap() >= 9 << 20, "{first}");
    let second = env.backup(&[&src]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_unchanged"], 7, "{second}");
    assert_eq!(second["files_new"], 0, "{second}");
    assert_eq!(second["files_changed"], 0, "{second}");
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 2);
    assert_eq!(snapshots[1]["parent"], snapshots[0]["id"]);
    // Nothing below the source changed (its ancestors, like /tmp, may have).
    let (a, b) = (
        snapshots[0]["id"].as_str().unwrap(),
        snapshots[1]["id"].as_str().unwrap(),
    );
    let diff = stdout(&env.ok(["diff", a, b]));
    let inside = format!("{}/", src.display());
    assert!(
        !diff.lines().any(|l| l.contains(&inside)),
        "changes inside the source:\n{diff}"
    );
}

#[test]
fn unreadable_file_gives_a_warning_and_exit_3() {
    let env = Env::new();
    if can_read_unreadable(env.dir.path()) {
        eprintln!("note: skipped: running as root, which reads a file of mode 000 anyway");
        return;
    }
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("readable"), b"fine\n", 0o644, OLD);
    tree::file(&src.join("locked"), b"no\n", 0o000, OLD);
    let out = env.run([OsStr::new("backup"), OsStr::new("--json"), src.as_os_str()]);
    // Without --json the warning is on standard error.
    let human = env.run([OsStr::new("backup"), src.as_os_str()]);
    tree::set_mode(&src.join("locked"), 0o600); // let the temp dir be removed
    assert_eq!(code(&human), 3, "{}", describe(&human));
    assert!(stderr(&human).contains("locked"), "{}", describe(&human));
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let lines = json_lines(&out);
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l["message_type"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{}", describe(&out));
    assert!(
        warnings[0]["path"].as_str().unwrap().ends_with("locked"),
        "{}",
        describe(&out)
    );
    assert_eq!(summary_line(&out)["warnings"], 1);
    // The snapshot holds the rest.
    let restored = restore(&env, "latest", "restore", &src);
    assert_eq!(fs::read(restored.join("readable")).unwrap(), b"fine\n");
    // Readable again: a clean backup.
    let out = env.run([OsStr::new("backup"), src.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
}

/// Root reads a file of mode 000, so as root the check above runs the binary as `nobody`
/// (through `setpriv`, from a copy of the binary in the test folder).
#[test]
fn unreadable_file_as_an_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::empty();
    if !can_read_unreadable(env.dir.path()) {
        return; // not root: the test above covers it
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("note: skipped: running as root without setpriv to drop privileges");
        return;
    };
    let binary = env.path("respaldo");
    fs::copy(crate::util::binary(), &binary).unwrap();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("readable"), b"fine\n", 0o644, OLD);
    fs::write(src.join("locked"), b"no\n").unwrap();
    for dir in [env.dir.path(), &src] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    tree::set_mode(&src.join("locked"), 0o000);
    let run = |args: &[&OsStr]| {
        let mut cmd = std::process::Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .args(args)
            .arg("--repo")
            .arg(&env.repo)
            .env_remove("RESPALDO_PASSWORD_FILE")
            .env("RESPALDO_PASSWORD", crate::util::PASSWORD)
            .env("RESPALDO_CACHE_DIR", &env.cache)
            .env("RESPALDO_INSECURE_KDF_FOR_TESTS", "1")
            .current_dir(env.dir.path())
            .stdin(Stdio::null());
        cmd.output().unwrap()
    };
    let init = run(&[OsStr::new("init")]);
    if code(&init) != 0 {
        eprintln!(
            "note: skipped: cannot run as nobody here:\n{}",
            describe(&init)
        );
        return;
    }
    let out = run(&[OsStr::new("backup"), OsStr::new("--json"), src.as_os_str()]);
    tree::set_mode(&src.join("locked"), 0o600);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let warning = json_lines(&out)
        .into_iter()
        .find(|l| l["message_type"] == "warning");
    let warning = warning.unwrap_or_else(|| panic!("no warning line:\n{}", describe(&out)));
    assert!(
        warning["path"].as_str().unwrap().ends_with("/src/locked"),
        "{warning}"
    );
    assert_eq!(summary_line(&out)["warnings"], 1, "{}", describe(&out));
}

#[test]
fn missing_path_among_others_gives_a_warning_and_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("a"), b"a\n", 0o644, OLD);
    let missing = env.path("does-not-exist");
    let out = env.run([OsStr::new("backup"), src.as_os_str(), missing.as_os_str()]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains("does-not-exist"),
        "the warning must name the path:\n{}",
        describe(&out)
    );
    assert!(stdout(&out).contains("saved"), "{}", describe(&out));
    let out = env.run([
        OsStr::new("backup"),
        OsStr::new("--json"),
        src.as_os_str(),
        missing.as_os_str(),
    ]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let warning = json_lines(&out)
        .into_iter()
        .find(|l| l["message_type"] == "warning");
    let warning = warning.unwrap_or_else(|| panic!("no warning line:\n{}", describe(&out)));
    assert!(
        warning["path"]
            .as_str()
            .unwrap()
            .ends_with("does-not-exist"),
        "{warning}"
    );
    assert!(
        warning["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{warning}"
    );
}

#[test]
fn only_a_missing_path_is_an_error() {
    let env = Env::new();
    let missing = env.path("does-not-exist");
    let out = env.run([OsStr::new("backup"), missing.as_os_str()]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("does-not-exist"),
        "{}",
        describe(&out)
    );
    assert!(env.snapshots().is_empty());
}

#[test]
fn restore_at_a_time_picks_the_snapshot_of_that_time() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("version"), b"one\n", 0o644, OLD);
    env.backup(&[&src]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    tree::file(&src.join("version"), b"two\n", 0o644, OLD + 1);
    env.backup(&[&src]);
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 2);
    let time = |s: &serde_json::Value| {
        s["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let (t1, t2) = (time(&snapshots[0]), time(&snapshots[1]));
    assert!(t2 > t1);

    // Half a second after the first: RFC 3339 with an offset other than UTC.
    let between = t1 + jiff::SignedDuration::from_millis(500);
    assert!(between < t2);
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
    let at = between
        .to_zoned_datetime(tz)
        .strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
        .to_string();
    let target = env.path("at-first");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("--at"),
        OsStr::new(&at),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let restored = tree::restored(&target, &src).join("version");
    assert_eq!(fs::read(restored).unwrap(), b"one\n", "--at {at}");

    // Local civil time, to the second, after the second snapshot.
    let after = t2 + jiff::SignedDuration::from_secs(2);
    let local = after
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let target = env.path("at-second");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("--at"),
        OsStr::new(&local),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let restored = tree::restored(&target, &src).join("version");
    assert_eq!(fs::read(restored).unwrap(), b"two\n", "--at {local}");

    // Before the first snapshot: nothing to restore.
    let before = (t1 - jiff::SignedDuration::from_secs(60)).to_string();
    let out = env.run([
        OsStr::new("restore"),
        OsStr::new("--at"),
        OsStr::new(&before),
        OsStr::new("--target"),
        env.path("at-none").as_os_str(),
    ]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("no snapshot"), "{}", describe(&out));
}

#[test]
fn partial_restore_with_include_and_exclude() {
    let env = Env::new();
    let src = env.path("src");
    tree::rich_tree(&src);
    env.backup(&[&src]);
    let sub = src.join("sub");
    let target = env.path("include");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--include"),
        sub.as_os_str(),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let restored = tree::restored(&target, &src);
    assert_eq!(
        fs::read(restored.join("sub/nested.txt")).unwrap(),
        b"nested\n"
    );
    assert!(
        !restored.join("hello.txt").exists(),
        "--include restored more than asked"
    );

    let target = env.path("exclude");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--exclude"),
        sub.as_os_str(),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let restored = tree::restored(&target, &src);
    assert!(restored.join("hello.txt").is_file());
    assert!(
        !restored.join("sub").exists(),
        "--exclude restored the excluded folder"
    );
}

#[test]
fn stdin_backup_comes_back_through_dump() {
    let env = Env::new();
    let data = tree::pseudo_random(5 << 20, 9);
    let out = env.run_with_stdin(
        [
            "backup",
            "--stdin",
            "--stdin-filename",
            "database.sql",
            "--json",
        ],
        &data,
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(summary_line(&out)["total_bytes"], 5 << 20);
    let dumped = env.ok(["dump", "latest", "/database.sql"]);
    assert!(
        dumped.stdout == data,
        "dump differs ({} bytes)",
        dumped.stdout.len()
    );
    // A path without the leading slash names the same file.
    let dumped = env.ok(["dump", "latest", "database.sql"]);
    assert!(
        dumped.stdout == data,
        "dump differs ({} bytes)",
        dumped.stdout.len()
    );
}

#[test]
fn dump_into_a_closed_pipe_is_success() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(
        &src.join("big"),
        &tree::pseudo_random(8 << 20, 3),
        0o644,
        OLD,
    );
    env.backup(&[&src]);
    let file = src.join("big");
    let mut child = env
        .command()
        .args([
            OsStr::new("dump"),
            OsStr::new("latest"),
            file.as_os_str(),
            OsStr::new("--repo"),
        ])
        .arg(&env.repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 16];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout); // like `| head -c 16`
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn human_backup_output() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    tree::file(&src.join("a"), b"a\n", 0o644, OLD);
    let out = env.ok([OsStr::new("backup"), src.as_os_str()]);
    let id = env.snapshots()[0]["short_id"].as_str().unwrap().to_string();
    assert!(
        stdout(&out).contains(&format!("snapshot {id} saved")),
        "{}",
        describe(&out)
    );
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "escape codes on a pipe"
    );
    let quiet = env.ok([OsStr::new("backup"), OsStr::new("--quiet"), src.as_os_str()]);
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        describe(&quiet)
    );
    let verbose = env.ok([OsStr::new("backup"), OsStr::new("-v"), src.as_os_str()]);
    assert!(stdout(&verbose).contains("saved"), "{}", describe(&verbose));
}
