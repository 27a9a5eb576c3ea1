//! `copy --from-repo`: snapshots copied between repositories by the binary, restored byte for
//! byte from the destination; skipped on a second run; only new data stored; filters; a
//! damaged source pack; wrong and missing source passwords.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::util::{Env, PASSWORD, code, describe, json, stderr, stdout};

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A source tree under `env`: two files of noise, a small file in a folder, a symlink.
fn source_tree(env: &Env, name: &str) -> PathBuf {
    let src = env.path(name);
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("one.bin"), noise(400_000, 1)).unwrap();
    fs::write(src.join("two.bin"), noise(300_000, 2)).unwrap();
    fs::write(src.join("docs/note.txt"), b"a note\n").unwrap();
    std::os::unix::fs::symlink("one.bin", src.join("link")).unwrap();
    src
}

/// A destination environment with an encrypted repository whose password is `password`.
fn destination(password: &str) -> Env {
    let mut env = Env::empty();
    env.password = Some(password.to_string());
    env.ok(["init"]);
    env
}

/// `respaldo copy ARGS --repo DST --from-repo SRC`, the source password (if any) in
/// `RESPALDO_FROM_PASSWORD`.
fn copy(dst: &Env, src: &Env, args: &[&str]) -> Output {
    copy_with(dst, &src.repo, src.password.as_deref(), args)
}

fn copy_with(dst: &Env, from: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = dst.command();
    cmd.env_remove("RESPALDO_FROM_REPOSITORY")
        .env_remove("RESPALDO_FROM_PASSWORD")
        .env_remove("RESPALDO_FROM_PASSWORD_FILE")
        .arg("copy")
        .args(args)
        .arg("--repo")
        .arg(&dst.repo)
        .arg("--from-repo")
        .arg(from);
    if let Some(password) = password {
        cmd.env("RESPALDO_FROM_PASSWORD", password);
    }
    cmd.output().unwrap()
}

/// `copy --json ARGS`, asserting exit 0; the document.
fn copy_json(dst: &Env, src: &Env, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = copy(dst, src, &all);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    json(&out)
}

fn statuses(report: &Value) -> Vec<String> {
    report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect()
}

/// Every file below `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Asserts that `restored` holds the same files, bytes and symlinks as `src`.
fn assert_same_tree(src: &Path, restored: &Path) {
    let rel = |root: &Path, list: Vec<PathBuf>| -> Vec<PathBuf> {
        list.into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    let expected = rel(src, files(src));
    assert_eq!(rel(restored, files(restored)), expected);
    for name in expected {
        let (a, b) = (src.join(&name), restored.join(&name));
        if a.is_symlink() {
            assert_eq!(fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap());
        } else {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name:?}");
        }
    }
}

/// Restores `spec` of `env` into a new folder and returns where `src` landed in it.
fn restore(env: &Env, spec: &str, src: &Path, folder: &str) -> PathBuf {
    let target = env.path(folder);
    env.ok([
        "restore",
        spec,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    target.join(src.strip_prefix("/").unwrap())
}

#[test]
fn encrypted_to_encrypted_with_other_passwords_restores_byte_for_byte() {
    let src_env = Env::new();
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    let dst = destination("a different password");

    let report = copy_json(&dst, &src_env, &[]);
    assert_eq!(report["copied"], 1, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["same_ids"], false);
    assert!(report["bytes_added"].as_u64().unwrap() > 0);
    let original = &src_env.snapshots()[0];
    let copied = &dst.snapshots()[0];
    assert_eq!(report["snapshots"][0]["source_id"], original["id"]);
    assert_eq!(report["snapshots"][0]["target_id"], copied["id"]);
    assert_ne!(
        original["tree"], copied["tree"],
        "ids are keyed per repository"
    );
    for field in [
        "time_ns", "hostname", "username", "paths", "tags", "summary",
    ] {
        assert_eq!(original[field], copied[field], "{field}");
    }

    let restored = restore(&dst, "latest", &src, "restored");
    assert_same_tree(&src, &restored);
    let out = dst.ok(["check", "--read-data"]);
    assert!(
        stdout(&out).contains("no errors found"),
        "{}",
        describe(&out)
    );
}

#[test]
fn unencrypted_to_unencrypted_keeps_the_ids() {
    let src_env = Env::unencrypted();
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    let dst = Env::unencrypted();

    let report = copy_json(&dst, &src_env, &[]);
    assert_eq!(report["copied"], 1, "{report}");
    assert_eq!(report["same_ids"], true);
    assert_eq!(src_env.snapshots()[0]["tree"], dst.snapshots()[0]["tree"]);
    let restored = restore(&dst, "latest", &src, "restored");
    assert_same_tree(&src, &restored);
}

#[test]
fn a_second_copy_skips_every_snapshot_and_writes_nothing() {
    let src_env = Env::new();
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    src_env.backup(&[&src.join("docs")]);
    let dst = destination("other");
    let report = copy_json(&dst, &src_env, &[]);
    assert_eq!(statuses(&report), vec!["copied", "copied"], "{report}");

    let before = files(&dst.repo);
    let report = copy_json(&dst, &src_env, &[]);
    assert_eq!(statuses(&report), vec!["skipped", "skipped"], "{report}");
    assert_eq!(report["blobs_added"], 0);
    assert_eq!(report["bytes_read"], 0);
    let after: Vec<PathBuf> = files(&dst.repo)
        .into_iter()
        .filter(|p| !p.starts_with(dst.repo.join("locks")))
        .collect();
    assert_eq!(after, before, "the second copy wrote files");
    assert_eq!(dst.snapshots().len(), 2);

    // The text output says so too.
    let out = copy(&dst, &src_env, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("copied 0 snapshot(s), skipped 2"), "{text}");
    assert!(text.contains("skipped: already there as"), "{text}");
}

#[test]
fn copying_a_later_snapshot_adds_only_what_changed() {
    let src_env = Env::new();
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    fs::write(src.join("two.bin"), noise(300_000, 99)).unwrap();
    src_env.backup(&[&src]);
    let ids: Vec<String> = src_env
        .snapshots()
        .iter()
        .map(|s| s["short_id"].as_str().unwrap().to_string())
        .collect();
    let dst = destination("other");

    let first = copy_json(&dst, &src_env, &[&ids[0]]);
    assert_eq!(statuses(&first), vec!["copied"], "{first}");
    let second = copy_json(&dst, &src_env, &[]);
    assert_eq!(statuses(&second), vec!["skipped", "copied"], "{second}");
    let added_first = first["bytes_added"].as_u64().unwrap();
    let added_second = second["snapshots"][1]["bytes_added"].as_u64().unwrap();
    assert!(added_first > 700_000, "{first}");
    assert!(
        added_second > 290_000 && added_second < 400_000,
        "{added_second} bytes for a 300 KB change:\n{second}"
    );
    let copies = dst.snapshots();
    assert_eq!(copies[1]["parent"], copies[0]["id"]);
    let restored = restore(&dst, "latest", &src, "restored");
    assert_same_tree(&src, &restored);
}

#[test]
fn filters_select_snapshots_and_dry_run_writes_nothing() {
    let src_env = Env::new();
    let src = source_tree(&src_env, "data");
    let docs = src.join("docs");
    src_env.ok(["backup", "--tag", "keep", docs.to_str().unwrap()]);
    src_env.ok([
        "backup",
        "--host",
        "elsewhere",
        "--tag",
        "keep",
        src.to_str().unwrap(),
    ]);
    src_env.ok(["backup", src.to_str().unwrap()]);
    let dst = destination("other");

    let report = copy_json(&dst, &src_env, &["--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        statuses(&report),
        vec!["would_copy", "would_copy", "would_copy"]
    );
    assert!(dst.snapshots().is_empty());
    assert!(files(&dst.repo.join("packs")).is_empty());
    let out = copy(&dst, &src_env, &["--dry-run"]);
    assert!(
        stdout(&out).contains("would copy 3 snapshot(s)"),
        "{}",
        describe(&out)
    );

    let report = copy_json(&dst, &src_env, &["--host", "elsewhere"]);
    assert_eq!(statuses(&report), vec!["copied"], "{report}");
    assert_eq!(dst.snapshots()[0]["hostname"], "elsewhere");

    let report = copy_json(&dst, &src_env, &["--tag", "keep"]);
    assert_eq!(statuses(&report), vec!["copied", "skipped"], "{report}");

    let report = copy_json(&dst, &src_env, &["--path", docs.to_str().unwrap()]);
    assert_eq!(statuses(&report), vec!["skipped"], "{report}");
    assert_eq!(dst.snapshots().len(), 2);
}

/// Flips bytes in the middle of `file`.
fn damage(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    fs::write(file, bytes).unwrap();
}

#[test]
fn a_damaged_source_pack_fails_only_its_snapshot() {
    let src_env = Env::new();
    let victim = src_env.path("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("big.bin"), noise(600_000, 7)).unwrap();
    src_env.backup(&[&victim]);
    let victim_packs = files(&src_env.repo.join("packs"));
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    let short_id = src_env.snapshots()[0]["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The largest pack of the first backup holds big.bin's data.
    let pack = victim_packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    damage(pack);
    let pack_name = pack.file_name().unwrap().to_string_lossy().into_owned();

    let dst = destination("other");
    let out = copy(&dst, &src_env, &[]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains(&short_id), "{err}");
    assert!(
        err.contains(&victim.join("big.bin").display().to_string()),
        "{err}"
    );
    assert!(err.contains(&pack_name), "{err}");
    assert!(err.contains("1 snapshot(s) could not be copied"), "{err}");

    // The intact snapshot was copied, the damaged one not; the destination checks clean.
    let copies = dst.snapshots();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["paths"][0], src.display().to_string());
    let out = dst.ok(["check", "--read-data"]);
    assert!(
        stdout(&out).contains("no errors found"),
        "{}",
        describe(&out)
    );

    // --json: the document says which failed, and the exit code is still 1.
    let out = copy(&dst, &src_env, &["--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(statuses(&report), vec!["failed", "skipped"], "{report}");
    let error = report["snapshots"][0]["error"].as_str().unwrap();
    assert!(error.contains(&pack_name), "{error}");
}

#[test]
fn a_wrong_or_missing_source_password_is_a_clear_error() {
    let src_env = Env::new();
    let src = source_tree(&src_env, "data");
    src_env.backup(&[&src]);
    let dst = destination("other");

    let out = copy_with(&dst, &src_env.repo, Some("not the password"), &[]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("source repository"), "{err}");
    assert!(err.contains("wrong password"), "{err}");
    assert!(err.contains("RESPALDO_FROM_PASSWORD"), "{err}");
    assert!(!err.contains("--password-file"), "{err}");

    let out = copy_with(&dst, &src_env.repo, None, &[]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("source repository"), "{err}");
    assert!(err.contains("--from-password-file"), "{err}");

    // From a file, the right password works.
    let file = dst.path("from-password");
    fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let out = copy_with(
        &dst,
        &src_env.repo,
        None,
        &["--from-password-file", file.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(dst.snapshots().len(), 1);

    let out = copy_with(&dst, &dst.path("nowhere"), None, &[]);
    assert_eq!(code(&out), 10, "{}", describe(&out));
    assert!(
        stderr(&out).contains("source repository"),
        "{}",
        describe(&out)
    );
}
