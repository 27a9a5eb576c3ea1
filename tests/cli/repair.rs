//! `repair index` and `repair snapshots`: from each kind of damage back to a repository that
//! `check --read-data` accepts, with what survived restoring byte for byte.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, code, describe, json};

fn files_in(dir: &Path) -> Vec<PathBuf> {
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

/// An encrypted repository with one backup of `src/big` (1 MiB) and `src/small`; both files'
/// data share one data pack, the trees are in a smaller tree pack.
fn setup() -> (Env, PathBuf, Vec<u8>, Vec<u8>) {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let big = crate::tree::pseudo_random(1 << 20, 7);
    let small = b"small file".to_vec();
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("small"), &small).unwrap();
    env.backup(&[&src]);
    (env, src, big, small)
}

fn check_ok(env: &Env) -> bool {
    let out = env.run(["check", "--read-data", "--json"]);
    let report = json(&out);
    code(&out) == 0 && report["ok"] == true
}

fn restore(env: &Env, snapshot: &str, name: &str, src: &Path) -> PathBuf {
    let target = env.path(name);
    env.ok([
        OsStr::new("restore"),
        OsStr::new(snapshot),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    crate::tree::restored(&target, src)
}

#[test]
fn repair_index_rebuilds_lost_index_files_from_the_packs() {
    let (env, src, big, small) = setup();
    for file in files_in(&env.repo.join("index")) {
        fs::remove_file(file).unwrap();
    }
    // A fresh cache, as on another machine: nothing lists the blobs now.
    let mut env = env;
    env.cache = env.path("cache-2");
    assert!(!check_ok(&env));
    let out = env.ok(["repair", "index", "--json"]);
    let report = json(&out);
    assert!(report["blobs_listed"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["index_files_written"], 1, "{report}");
    assert!(check_ok(&env));
    let restored = restore(&env, "latest", "restore", &src);
    assert_eq!(fs::read(restored.join("big")).unwrap(), big);
    assert_eq!(fs::read(restored.join("small")).unwrap(), small);
}

#[test]
fn repair_index_replaces_a_damaged_index_file() {
    let (env, _, _, _) = setup();
    let index = files_in(&env.repo.join("index"))[0].clone();
    let mut bytes = fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&index, bytes).unwrap();
    assert!(!check_ok(&env));
    let out = env.ok(["repair", "index", "--json"]);
    let report = json(&out);
    assert_eq!(report["index_files_removed"], 1, "{report}");
    assert!(
        report["notes"].to_string().contains("index/"),
        "the damaged file is named: {report}"
    );
    assert!(!index.exists());
    assert!(check_ok(&env));
}

#[test]
fn a_damaged_blob_is_left_out_and_repair_snapshots_keeps_what_survived() {
    let (env, src, _, small) = setup();
    let pack = files_in(&env.repo.join("packs"))[0].clone();
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&pack, bytes).unwrap();

    let out = env.ok(["repair", "index", "--read-data", "--json"]);
    assert_eq!(json(&out)["blobs_dropped"], 1, "{}", describe(&out));
    let dry = env.ok(["repair", "snapshots", "--dry-run", "--json"]);
    let dry = json(&dry);
    assert_eq!(dry["repaired"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(env.snapshots().len(), 1, "a dry run writes nothing");

    let out = env.ok(["repair", "snapshots", "--forget", "--json"]);
    let report: Value = json(&out);
    let repaired = &report["repaired"][0];
    let lost = repaired["lost"].to_string();
    assert!(lost.contains("big"), "{report}");
    assert!(!lost.contains("small"), "{report}");
    assert!(check_ok(&env));

    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert!(
        snapshots[0]["tags"].to_string().contains("repaired"),
        "{snapshots:?}"
    );
    let restored = restore(&env, "latest", "restore", &src);
    assert_eq!(fs::read(restored.join("small")).unwrap(), small);
    assert!(!restored.join("big").exists());
}

#[test]
fn a_lost_pack_is_dropped_by_repair_index_then_repair_snapshots() {
    let (env, src, _, _) = setup();
    // The data pack is the largest; the tree pack stays.
    fs::remove_file(&files_in(&env.repo.join("packs"))[0]).unwrap();
    env.ok(["repair", "index"]);
    let out = env.ok(["repair", "snapshots", "--json"]);
    let report = json(&out);
    assert_eq!(report["repaired"].as_array().unwrap().len(), 1, "{report}");
    // The original is kept without --forget: check still reports it.
    assert!(!check_ok(&env));
    assert_eq!(env.snapshots().len(), 2);
    let original = report["repaired"][0]["original"]
        .as_str()
        .unwrap()
        .to_string();
    let repaired = report["repaired"][0]["repaired"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(["repair", "snapshots", "--forget", &original]);
    assert!(check_ok(&env));
    let restored = restore(&env, &repaired, "restore", &src);
    assert!(
        restored.exists(),
        "the folder itself survives, emptied of lost files"
    );
    assert!(!restored.join("big").exists());
}

#[test]
fn a_damaged_manifest_is_deleted_by_repair_snapshots_forget() {
    let (env, src, big, _) = setup();
    // A second snapshot, then the first manifest damaged.
    let first = files_in(&env.repo.join("snapshots"))[0].clone();
    fs::write(src.join("third"), b"3").unwrap();
    env.backup(&[&src]);
    let mut bytes = fs::read(&first).unwrap();
    bytes[20] ^= 1;
    fs::write(&first, bytes).unwrap();
    assert!(!check_ok(&env));
    // This host read the manifest before it was damaged and kept a copy (verified against the
    // manifest's id), so it still lists it; a host without that copy cannot.
    let out = env.run(["snapshots"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let fresh_cache = env.cache.with_extension("fresh");
    let out = env
        .command()
        .env("RESPALDO_CACHE_DIR", &fresh_cache)
        .args(["snapshots", "--repo"])
        .arg(&env.repo)
        .output()
        .unwrap();
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "snapshots/{}",
            first.file_name().unwrap().to_string_lossy()
        )),
        "{}",
        describe(&out)
    );

    let out = env.ok(["repair", "snapshots", "--forget", "--json"]);
    let report = json(&out);
    assert!(
        report["repaired"].to_string().contains("cannot be read"),
        "{report}"
    );
    assert!(!first.exists());
    assert!(check_ok(&env));
    assert_eq!(env.snapshots().len(), 1);
    let restored = restore(&env, "latest", "restore", &src);
    assert_eq!(fs::read(restored.join("big")).unwrap(), big);
}

/// Regression: a backup after `repair index --read-data` reused the chunk list of the unchanged
/// file whose damaged blob the repair had dropped, so every later snapshot shared the damage.
/// Now the file is read again, the blob is stored again, and even the old snapshot heals.
#[test]
fn a_backup_after_repair_stores_dropped_blobs_again_and_heals_old_snapshots() {
    let (env, src, big, small) = setup();
    let first = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    let pack = files_in(&env.repo.join("packs"))[0].clone();
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&pack, bytes).unwrap();
    env.ok(["repair", "index", "--read-data"]);
    assert!(!check_ok(&env), "the first snapshot lost a blob");

    let summary = env.backup(&[&src]);
    assert!(summary["blobs_added"].as_u64().unwrap() >= 1, "{summary}");
    assert!(check_ok(&env));
    let restored = restore(&env, &first, "restore", &src);
    assert_eq!(fs::read(restored.join("big")).unwrap(), big);
    assert_eq!(fs::read(restored.join("small")).unwrap(), small);
}
