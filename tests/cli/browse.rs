//! Looking inside a repository: `snapshots`, `ls`, `diff`, `stats`, with and without `--json`.

use std::ffi::OsStr;
use std::fs;

use crate::tree::{self, OLD};
use crate::util::{Env, describe, json, stdout};

/// A repository with one snapshot of a small tree; returns the source path.
fn one_snapshot(env: &Env, extra: &[&str]) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    tree::file(&src.join("a.txt"), b"alpha\n", 0o644, OLD);
    tree::file(&src.join("dir/b.txt"), b"bravo\n", 0o600, OLD);
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let mut args = vec![OsStr::new("backup"), src.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    env.ok(args);
    src
}

#[test]
fn snapshots_json_has_every_field() {
    let env = Env::new();
    let src = one_snapshot(
        &env,
        &["--tag", "daily", "--tag", "test", "--host", "testhost"],
    );
    let list = env.snapshots();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    let id = s["id"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{s}");
    assert_eq!(s["short_id"].as_str().unwrap(), &id[..8], "{s}");
    let time: jiff::Timestamp = s["time"].as_str().unwrap().parse().unwrap();
    let age = jiff::Timestamp::now().duration_since(time);
    assert!(
        age.as_secs() < 600 && age.as_secs() >= 0,
        "time {time} is not now"
    );
    assert_eq!(s["hostname"], "testhost", "{s}");
    assert!(s["username"].is_string(), "{s}");
    assert_eq!(s["tags"], serde_json::json!(["daily", "test"]), "{s}");
    assert_eq!(
        s["paths"],
        serde_json::json!([src.to_string_lossy()]),
        "{s}"
    );
    assert_eq!(s["tree"].as_str().map(str::len), Some(64), "{s}");
    assert!(s["parent"].is_null(), "{s}");
    let summary = &s["summary"];
    for field in [
        "files_new",
        "files_changed",
        "files_unchanged",
        "dirs",
        "total_bytes",
        "bytes_read",
        "bytes_added",
    ] {
        assert!(summary[field].is_u64(), "summary.{field} missing: {s}");
    }
    assert_eq!(summary["files_new"], 2, "{s}");
}

#[test]
fn snapshots_table_and_filters() {
    let env = Env::new();
    one_snapshot(&env, &["--tag", "keep", "--host", "alpha"]);
    let src = env.path("src");
    env.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--host"),
        OsStr::new("beta"),
    ]);
    let list = env.snapshots();
    assert_eq!(list.len(), 2);
    let out = env.ok(["snapshots"]);
    let text = stdout(&out);
    for header in ["ID", "Time", "Host", "Tags", "Paths"] {
        assert!(text.contains(header), "{text}");
    }
    for s in &list {
        assert!(text.contains(s["short_id"].as_str().unwrap()), "{text}");
    }
    assert!(
        text.contains("alpha") && text.contains("beta") && text.contains("keep"),
        "{text}"
    );
    assert!(text.contains("2 snapshots"), "{text}");

    let only = |args: &[&str]| {
        let mut all = vec!["snapshots", "--json"];
        all.extend_from_slice(args);
        json(&env.ok(all)).as_array().unwrap().len()
    };
    assert_eq!(only(&["--host", "alpha"]), 1);
    assert_eq!(only(&["--tag", "keep"]), 1);
    assert_eq!(only(&["--tag", "nope"]), 0);
    assert_eq!(only(&["--path", src.to_str().unwrap()]), 2);
}

#[test]
fn ls_lists_every_node() {
    let env = Env::new();
    let src = one_snapshot(&env, &[]);
    let out = env.ok(["ls", "latest"]);
    let text = stdout(&out);
    let root = src.to_string_lossy();
    let line = |suffix: &str| {
        text.lines()
            .find(|l| l.ends_with(suffix))
            .map(str::to_string)
    };
    let a = line(&format!("{root}/a.txt")).unwrap_or_else(|| panic!("no a.txt:\n{text}"));
    assert!(a.starts_with("-rw-r--r--"), "{a}");
    assert!(a.contains(" 6 "), "size 6 missing: {a}");
    let b = line(&format!("{root}/dir/b.txt")).unwrap_or_else(|| panic!("no b.txt:\n{text}"));
    assert!(b.starts_with("-rw-------"), "{b}");
    assert!(
        text.lines()
            .any(|l| l.starts_with('d') && l.ends_with(&format!("{root}/dir"))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('l') && l.ends_with("link -> a.txt")),
        "{text}"
    );

    // Below a path.
    let out = env.ok(["ls", "latest", &format!("{root}/dir")]);
    let text = stdout(&out);
    assert!(text.contains("b.txt"), "{text}");
    assert!(!text.contains("a.txt"), "{text}");
}

#[test]
fn ls_json_nodes() {
    let env = Env::new();
    let src = one_snapshot(&env, &[]);
    let out = env.ok(["ls", "latest", "--json"]);
    let nodes = json(&out);
    let nodes = nodes
        .as_array()
        .unwrap_or_else(|| panic!("not an array:\n{}", describe(&out)));
    let find = |suffix: &str| {
        nodes
            .iter()
            .find(|n| n["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no node {suffix}:\n{}", describe(&out)))
    };
    let a = find(&format!("{}/a.txt", src.to_string_lossy()));
    assert_eq!(a["type"], "file", "{a}");
    assert_eq!(a["size"], 6, "{a}");
    assert_eq!(a["mode"], 0o644, "{a}");
    let mtime: jiff::Timestamp = a["mtime"].as_str().unwrap().parse().unwrap();
    assert_eq!(mtime.as_second(), OLD, "{a}");
    assert_eq!(find("/dir")["type"], "dir");
    let link = find("/link");
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["link_target"], "a.txt");
}

#[test]
fn diff_shows_added_removed_and_modified() {
    let env = Env::new();
    let src = one_snapshot(&env, &[]);
    // Change the tree: remove a.txt, modify dir/b.txt, add new.txt.
    fs::remove_file(src.join("a.txt")).unwrap();
    tree::file(&src.join("dir/b.txt"), b"bravo, changed\n", 0o600, OLD + 5);
    tree::file(&src.join("new.txt"), b"new\n", 0o644, OLD);
    env.ok([OsStr::new("backup"), src.as_os_str()]);
    let list = env.snapshots();
    let (first, second) = (
        list[0]["id"].as_str().unwrap(),
        list[1]["id"].as_str().unwrap(),
    );

    let out = env.ok(["diff", &first[..8], second]);
    let text = stdout(&out);
    let has = |marker: char, suffix: &str| {
        text.lines()
            .any(|l| l.starts_with(&format!("{marker}    ")) && l.ends_with(suffix))
    };
    assert!(has('+', "/src/new.txt"), "no + line:\n{text}");
    assert!(has('-', "/src/a.txt"), "no - line:\n{text}");
    assert!(has('M', "/src/dir/b.txt"), "no M line:\n{text}");
    assert!(
        !text.contains("link"),
        "the unchanged symlink is listed:\n{text}"
    );

    let out = env.ok(["diff", first, second, "--json"]);
    let changes = json(&out);
    let changes = changes.as_array().unwrap();
    let change_of = |suffix: &str| {
        changes
            .iter()
            .find(|c| c["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .map(|c| c["change"].as_str().unwrap().to_string())
    };
    assert_eq!(
        change_of("/src/new.txt").as_deref(),
        Some("added"),
        "{changes:?}"
    );
    assert_eq!(
        change_of("/src/a.txt").as_deref(),
        Some("removed"),
        "{changes:?}"
    );
    assert_eq!(
        change_of("/src/dir/b.txt").as_deref(),
        Some("modified"),
        "{changes:?}"
    );
}

#[test]
fn stats_fields() {
    let env = Env::new();
    let src = one_snapshot(&env, &[]);
    env.ok([OsStr::new("backup"), src.as_os_str()]);
    let all = json(&env.ok(["stats", "--json"]));
    assert_eq!(all["snapshots"], 2, "{all}");
    assert_eq!(all["files"], 4, "{all}");
    assert_eq!(all["logical_bytes"], 24, "{all}");
    for field in ["unique_chunks", "unique_bytes", "stored_bytes", "packs"] {
        assert!(all[field].as_u64().is_some_and(|n| n > 0), "{field}: {all}");
    }
    assert!(
        all["dedup_ratio"].as_f64().is_some_and(|r| r > 1.5),
        "{all}"
    );
    assert!(all["compression_ratio"].is_number(), "{all}");

    let one = json(&env.ok(["stats", "latest", "--json"]));
    assert_eq!(one["snapshots"], 1, "{one}");
    assert_eq!(one["files"], 2, "{one}");
    assert_eq!(one["snapshot_id"], env.snapshots()[1]["id"], "{one}");

    let text = stdout(&env.ok(["stats"]));
    assert!(text.contains("Dedup ratio"), "{text}");
}

/// Sets the modification time of `dir` 10 s (and then each time 1 s more) in the past, as if
/// the folder had been still since: a local repository's folders vouch for their listing only
/// then, and the commands then read their kept catalog without listing.
fn settle(dirs: &[std::path::PathBuf], step: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(10 + step);
    for dir in dirs {
        fs::File::open(dir)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(when))
            .unwrap();
    }
}

/// Two machines share a repository, each with its own cache: what one backs up or forgets,
/// the other's `latest`, prefixes and `snapshots` see at once, whether its kept catalog was
/// current or not.
#[test]
fn each_cache_sees_the_other_machines_backups_and_forgets() {
    let env = Env::new();
    let other_cache = env.path("other-cache");
    let other = |args: &[&OsStr]| {
        let out = env
            .command()
            .env("RESPALDO_CACHE_DIR", &other_cache)
            .args(args)
            .arg("--repo")
            .arg(&env.repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        out
    };
    let folders = [env.repo.join("snapshots"), env.repo.join("index")];
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("f.txt");
    let restored = |spec: &str, n: u32| -> String {
        let target = env.path(format!("restore-{n}"));
        env.ok([
            OsStr::new("restore"),
            OsStr::new(spec),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        fs::read_to_string(target.join(file.strip_prefix("/").unwrap())).unwrap()
    };

    fs::write(&file, "one").unwrap();
    env.backup(&[&src]);
    let first = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    settle(&folders, 0);
    assert_eq!(env.snapshots().len(), 1);
    assert_eq!(restored("latest", 1), "one");

    // The other machine backs up: seen right away, and again once the folders are still.
    fs::write(&file, "two").unwrap();
    other(&[OsStr::new("backup"), src.as_os_str()]);
    assert_eq!(restored("latest", 2), "two");
    settle(&folders, 1);
    assert_eq!(restored("latest", 3), "two");
    assert_eq!(restored("latest", 4), "two");
    assert_eq!(restored(&first[..8], 5), "one");
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 2);
    let second = snapshots[1]["id"].as_str().unwrap().to_string();

    // The other machine forgets the newest: gone from `latest`, prefixes and the list.
    settle(&folders, 2);
    assert_eq!(restored("latest", 6), "two");
    other(&[
        OsStr::new("forget"),
        OsStr::new(&second),
        OsStr::new("--prune"),
    ]);
    settle(&folders, 3);
    assert_eq!(restored("latest", 7), "one");
    let out = env.run(["ls", &second[..10]]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(env.snapshots().len(), 1);
    assert_eq!(restored(&first[..8], 8), "one");
}
