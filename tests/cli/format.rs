//! Repository format versions: `init --format-version`, and each format through backup,
//! forget, prune, check and restore (format 2 stores small trees in groups, which prune
//! regroups).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::tree;
use crate::util::{Env, code, describe, json, stderr};

/// Folders of a few small files each: a tree per folder, small enough to be grouped. `round`
/// changes a file in every other folder.
fn many_folders(root: &Path, round: u32) {
    for folder in 0..40u32 {
        let dir = root.join(format!("folder-{folder:02}"));
        fs::create_dir_all(&dir).unwrap();
        for file in 0..3u32 {
            let changed = file == 0 && folder % 2 == 0;
            let version = if changed { round } else { 0 };
            let content = format!("folder {folder} file {file} version {version}\n").repeat(20);
            fs::write(dir.join(format!("file-{file}.txt")), content).unwrap();
        }
    }
}

/// The header version of every file under `folder` (recursively).
fn header_versions(folder: &Path) -> Vec<u16> {
    let mut versions = Vec::new();
    for entry in fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            versions.extend(header_versions(&path));
        } else {
            let bytes = fs::read(&path).unwrap();
            versions.push(u16::from_le_bytes([bytes[8], bytes[9]]));
        }
    }
    versions
}

#[test]
fn each_format_version_backs_up_prunes_checks_and_restores_byte_for_byte() {
    for version in [1u16, 2] {
        let env = Env::empty();
        let out = env.ok(["init", "--json", "--format-version", &version.to_string()]);
        assert_eq!(json(&out)["format_version"], u64::from(version));
        let config = fs::read(env.repo.join("config")).unwrap();
        assert_eq!(u16::from_le_bytes([config[8], config[9]]), version);

        let src = env.path("src");
        for round in 0..3 {
            many_folders(&src, round);
            env.backup(&[&src]);
        }
        // Two snapshots go; prune repacks every pack that holds anything they alone used.
        env.ok(["forget", "--keep-last", "1"]);
        env.ok(["prune", "--max-unused", "0%"]);
        for kind in ["packs", "index"] {
            let versions = header_versions(&env.repo.join(kind));
            assert!(!versions.is_empty());
            assert!(
                versions.iter().all(|v| *v == version),
                "format {version}: {kind} of versions {versions:?}"
            );
        }
        env.ok(["check", "--read-data"]);

        let target = env.path("restored");
        env.ok([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        let diffs = tree::compare(&src, &tree::restored(&target, &src));
        assert!(diffs.is_empty(), "format {version}:\n{}", diffs.join("\n"));
    }
}

#[test]
fn an_unknown_format_version_is_refused_and_nothing_is_created() {
    let env = Env::empty();
    for version in ["0", "3"] {
        let out = env.run(["init", "--format-version", version]);
        assert_eq!(code(&out), 2, "{}", describe(&out));
        assert!(
            stderr(&out).contains("--format-version"),
            "{}",
            describe(&out)
        );
        assert!(!env.repo.join("config").exists());
    }
}
