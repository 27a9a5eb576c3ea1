//! `key list`, `key add`, `key remove`, `key passwd`: several passwords open one repository,
//! a password change retires the old one, and the keys that must stay cannot be removed.

use std::process::Output;

use serde_json::Value;

use crate::util::{Env, PASSWORD, code, describe, json, stderr, stdout};

const OTHER: &str = "a second password";

/// `respaldo ARGS... --repo REPO` opened with `password`, the new password (if any) in
/// `RESPALDO_NEW_PASSWORD`.
fn run_as(env: &Env, password: &str, new_password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.command();
    cmd.env("RESPALDO_PASSWORD", password)
        .env_remove("RESPALDO_NEW_PASSWORD");
    if let Some(new) = new_password {
        cmd.env("RESPALDO_NEW_PASSWORD", new);
    }
    cmd.args(args).arg("--repo").arg(&env.repo);
    cmd.output().unwrap()
}

/// Like [`run_as`], asserting exit 0.
fn ok_as(env: &Env, password: &str, new_password: Option<&str>, args: &[&str]) -> Output {
    let out = run_as(env, password, new_password, args);
    assert_eq!(
        code(&out),
        0,
        "respaldo {args:?} failed:\n{}",
        describe(&out)
    );
    out
}

/// Asserts that `out` exited with `expected` and that standard error mentions `needle`.
fn assert_fails(out: &Output, expected: i32, needle: &str) {
    assert_eq!(code(out), expected, "{}", describe(out));
    assert!(
        stderr(out).contains(needle),
        "stderr lacks {needle:?}:\n{}",
        describe(out)
    );
}

/// `key list --json` opened with `password`.
fn keys(env: &Env, password: &str) -> Vec<Value> {
    let out = ok_as(env, password, None, &["key", "list", "--json"]);
    json(&out)
        .as_array()
        .expect("key list --json is not an array")
        .clone()
}

fn id_of(key: &Value) -> String {
    key["id"].as_str().unwrap().to_string()
}

/// The id of the key marked current when opened with `password`.
fn current(env: &Env, password: &str) -> String {
    let list = keys(env, password);
    let current: Vec<&Value> = list.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "not exactly one current key: {list:?}");
    id_of(current[0])
}

/// Whether `password` opens the repository: `snapshots` exits 0, or 12 for a wrong password.
fn opens(env: &Env, password: &str) -> bool {
    let out = run_as(env, password, None, &["snapshots"]);
    match code(&out) {
        0 => true,
        12 => false,
        _ => panic!("unexpected outcome:\n{}", describe(&out)),
    }
}

/// `key add` with `new` in `RESPALDO_NEW_PASSWORD`; returns the new key's id.
fn add(env: &Env, new: &str) -> String {
    let out = ok_as(env, PASSWORD, Some(new), &["key", "add", "--json"]);
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["message_type"], "key_added", "{}", describe(&out));
    id_of(&line)
}

#[test]
fn added_key_opens_the_repository_and_list_marks_the_current_one() {
    let env = Env::new();
    let first = current(&env, PASSWORD);
    assert_eq!(keys(&env, PASSWORD).len(), 1);
    assert!(!opens(&env, OTHER));

    let file = env.path("new-password");
    std::fs::write(&file, format!("{OTHER}\nignored second line\n")).unwrap();
    let out = ok_as(
        &env,
        PASSWORD,
        None,
        &["key", "add", "--new-password-file", file.to_str().unwrap()],
    );
    assert!(stdout(&out).contains("saved new key"), "{}", describe(&out));

    assert!(opens(&env, PASSWORD));
    assert!(opens(&env, OTHER));
    assert!(!opens(&env, "wrong"));

    let list = keys(&env, PASSWORD);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(current(&env, PASSWORD), first);
    let second = current(&env, OTHER);
    assert_ne!(second, first);
    for key in &list {
        assert_eq!(key["id"].as_str().unwrap().len(), 64);
        assert_eq!(key["short_id"].as_str().unwrap().len(), 8);
        assert_eq!(key["kdf"]["algorithm"], "argon2id");
        assert!(key["kdf"]["memory_kib"].as_u64().unwrap() > 0);
        assert!(key["created_unix_seconds"].as_i64().unwrap() > 0);
        assert!(key["hostname"].is_string() && key["username"].is_string());
    }

    // The table: a header, a rule, one row per key, the current one marked with `*`.
    let out = ok_as(&env, OTHER, None, &["key", "list"]);
    let text = stdout(&out);
    let rows: Vec<&str> = text
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with("2 keys"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let marked: Vec<&&str> = rows.iter().filter(|r| r.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(
        marked[0].starts_with(&format!("*{}", &second[..8])),
        "{text}"
    );
    assert!(text.contains("2 keys"), "{text}");
}

#[test]
fn new_password_from_the_environment_and_missing_new_password() {
    let env = Env::new();
    let id = add(&env, OTHER);
    assert_eq!(current(&env, OTHER), id);

    // No file, no variable, no terminal: a clear error, exit 1, nothing added.
    let out = run_as(&env, PASSWORD, None, &["key", "add"]);
    assert_fails(&out, 1, "--new-password-file");
    assert!(
        stderr(&out).contains("RESPALDO_NEW_PASSWORD"),
        "{}",
        describe(&out)
    );
    let out = run_as(&env, PASSWORD, None, &["key", "passwd"]);
    assert_fails(&out, 1, "a new password is needed");
    assert_eq!(keys(&env, PASSWORD).len(), 2);

    // An empty new password protects nothing.
    let out = run_as(&env, PASSWORD, Some(""), &["key", "add"]);
    assert_fails(&out, 1, "empty password");
    assert_eq!(keys(&env, PASSWORD).len(), 2);

    // A wrong repository password is still exit 12, before any new password is read.
    let out = run_as(&env, "wrong", Some("third"), &["key", "add"]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    assert_eq!(keys(&env, PASSWORD).len(), 2);
}

#[test]
fn passwd_replaces_the_password() {
    let env = Env::new();
    let old = current(&env, PASSWORD);
    let out = ok_as(&env, PASSWORD, Some(OTHER), &["key", "passwd", "--json"]);
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["message_type"], "password_changed");
    assert_eq!(line["removed"], old.as_str());

    let out = run_as(&env, PASSWORD, None, &["snapshots"]);
    assert_eq!(
        code(&out),
        12,
        "the old password still opens:\n{}",
        describe(&out)
    );
    assert!(opens(&env, OTHER));
    let list = keys(&env, OTHER);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(id_of(&list[0]), id_of(&line));
    assert_eq!(list[0]["current"], true);

    // Text output.
    let out = ok_as(&env, OTHER, Some("third"), &["key", "passwd"]);
    assert!(
        stdout(&out).contains("removed old key"),
        "{}",
        describe(&out)
    );
    assert!(!opens(&env, OTHER));
    assert!(opens(&env, "third"));
}

#[test]
fn remove_refuses_the_current_and_the_last_key() {
    let env = Env::new();
    let first = current(&env, PASSWORD);

    // The only key (which is also the current one).
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &first[..8]]);
    assert_fails(&out, 1, "only key");
    assert!(
        stderr(&out).contains(&format!("keys/{first}")),
        "{}",
        describe(&out)
    );

    let second = add(&env, OTHER);

    // The key that opened this session: open with the other password first.
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &first[..8]]);
    assert_fails(&out, 1, "opened this session");
    assert!(
        stderr(&out).contains("another key's password"),
        "{}",
        describe(&out)
    );
    assert_eq!(keys(&env, PASSWORD).len(), 2);

    // The other key goes (by its full id, in upper case too).
    let out = ok_as(
        &env,
        PASSWORD,
        None,
        &["key", "remove", &second.to_ascii_uppercase()],
    );
    assert!(stdout(&out).contains(&format!("removed key {}", &second[..8])));
    assert!(!opens(&env, OTHER));
    assert!(opens(&env, PASSWORD));
    let list = keys(&env, PASSWORD);
    assert_eq!(list.len(), 1);
    assert_eq!(id_of(&list[0]), first);

    // Last key, again: still refused.
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &first]);
    assert_fails(&out, 1, "only key");
    assert!(opens(&env, PASSWORD));
}

#[test]
fn remove_the_original_key_with_the_other_password() {
    let env = Env::new();
    let first = current(&env, PASSWORD);
    let second = add(&env, OTHER);
    let out = ok_as(&env, OTHER, None, &["key", "remove", "--json", &first[..8]]);
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["message_type"], "key_removed");
    assert_eq!(line["id"], first.as_str());
    assert!(!opens(&env, PASSWORD));
    assert_eq!(current(&env, OTHER), second);
}

#[test]
fn unknown_ambiguous_and_invalid_ids() {
    let env = Env::new();
    // Add keys until two share their first hex digit (at most 17 keys in all).
    let mut ids = vec![current(&env, PASSWORD)];
    let digit = loop {
        let id = add(&env, &format!("password {}", ids.len()));
        let first = id.as_bytes()[0];
        if ids.iter().any(|other| other.as_bytes()[0] == first) {
            ids.push(id);
            break char::from(first);
        }
        ids.push(id);
    };
    let count = ids.len();

    let out = run_as(&env, PASSWORD, None, &["key", "remove", &digit.to_string()]);
    assert_fails(&out, 1, "ambiguous");

    let unknown = (0..16u32)
        .map(|d| char::from_digit(d, 16).unwrap())
        .find(|d| ids.iter().all(|id| !id.starts_with(*d)))
        .map_or_else(|| "f".repeat(64), |d| d.to_string().repeat(8));
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &unknown]);
    assert_fails(&out, 1, "no key matches");

    let out = run_as(&env, PASSWORD, None, &["key", "remove", "not-hex"]);
    assert_fails(&out, 1, "not a key id");

    assert_eq!(keys(&env, PASSWORD).len(), count);
}

#[test]
fn unencrypted_repository_has_no_keys() {
    let env = Env::unencrypted();
    for args in [
        &["key", "list"][..],
        &["key", "add"][..],
        &["key", "passwd"][..],
        &["key", "remove", "abcdef12"][..],
    ] {
        let mut cmd = env.command();
        cmd.env("RESPALDO_NEW_PASSWORD", OTHER)
            .args(args)
            .arg("--repo")
            .arg(&env.repo);
        let out = cmd.output().unwrap();
        assert_fails(&out, 1, "the repository is not encrypted: it has no keys");
    }
    assert!(
        !env.repo
            .join("keys")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// The Argon2id cost `key list --json` shows for the key `password` opens.
fn kdf_of(env: &Env, password: &str) -> (u64, u64) {
    let list = keys(env, password);
    let key = list
        .iter()
        .find(|k| k["current"] == true)
        .expect("no current key");
    (
        key["kdf"]["memory_kib"].as_u64().unwrap(),
        key["kdf"]["iterations"].as_u64().unwrap(),
    )
}

#[test]
fn the_key_derivation_cost_is_chosen_at_init_and_for_each_new_key() {
    let env = Env::empty();
    let out = env.ok(["init", "--kdf-memory", "8M", "--kdf-passes", "2", "--json"]);
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["kdf"]["memory_kib"], 8 * 1024, "{}", describe(&out));
    assert_eq!(line["kdf"]["iterations"], 2, "{}", describe(&out));
    assert_eq!(kdf_of(&env, PASSWORD), (8 * 1024, 2));

    // Only the memory given: the passes are the default (3), not the test-only cheapest.
    let out = ok_as(
        &env,
        PASSWORD,
        Some(OTHER),
        &["key", "add", "--kdf-memory", "9216K", "--json"],
    );
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["kdf"]["memory_kib"], 9 * 1024, "{}", describe(&out));
    assert_eq!(line["kdf"]["iterations"], 3, "{}", describe(&out));
    assert_eq!(kdf_of(&env, OTHER), (9 * 1024, 3));
    assert!(opens(&env, OTHER));

    let out = ok_as(
        &env,
        OTHER,
        Some("third"),
        &[
            "key",
            "passwd",
            "--kdf-memory",
            "10",
            "--kdf-passes",
            "1",
            "--json",
        ],
    );
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["message_type"], "password_changed");
    assert_eq!(line["kdf"]["memory_kib"], 10 * 1024, "{}", describe(&out));
    assert_eq!(kdf_of(&env, "third"), (10 * 1024, 1));
    assert!(!opens(&env, OTHER));

    // Out of range or malformed: exit 2 naming the option, no key added.
    for bad in [
        ["--kdf-memory", "7M"],
        ["--kdf-memory", "5G"],
        ["--kdf-memory", "lots"],
        ["--kdf-passes", "0"],
        ["--kdf-passes", "65"],
    ] {
        let mut args = vec!["key", "add"];
        args.extend(bad);
        let out = run_as(&env, "third", Some("fourth"), &args);
        assert_fails(&out, 2, bad[0]);
    }
    assert_eq!(keys(&env, "third").len(), 2);

    // An unencrypted repository has no key to derive.
    let plain = Env::empty();
    let out = plain.run(["init", "--no-encryption", "--kdf-memory", "16M"]);
    assert_fails(&out, 2, "--no-encryption");
    assert!(!plain.repo.exists(), "a repository was created");
}
