//! Damage: one flipped byte in a pack, an index file, a snapshot or a key file, a missing
//! pack, a pack no index lists. `check` (with `--read-data` where the damage is inside data)
//! names the damaged file and what it affects, and exits non-zero; restore names the file too.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, code, describe, json, stderr};

/// Files of `dir` (recursively), sorted by size, largest first.
fn files_by_size(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(fs::metadata(f).unwrap().len()));
    files
}

/// Flips one bit of the byte at the middle of `file`.
fn flip_middle(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(file, bytes).unwrap();
}

fn name_of(file: &Path) -> String {
    file.file_name().unwrap().to_string_lossy().into_owned()
}

/// An encrypted repository with one backup of a folder holding `big` (1 MiB of varied data,
/// so that it fills the largest pack) and `small`.
fn env_with_backup() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let mut big = Vec::with_capacity(1 << 20);
    let mut x: u32 = 12345;
    while big.len() < 1 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("small"), b"small file").unwrap();
    env.backup(&[&src]);
    (env, src)
}

/// `check ARGS --json`: exit code and the report.
fn check(env: &Env, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    (code(&out), json(&out))
}

fn error_objects(report: &Value) -> Vec<String> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object"].as_str().unwrap().to_string())
        .collect()
}

fn affected_paths(report: &Value) -> Vec<String> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["affected"].as_array().unwrap().clone())
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_intact_repository_checks_clean_with_and_without_reading_data() {
    let (env, _) = env_with_backup();
    let (status, report) = check(&env, &[]);
    assert_eq!(status, 0, "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["packs_read"], 0);
    let (status, report) = check(&env, &["--read-data"]);
    assert_eq!(status, 0, "{report}");
    assert!(report["packs_read"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["packs_read"], report["packs"]);
    let out = env.ok(["check"]);
    assert!(crate::util::stdout(&out).contains("no errors found"));
}

#[test]
fn a_flipped_byte_in_a_pack_is_found_by_read_data_and_by_restore() {
    let (env, src) = env_with_backup();
    let pack = files_by_size(&env.repo.join("packs"))[0].clone();
    flip_middle(&pack);

    let (status, report) = check(&env, &["--read-data"]);
    assert_eq!(status, 1, "{report}");
    let object = format!("packs/{}", name_of(&pack));
    assert_eq!(error_objects(&report), vec![object.clone()], "{report}");
    let affected = affected_paths(&report);
    let big = format!("{}/big", src.display());
    assert_eq!(affected, vec![big], "{report}");

    // The text report says the same, on standard error, and exits 1.
    let out = env.run(["check", "--read-data"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains(&object), "{err}");
    assert!(err.contains("affects snapshot"), "{err}");

    let target = env.path("restore");
    let out = env.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains(&object), "{}", describe(&out));
}

#[test]
fn a_flipped_byte_in_an_index_file_is_named() {
    let (env, _) = env_with_backup();
    let index = files_by_size(&env.repo.join("index"))[0].clone();
    flip_middle(&index);
    let (status, report) = check(&env, &[]);
    assert_eq!(status, 1, "{report}");
    let objects = error_objects(&report);
    assert!(
        objects.contains(&format!("index/{}", name_of(&index))),
        "{report}"
    );
    // Its blobs (this backup's only index file) are now listed nowhere, the root tree among
    // them: the whole snapshot is reported as affected.
    assert!(objects.contains(&"missing blobs".to_string()), "{report}");
    assert_eq!(affected_paths(&report), vec!["/".to_string()], "{report}");
    // The packs themselves are intact, and no index lists them now.
    assert_eq!(report["warnings"].as_array().unwrap().len(), 2, "{report}");
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_named() {
    let (env, _) = env_with_backup();
    let snapshot = files_by_size(&env.repo.join("snapshots"))[0].clone();
    flip_middle(&snapshot);
    let (status, report) = check(&env, &["--read-data"]);
    assert_eq!(status, 1, "{report}");
    let object = format!("snapshots/{}", name_of(&snapshot));
    assert_eq!(error_objects(&report), vec![object.clone()], "{report}");
    // Restore reads the manifest too, and names it.
    assert_restore_fails_naming(&env, &object);
}

/// `restore latest` into a fresh folder fails, and its message names `object`.
fn assert_restore_fails_naming(env: &Env, object: &str) {
    let target = env.path("restore-of-damage");
    let out = env.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains(object), "{}", describe(&out));
}

#[test]
fn a_flipped_byte_in_the_only_key_file_is_named_by_every_command() {
    let (env, _) = env_with_backup();
    let key = files_by_size(&env.repo.join("keys"))[0].clone();
    flip_middle(&key);
    let object = format!("keys/{}", name_of(&key));
    let out = env.run(["check", "--read-data"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains(&object), "{}", describe(&out));
    assert_restore_fails_naming(&env, &object);
}

#[test]
fn a_flipped_byte_in_an_index_file_is_named_by_a_restore_on_another_machine() {
    let (env, _) = env_with_backup();
    let index = files_by_size(&env.repo.join("index"))[0].clone();
    flip_middle(&index);
    // A fresh cache reads every index file, as on another machine.
    let mut env = env;
    env.cache = env.path("cache-elsewhere");
    assert_restore_fails_naming(&env, &format!("index/{}", name_of(&index)));
    // It does not lock the user out: repair runs there, and the restore then works.
    env.ok(["repair", "index"]);
    let target = env.path("restore-after-repair");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
}

#[test]
fn a_flipped_byte_in_a_key_file_is_named() {
    let (env, _) = env_with_backup();
    let keys = files_by_size(&env.repo.join("keys"));
    assert_eq!(keys.len(), 1);
    // A second key keeps the repository open while the first is damaged.
    let second = env.path("second-password");
    fs::write(&second, "another password\n").unwrap();
    let mut cmd = env.command();
    cmd.args(["key", "add", "--new-password-file"])
        .arg(&second)
        .arg("--repo")
        .arg(&env.repo);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    flip_middle(&keys[0]);
    // Open with the intact key's password: the damaged one is reported, not used.
    let mut env = env;
    env.password = Some("another password".to_string());

    let (status, report) = check(&env, &[]);
    assert_eq!(status, 1, "{report}");
    assert_eq!(
        error_objects(&report),
        vec![format!("keys/{}", name_of(&keys[0]))],
        "{report}"
    );
}

#[test]
fn a_missing_pack_is_named_with_the_files_it_affects() {
    let (env, src) = env_with_backup();
    let pack = files_by_size(&env.repo.join("packs"))[0].clone();
    fs::remove_file(&pack).unwrap();
    let (status, report) = check(&env, &[]);
    assert_eq!(status, 1, "{report}");
    assert_eq!(
        error_objects(&report),
        vec![format!("packs/{}", name_of(&pack))],
        "{report}"
    );
    // Both files' data share the one data pack.
    assert_eq!(
        affected_paths(&report),
        vec![
            format!("{}/big", src.display()),
            format!("{}/small", src.display())
        ]
    );
}

#[test]
fn a_pack_no_index_lists_is_only_a_warning() {
    let (env, _) = env_with_backup();
    let index = files_by_size(&env.repo.join("index"));
    // Keep the data listed: copy a pack under a new valid name nobody lists.
    let pack = files_by_size(&env.repo.join("packs"))[0].clone();
    let bytes = fs::read(&pack).unwrap();
    let mut extra = bytes.clone();
    extra.push(0);
    let name = blake3_hex(&extra);
    let dir = env.repo.join("packs").join(&name[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), &extra).unwrap();
    assert_eq!(files_by_size(&env.repo.join("index")), index);
    let (status, report) = check(&env, &[]);
    assert_eq!(status, 0, "{report}");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["object"], format!("packs/{name}"));
}

#[test]
fn read_data_subsets_are_deterministic_and_parts_cover_every_pack_once() {
    let (env, _) = env_with_backup();
    let (_, all) = check(&env, &["--read-data"]);
    let total = all["packs_read"].as_u64().unwrap();
    let parts: u64 = (1..=3)
        .map(|k| {
            let (status, report) = check(&env, &["--read-data-subset", &format!("{k}/3")]);
            assert_eq!(status, 0, "{report}");
            report["packs_read"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(parts, total);
    let (_, hundred) = check(&env, &["--read-data-subset", "100%"]);
    assert_eq!(hundred["packs_read"], total);
    let (_, again) = check(&env, &["--read-data-subset", "50%"]);
    let (_, once_more) = check(&env, &["--read-data-subset", "50%"]);
    assert_eq!(again["packs_read"], once_more["packs_read"]);
    let out = env.run(["check", "--read-data-subset", "0/3"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
}

/// The name a file with these bytes has in the repository: its BLAKE3, in hex.
fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
