//! The backup command through the library: what lands in the snapshot.
#![allow(clippy::unwrap_used)]

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use respaldo::{BackupOptions, InitOptions, KdfParams, NoProgress, NodeKind, Repository};
use snapshot_index::{FLAG_CHANGED_WHILE_READ, Node, lookup_path};

struct Fixture {
    _dirs: Vec<tempfile::TempDir>,
    source: std::path::PathBuf,
    repo: Repository,
}

fn fixture() -> Fixture {
    let source = tempfile::tempdir().unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let options = InitOptions {
        password: Some("pw".into()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = Repository::init(&repo_dir.path().join("repo"), &options, cache.path()).unwrap();
    Fixture {
        source: source.path().to_path_buf(),
        _dirs: vec![source, repo_dir, cache],
        repo,
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn backup(
    repo: &Repository,
    paths: &[&Path],
    tweak: impl FnOnce(&mut BackupOptions),
) -> respaldo::BackupOutcome {
    let mut options = BackupOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        ..BackupOptions::default()
    };
    tweak(&mut options);
    repo.backup(&options, &NoProgress).unwrap()
}

fn node_at(repo: &Repository, tree: &respaldo::ChunkId, path: &Path) -> Option<Node> {
    let components: Vec<&[u8]> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.as_bytes()),
            _ => None,
        })
        .collect();
    lookup_path(repo.store(), tree, &components).unwrap()
}

fn content(repo: &Repository, node: &Node) -> Vec<u8> {
    node.content
        .iter()
        .flat_map(|id| repo.store().get_blob(id).unwrap())
        .collect()
}

#[test]
fn files_land_at_their_absolute_paths_with_content_and_metadata() {
    let f = fixture();
    let big = noise(1, 9 * 1024 * 1024 + 123);
    std::fs::create_dir_all(f.source.join("dir/empty")).unwrap();
    std::fs::write(f.source.join("dir/big.bin"), &big).unwrap();
    std::fs::write(f.source.join("dir/small.txt"), b"hello").unwrap();
    std::fs::write(f.source.join("empty.txt"), b"").unwrap();
    std::os::unix::fs::symlink("dir/small.txt", f.source.join("link")).unwrap();
    std::fs::hard_link(f.source.join("dir/small.txt"), f.source.join("hard.txt")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    std::fs::write(f.source.join(name), b"latin-1 name").unwrap();

    let out = backup(&f.repo, &[&f.source], |_| {});
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let tree = out.snapshot.tree;
    assert_eq!(out.snapshot.paths, [f.source.to_string_lossy()]);

    let big_node = node_at(&f.repo, &tree, &f.source.join("dir/big.bin")).unwrap();
    assert_eq!(big_node.size, big.len() as u64);
    assert!(
        big_node.content.len() > 2,
        "a 9 MiB file spans several chunks"
    );
    assert_eq!(content(&f.repo, &big_node), big);
    let empty = node_at(&f.repo, &tree, &f.source.join("empty.txt")).unwrap();
    assert_eq!(
        (empty.kind, empty.size, empty.content.len()),
        (NodeKind::File, 0, 0)
    );
    assert_eq!(
        node_at(&f.repo, &tree, &f.source.join("dir/empty"))
            .unwrap()
            .kind,
        NodeKind::Dir
    );
    let link = node_at(&f.repo, &tree, &f.source.join("link")).unwrap();
    assert_eq!(
        (link.kind, link.link_target.as_slice()),
        (NodeKind::Symlink, &b"dir/small.txt"[..])
    );
    // The first name in walk order ("dir/small.txt" sorts before "hard.txt") holds the file;
    // the second is a hard link to it that still carries the content.
    let hard = node_at(&f.repo, &tree, &f.source.join("hard.txt")).unwrap();
    assert_eq!(hard.kind, NodeKind::Hardlink);
    assert_eq!(
        hard.link_target,
        f.source.join("dir/small.txt").as_os_str().as_bytes()
    );
    assert_eq!(content(&f.repo, &hard), b"hello");
    let latin = node_at(&f.repo, &tree, &f.source.join(name)).unwrap();
    assert_eq!(content(&f.repo, &latin), b"latin-1 name");

    let meta = std::fs::metadata(f.source.join("dir/small.txt")).unwrap();
    let small = node_at(&f.repo, &tree, &f.source.join("dir/small.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(small.mode, meta.mode() & 0o7777);
    assert_eq!(
        small.mtime_ns,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    );
    assert_eq!(small.inode, meta.ino());
    let s = &out.snapshot.summary;
    assert_eq!(
        (s.files_new, s.files_unchanged, s.dirs, s.others),
        (5, 0, 3, 1)
    );
    assert_eq!(s.bytes_read, big.len() as u64 + 5 + 5 + 12);
}

#[test]
fn an_unchanged_file_is_not_read_again() {
    let f = fixture();
    for i in 0..20 {
        std::fs::write(f.source.join(format!("f{i}")), noise(i, 10_000)).unwrap();
    }
    let first = backup(&f.repo, &[&f.source], |_| {});
    assert_eq!(first.snapshot.summary.files_new, 20);
    let second = backup(&f.repo, &[&f.source], |_| {});
    let s = &second.snapshot.summary;
    assert_eq!(
        (
            s.files_unchanged,
            s.files_new,
            s.files_changed,
            s.bytes_read
        ),
        (20, 0, 0, 0)
    );
    assert_eq!(second.snapshot.parent, Some(first.snapshot_id));
    // The folders above the source change all the time (/tmp); the source's own tree does not.
    let subtree = |out: &respaldo::BackupOutcome| {
        node_at(&f.repo, &out.snapshot.tree, &f.source)
            .unwrap()
            .subtree
    };
    assert_eq!(
        subtree(&second),
        subtree(&first),
        "same content, same trees"
    );
    // Change one file: only it is read.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(f.source.join("f3"), b"changed").unwrap();
    let third = backup(&f.repo, &[&f.source], |_| {});
    let s = &third.snapshot.summary;
    assert_eq!(
        (s.files_unchanged, s.files_changed, s.bytes_read),
        (19, 1, 7)
    );
    let node = node_at(&f.repo, &third.snapshot.tree, &f.source.join("f3")).unwrap();
    assert_eq!(content(&f.repo, &node), b"changed");
    assert_eq!(node.flags & FLAG_CHANGED_WHILE_READ, 0);
}

#[test]
fn excludes_and_marker_files_leave_paths_out() {
    let f = fixture();
    std::fs::create_dir_all(f.source.join("keep/cache")).unwrap();
    std::fs::create_dir_all(f.source.join("skipme")).unwrap();
    std::fs::write(f.source.join("keep/a.txt"), b"a").unwrap();
    std::fs::write(f.source.join("keep/b.tmp"), b"b").unwrap();
    std::fs::write(f.source.join("keep/cache/CACHEDIR.TAG"), b"x").unwrap();
    std::fs::write(f.source.join("skipme/c"), b"c").unwrap();
    std::fs::write(f.source.join(".hidden"), b"hidden files are kept").unwrap();
    std::fs::write(f.source.join(".gitignore"), b"keep/a.txt\n").unwrap();
    let patterns = f.source.join("patterns");
    std::fs::write(&patterns, "# comment\n\nskipme\n").unwrap();
    let out = backup(&f.repo, &[&f.source], |o| {
        o.excludes = vec!["*.tmp".into()];
        o.exclude_files = vec![patterns.clone()];
        o.exclude_if_present = vec!["CACHEDIR.TAG".into()];
    });
    let tree = out.snapshot.tree;
    let has = |p: &str| node_at(&f.repo, &tree, &f.source.join(p)).is_some();
    assert!(has("keep/a.txt"), "a .gitignore does not exclude anything");
    assert!(has(".hidden"));
    assert!(!has("keep/b.tmp"));
    assert!(!has("keep/cache"));
    assert!(!has("skipme"));
}

#[test]
fn missing_and_unreadable_paths_are_warnings() {
    let f = fixture();
    std::fs::write(f.source.join("ok"), b"fine").unwrap();
    let missing = f.source.join("does-not-exist");
    let out = backup(&f.repo, &[&f.source.join("ok"), &missing], |_| {});
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].path, missing);
    assert!(node_at(&f.repo, &out.snapshot.tree, &f.source.join("ok")).is_some());

    // Nothing that exists: an error, no snapshot.
    let before = f.repo.catalog().unwrap().entries().len();
    let err = f
        .repo
        .backup(
            &BackupOptions {
                paths: vec![missing.clone()],
                ..BackupOptions::default()
            },
            &NoProgress,
        )
        .unwrap_err();
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    assert_eq!(f.repo.catalog().unwrap().entries().len(), before);

    use std::os::unix::fs::PermissionsExt;
    let secret = f.source.join("secret");
    std::fs::write(&secret, b"no").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&secret).is_ok() {
        eprintln!("skipped the unreadable-file part: running as root");
        return;
    }
    let out = backup(&f.repo, &[&f.source], |_| {});
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert_eq!(out.warnings[0].path, secret);
    // Only the stored file counts; the unreadable one is a warning, not a new file.
    assert_eq!(
        out.snapshot.summary.files_new + out.snapshot.summary.files_unchanged,
        1
    );
    assert!(node_at(&f.repo, &out.snapshot.tree, &secret).is_none());
    assert!(node_at(&f.repo, &out.snapshot.tree, &f.source.join("ok")).is_some());
}

#[test]
fn stdin_becomes_one_file_at_the_root() {
    let f = fixture();
    let data = noise(9, 3 * 1024 * 1024);
    let out = f
        .repo
        .backup_stdin(
            &BackupOptions::default(),
            "dump.sql",
            &mut data.as_slice(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(out.snapshot.paths, ["/dump.sql"]);
    let node = node_at(&f.repo, &out.snapshot.tree, Path::new("/dump.sql")).unwrap();
    assert_eq!(content(&f.repo, &node), data);
    assert!(
        f.repo
            .backup_stdin(
                &BackupOptions::default(),
                "../escape",
                &mut &b""[..],
                &NoProgress
            )
            .is_err()
    );
}

#[test]
fn a_path_given_as_a_symlink_to_a_folder_is_stored_as_the_symlink() {
    let f = fixture();
    std::fs::create_dir_all(f.source.join("real")).unwrap();
    std::fs::write(f.source.join("real/a"), b"a").unwrap();
    std::fs::write(f.source.join("real/zzz"), b"z").unwrap();
    std::os::unix::fs::symlink(f.source.join("real"), f.source.join("alias")).unwrap();
    let out = backup(&f.repo, &[&f.source.join("alias")], |_| {});
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let node = node_at(&f.repo, &out.snapshot.tree, &f.source.join("alias")).unwrap();
    assert_eq!(node.kind, NodeKind::Symlink);
    assert_eq!(
        node.link_target,
        f.source.join("real").as_os_str().as_bytes()
    );
    assert_eq!(
        out.snapshot.summary.files_new, 0,
        "nothing below the link is read"
    );
}

/// A file whose content does not match its metadata while read (procfs reports size 0 for
/// files that have content) is noted as changed while read.
#[test]
fn a_file_that_changes_while_read_is_noted() {
    let status = std::path::PathBuf::from(format!("/proc/{}/status", std::process::id()));
    if !status.exists() {
        eprintln!("skipped: no /proc on this system");
        return;
    }
    let f = fixture();
    let out = backup(&f.repo, &[&status], |_| {});
    let node = node_at(&f.repo, &out.snapshot.tree, &status).unwrap();
    assert_ne!(node.flags & FLAG_CHANGED_WHILE_READ, 0);
    assert_eq!(out.snapshot.summary.files_changed_while_read, 1);
    assert!(node.size > 0, "the content read is stored");
    assert_eq!(node.size as usize, content(&f.repo, &node).len());
}
