//! A repository on a full file system: the backup that does not fit fails with exit code 1,
//! says which file could not be written and why, leaves no temporary file and no lock; the
//! repository stays valid, and prune frees what the failed backup left.
//!
//! Needs a small file system of its own: a tmpfs, mounted for the test (root only). Where that
//! is impossible, the test says so and passes.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::support;
use crate::util::{Env, code, describe, json, stderr};

/// Size of the small file system: one full pack of the big backup fits, the second does not,
/// so the failed backup leaves data behind for prune. A pack closes once it holds 16 MiB, so
/// it may hold up to one more chunk (4 MiB; where cut points fall depends on the repository's
/// random key): 24 MiB leaves room for the largest first pack.
const FS_SIZE: &str = "24m";

/// Unmounts the file system when dropped, even when an assertion failed.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "umount {} failed ({}): {}; detaching it",
                    self.0.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
            Err(e) => eprintln!("cannot run umount {}: {e}", self.0.display()),
        }
    }
}

/// Mounts a tmpfs of `size` on `dir` (created), or says why it cannot.
fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size},mode=0700"))
        .arg("tmpfs")
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mounted(dir.to_path_buf()))
    } else {
        Err(format!(
            "mount exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn backup_into_a_full_file_system_fails_cleanly_and_prune_frees_its_leftovers() {
    let mut env = Env::empty();
    let small_fs = env.path("small-fs");
    // Declared after `env`: dropped (unmounted) before the temporary folder is removed.
    let _mounted = match mount_tmpfs(&small_fs, FS_SIZE) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("skipped: cannot mount a small tmpfs ({reason})");
            return;
        }
    };
    env.repo = small_fs.join("repo");
    env.ok(["init"]);

    let small = env.path("small");
    support::make_source(&small, 20, 4 << 10, &[("small.bin", 100 << 10, 1)], 1);
    env.backup(&[&small]);
    let first = env.snapshots();
    assert_eq!(first.len(), 1);

    // 40 MiB of incompressible data: more than the file system has left.
    let big = env.path("big");
    support::make_source(
        &big,
        0,
        0,
        &[
            ("big-1.bin", 10 << 20, 2),
            ("big-2.bin", 10 << 20, 3),
            ("big-3.bin", 10 << 20, 4),
            ("big-4.bin", 10 << 20, 5),
        ],
        2,
    );
    let out = env.run([OsStr::new("backup"), big.as_os_str()]);
    assert_eq!(
        code(&out),
        1,
        "a backup that does not fit must fail:\n{}",
        describe(&out)
    );
    let err = stderr(&out);
    let packs = env.repo.join("packs");
    assert!(
        err.contains("No space left on device") && err.contains(packs.to_str().unwrap()),
        "the message does not name the file that could not be written and why:\n{err}"
    );
    let leftovers = support::dot_files(&env.repo);
    assert!(
        leftovers.is_empty(),
        "the failed backup left temporary files: {leftovers:?}"
    );
    let locks = support::names(&env.repo.join("locks"));
    assert!(
        locks.is_empty(),
        "the failed backup left its lock: {locks:?}"
    );
    let used = support::disk_usage(&env.repo);
    assert!(
        used > 16 << 20,
        "the failed backup wrote no full pack ({used} bytes in the repository): nothing for \
         prune to free, the test needs other sizes"
    );

    // Still valid, and the first snapshot restores.
    support::assert_check_read_data(&env, "after the failed backup");
    assert_eq!(
        support::ids(&env.snapshots()),
        support::ids(&first),
        "the failed backup saved a snapshot"
    );
    support::assert_restores(&env, &first[0], "after the failed backup");

    // Prune frees what the failed backup wrote.
    let out = env.ok(["prune", "--json"]);
    let outcome = json(&out);
    assert!(
        outcome["bytes_freed"].as_u64().unwrap() > 16 << 20,
        "prune freed too little: {outcome}"
    );
    let after = support::disk_usage(&env.repo);
    assert!(
        after < 1 << 20,
        "the repository still uses {after} bytes after prune: {outcome}"
    );
    support::assert_check_read_data(&env, "after prune");
    support::assert_restores(&env, &first[0], "after prune");
    eprintln!("disk full: backup failed with: {}", err.trim());
}
