//! Building source trees with known metadata, and comparing a restored tree with its source:
//! kind, content, permission bits, mtime (seconds) and symlink targets.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// An mtime in the past that no restore would produce by accident.
pub const OLD: i64 = 1_000_000_000;

/// `n` bytes of deterministic pseudo-random data (xorshift64*), incompressible.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Sets the mtime of a file or folder (not a symlink) to `secs` after the epoch.
pub fn set_mtime(path: &Path, secs: i64) {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap());
    File::open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// Sets the permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a file with `mode` and `mtime`.
pub fn file(path: &Path, content: &[u8], mode: u32, mtime: i64) {
    fs::write(path, content).unwrap();
    set_mode(path, mode);
    set_mtime(path, mtime);
}

/// Where a restore into `target` puts the backed-up absolute path `source`.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// A tree exercising most of what a backup must keep, under `root` (created):
///
/// ```text
/// root/                      0755
///   hello.txt                0644  "hello, world\n"
///   empty                    0600  (0 bytes)
///   script.sh                0755
///   private.txt              0640
///   big.bin                  0644  9 MiB pseudo-random (more than the 4 MiB maximum chunk)
///   caf\xe9                  0644  a name that is not UTF-8
///   sub/                     0750
///     nested.txt             0644
///     deeper/empty-dir/      0700  (empty folder)
///   link -> hello.txt        (relative symlink)
///   dangling -> does/not/exist
///   abs-link -> /etc         (absolute symlink)
/// ```
/// Every file and folder gets a distinct old mtime.
pub fn rich_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(root.join("sub/deeper/empty-dir")).unwrap();
    file(&root.join("hello.txt"), b"hello, world\n", 0o644, OLD + 1);
    file(&root.join("empty"), b"", 0o600, OLD + 2);
    file(
        &root.join("script.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
        OLD + 3,
    );
    file(&root.join("private.txt"), b"secret-ish\n", 0o640, OLD + 4);
    file(
        &root.join("big.bin"),
        &pseudo_random(9 << 20, 7),
        0o644,
        OLD + 5,
    );
    let latin1 = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    file(&latin1, b"non-UTF-8 name\n", 0o644, OLD + 6);
    file(&root.join("sub/nested.txt"), b"nested\n", 0o644, OLD + 7);
    symlink("hello.txt", root.join("link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("/etc", root.join("abs-link")).unwrap();
    // Folders last, deepest first: creating entries changes a folder's mtime.
    set_mode(&root.join("sub/deeper/empty-dir"), 0o700);
    set_mtime(&root.join("sub/deeper/empty-dir"), OLD + 8);
    set_mtime(&root.join("sub/deeper"), OLD + 9);
    set_mode(&root.join("sub"), 0o750);
    set_mtime(&root.join("sub"), OLD + 10);
    set_mode(root, 0o755);
    set_mtime(root, OLD + 11);
}

/// Differences between tree `a` (the source) and tree `b` (the restore), one line each.
/// Compares the roots too (mode and mtime).
pub fn compare(a: &Path, b: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    compare_node(a, b, &mut diffs);
    diffs
}

fn compare_node(a: &Path, b: &Path, diffs: &mut Vec<String>) {
    let ma = match fs::symlink_metadata(a) {
        Ok(m) => m,
        Err(e) => return diffs.push(format!("{}: cannot stat source: {e}", a.display())),
    };
    let mb = match fs::symlink_metadata(b) {
        Ok(m) => m,
        Err(e) => return diffs.push(format!("{}: missing in the restore: {e}", b.display())),
    };
    let (ta, tb) = (ma.file_type(), mb.file_type());
    let kind = |t: fs::FileType| {
        if t.is_dir() {
            "dir"
        } else if t.is_symlink() {
            "symlink"
        } else if t.is_file() {
            "file"
        } else {
            "other"
        }
    };
    if kind(ta) != kind(tb) {
        return diffs.push(format!("{}: {} became {}", b.display(), kind(ta), kind(tb)));
    }
    if ta.is_symlink() {
        let (la, lb) = (fs::read_link(a).unwrap(), fs::read_link(b).ok());
        if Some(&la) != lb.as_ref() {
            diffs.push(format!(
                "{}: symlink target {la:?} became {lb:?}",
                b.display()
            ));
        }
        return;
    }
    if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!(
            "{}: mode {:o} became {:o}",
            b.display(),
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if ma.mtime() != mb.mtime() {
        diffs.push(format!(
            "{}: mtime {} became {}",
            b.display(),
            ma.mtime(),
            mb.mtime()
        ));
    }
    if ta.is_file() {
        if ma.len() != mb.len() {
            diffs.push(format!(
                "{}: size {} became {}",
                b.display(),
                ma.len(),
                mb.len()
            ));
        } else if fs::read(a).ok() != fs::read(b).ok() {
            diffs.push(format!("{}: content differs", b.display()));
        }
    } else if ta.is_dir() {
        let names = |dir: &Path| -> Vec<std::ffi::OsString> {
            let mut v: Vec<_> = fs::read_dir(dir)
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        for extra in nb.iter().filter(|n| !na.contains(n)) {
            diffs.push(format!("{}: not in the source", b.join(extra).display()));
        }
        for name in &na {
            compare_node(&a.join(name), &b.join(name), diffs);
        }
    }
}
