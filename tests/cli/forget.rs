//! `forget`: keep policies and explicit ids over real backups, the dry run, the text and JSON
//! output, and refused arguments.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::{Env, code, describe, json, stderr, stdout};

/// `n` backups of a small folder (changed between backups), with extra backup arguments;
/// returns the snapshot ids the backups printed, oldest first.
fn backups(env: &Env, n: usize, extra: &[&str]) -> Vec<String> {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    (0..n)
        .map(|i| {
            fs::write(src.join("file.txt"), format!("version {i}\n")).unwrap();
            let mut args: Vec<OsString> = vec!["backup".into(), "--json".into()];
            args.extend(extra.iter().map(OsString::from));
            args.push(src.clone().into_os_string());
            let out = env.ok(&args);
            let summary = crate::util::summary_line(&out);
            summary["snapshot_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The ids `snapshots --json` lists, oldest first.
fn snapshot_ids(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every file below `dir` (recursively).
fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += count_files(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().or_else(|| v["id"].as_str()).unwrap().to_string())
        .collect()
}

#[test]
fn keep_last_removes_the_older_snapshots_and_no_data() {
    let env = Env::new();
    let ids = backups(&env, 4, &[]);
    assert_eq!(snapshot_ids(&env), ids);
    let packs = count_files(&env.repo.join("packs"));

    let out = env.ok(["forget", "--keep-last", "2"]);
    let text = stdout(&out);
    assert!(text.contains("removed 2 snapshots"), "{}", describe(&out));
    assert_eq!(snapshot_ids(&env), ids[2..]);
    // Only manifests go; the packs stay until prune.
    assert_eq!(count_files(&env.repo.join("packs")), packs);
    assert_eq!(count_files(&env.repo.join("snapshots")), 2);
    assert_eq!(
        count_files(&env.repo.join("locks")),
        0,
        "the lock is released"
    );

    // The same policy again removes nothing.
    let out = env.ok(["forget", "--keep-last", "2"]);
    assert!(
        stdout(&out).contains("removed 0 snapshots"),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot_ids(&env), ids[2..]);
}

#[test]
fn dry_run_shows_the_plan_and_changes_nothing() {
    let env = Env::new();
    let ids = backups(&env, 3, &[]);

    let out = env.ok(["forget", "--keep-last", "1", "--dry-run"]);
    let text = stdout(&out);
    assert!(text.contains("keep 1 snapshot:"), "{text}");
    assert!(text.contains("remove 2 snapshots:"), "{text}");
    assert!(text.contains("last snapshot"), "{text}");
    assert!(text.contains("Reasons"), "{text}");
    for id in &ids {
        assert!(text.contains(&id[..8]), "{id} missing:\n{text}");
    }
    assert_eq!(
        text.lines().last(),
        Some("would remove 2 snapshots (dry run)"),
        "{text}"
    );
    // The group header names host and paths.
    let snapshot = &env.snapshots()[0];
    let host = snapshot["hostname"].as_str().unwrap();
    assert!(text.contains(&format!("host {host}, paths [")), "{text}");
    assert_eq!(snapshot_ids(&env), ids);

    // --quiet prints nothing at all.
    let out = env.ok(["forget", "--keep-last", "1", "--dry-run", "--quiet"]);
    assert_eq!(stdout(&out), "", "{}", describe(&out));
    assert_eq!(stderr(&out), "", "{}", describe(&out));
    assert_eq!(snapshot_ids(&env), ids);
}

#[test]
fn json_document_lists_groups_kept_and_removed() {
    let env = Env::new();
    let ids = backups(&env, 3, &["--tag", "nightly"]);
    let host = env.snapshots()[0]["hostname"].as_str().unwrap().to_string();

    let out = env.ok(["forget", "--keep-last", "1", "--dry-run", "--json"]);
    let v = json(&out);
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(ids_of(&v["removed"]), ids[..2], "{v}");
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v}");
    let group = &groups[0];
    assert_eq!(group["key"]["host"], host.as_str(), "{v}");
    assert_eq!(
        group["key"]["paths"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert!(group["key"]["tags"].is_null(), "not grouped by tags: {v}");
    assert_eq!(ids_of(&group["keep"]), ids[2..], "{v}");
    assert_eq!(ids_of(&group["remove"]), ids[..2], "{v}");
    let kept = &group["keep"][0];
    assert_eq!(kept["reasons"], serde_json::json!(["last snapshot"]), "{v}");
    assert!(kept["time"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(kept["short_id"].as_str(), Some(&ids[2][..8]), "{v}");
    assert_eq!(group["remove"][0]["reasons"], serde_json::json!([]), "{v}");
    assert_eq!(snapshot_ids(&env), ids, "a dry run changes nothing");

    // For real, grouped by tags too, keeping by tag: nothing removed.
    let out = env.ok([
        "forget",
        "--keep-tag",
        "nightly",
        "--group-by",
        "host,paths,tags",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["dry_run"], false, "{v}");
    assert_eq!(v["removed"], serde_json::json!([]), "{v}");
    assert_eq!(
        v["groups"][0]["key"]["tags"],
        serde_json::json!(["nightly"])
    );
    assert_eq!(
        v["groups"][0]["keep"][0]["reasons"],
        serde_json::json!(["tag nightly"])
    );

    // Removing for real: `removed` lists the ids deleted.
    let out = env.ok(["forget", "--keep-last", "2", "--json"]);
    let v = json(&out);
    assert_eq!(ids_of(&v["removed"]), ids[..1], "{v}");
    assert_eq!(snapshot_ids(&env), ids[1..]);
}

#[test]
fn groups_per_host_and_filters() {
    let env = Env::new();
    let a = backups(&env, 3, &["--host", "alpha"]);
    let b = backups(&env, 2, &["--host", "bravo"]);

    // --host limits what is considered: bravo's snapshots are untouched.
    let out = env.ok(["forget", "--host", "alpha", "--keep-last", "2"]);
    assert!(
        stdout(&out).contains("removed 1 snapshot\n"),
        "{}",
        describe(&out)
    );
    let mut expect = vec![a[1].clone(), a[2].clone()];
    expect.extend(b.iter().cloned());
    assert_eq!(snapshot_ids(&env), expect);

    // Grouped by host, --keep-last 1 keeps the newest of each host.
    let out = env.ok(["forget", "--group-by", "host", "--keep-last", "1"]);
    let text = stdout(&out);
    assert!(text.contains("host alpha:"), "{text}");
    assert!(text.contains("host bravo:"), "{text}");
    assert_eq!(snapshot_ids(&env), [a[2].clone(), b[1].clone()]);

    // One group of everything ('' ): only the newest of all is kept.
    let out = env.ok(["forget", "--group-by", "", "--keep-last", "1"]);
    assert!(
        stdout(&out).contains("all snapshots:"),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot_ids(&env), [b[1].clone()]);
}

#[test]
fn explicit_ids_are_forgotten() {
    let env = Env::new();
    let ids = backups(&env, 3, &[]);

    let out = env.ok(["forget", &ids[0][..8], &ids[2]]);
    assert!(
        stdout(&out).contains("removed 2 snapshots"),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot_ids(&env), ids[1..2]);

    // An unknown id: exit 1, nothing removed.
    let out = env.run(["forget", "ffffffff"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("ffffffff"), "{}", describe(&out));
    assert_eq!(snapshot_ids(&env), ids[1..2]);

    // Ids and a policy together are invalid arguments.
    let out = env.run(["forget", "--keep-last", "1", &ids[1]]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert_eq!(snapshot_ids(&env), ids[1..2]);
}

#[test]
fn invalid_arguments_exit_2() {
    let env = Env::new();
    let ids = backups(&env, 1, &[]);
    for args in [
        &["forget", "--keep-daily", "abc"][..],
        &["forget", "--keep-last", "-1"],
        &["forget", "--keep-within", "7x"],
        &["forget", "--keep-within", "7"],
        &["forget", "--group-by", "hostname", "--keep-last", "1"],
        &["forget", "not-hex"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", describe(&out));
    }
    let out = env.run(["forget", "--keep-daily", "abc"]);
    assert!(stderr(&out).contains("--keep-daily"), "{}", describe(&out));
    assert!(stderr(&out).contains("unlimited"), "{}", describe(&out));
    assert_eq!(snapshot_ids(&env), ids);

    // `unlimited` and restic durations are accepted.
    env.ok([
        "forget",
        "--keep-daily",
        "unlimited",
        "--keep-within",
        "1y5m7d2h",
        "--dry-run",
    ]);
}

#[test]
fn an_empty_policy_is_refused() {
    let env = Env::new();
    let ids = backups(&env, 2, &[]);
    for args in [
        &["forget"][..],
        &["forget", "--dry-run"],
        &["forget", "--keep-last", "0"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains("no policy was specified, no snapshots will be removed"),
            "{}",
            describe(&out)
        );
        assert_eq!(stdout(&out), "", "{}", describe(&out));
    }
    assert_eq!(snapshot_ids(&env), ids);
}

#[test]
fn forget_with_prune_deletes_the_data_only_the_forgotten_snapshots_needed() {
    let env = Env::new();
    let ids = backups(&env, 3, &[]);
    let packs_before = count_files(&env.repo.join("packs"));
    let out = env.ok(["forget", "--keep-last", "1", "--prune", "--json"]);
    let report = json(&out);
    assert_eq!(report["removed"].as_array().unwrap().len(), 2, "{report}");
    let prune = &report["prune"];
    assert!(
        prune["packs_deleted"].as_u64().unwrap() + prune["packs_repacked"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(count_files(&env.repo.join("packs")) < packs_before);
    assert_eq!(snapshot_ids(&env), vec![ids[2].clone()]);
    let out = env.run(["check", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = env.run(["prune", "--max-unused", "unlimited", "--dry-run", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out)["packs_deleted"], 0, "nothing left to prune");
    // --max-unused only goes with --prune.
    let out = env.run(["forget", "--keep-last", "1", "--max-unused", "5%"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
}
