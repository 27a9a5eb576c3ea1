//! ls, diff, dump and stats on snapshots built through the library, with exact expectations.
#![allow(clippy::unwrap_used)]

mod common;

use common::{MTIME_NS, dir, file, link, pseudo_random, repository, snapshot};
use respaldo::{ChangeKind, DiffEntry, Error, NodeKind, Repository, SnapshotEntry, Stats};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository,
    s1: SnapshotEntry,
    s2: SnapshotEntry,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// s1: /home/user/{a.txt, b.txt, docs/c.txt, e.txt, hl -> b.txt}, /mirror/c.txt (same tree as docs)
/// s2: a.txt changed, docs/c.txt replaced by docs/d.txt, e.txt touched; the rest equal.
fn fixture() -> Fixture {
    let temp = tempfile::tempdir().unwrap();
    let repo = repository(temp.path());
    let (a, b, a2) = (
        pseudo_random(5000, 1),
        pseudo_random(3000, 2),
        pseudo_random(4000, 3),
    );

    let b_node = file(&repo, "b.txt", &[&a, &b]);
    let mut hl = link("hl", NodeKind::Hardlink, "/home/user/b.txt");
    hl.content = b_node.content.clone();
    hl.size = b_node.size;
    let docs1 = vec![file(&repo, "c.txt", &[b"c content"])];
    let user1 = dir(
        &repo,
        "user",
        vec![
            file(&repo, "a.txt", &[&a]),
            b_node.clone(),
            dir(&repo, "docs", docs1.clone()),
            file(&repo, "e.txt", &[b"e"]),
            hl.clone(),
        ],
    );
    let mirror = dir(&repo, "mirror", docs1);
    let s1 = snapshot(
        &repo,
        vec![dir(&repo, "home", vec![user1]), mirror.clone()],
        MTIME_NS,
    );

    let mut e2 = file(&repo, "e.txt", &[b"e"]);
    e2.mtime_ns += 1;
    let user2 = dir(
        &repo,
        "user",
        vec![
            file(&repo, "a.txt", &[&a2]),
            b_node,
            dir(&repo, "docs", vec![file(&repo, "d.txt", &[b"d content"])]),
            e2,
            hl,
        ],
    );
    let s2 = snapshot(
        &repo,
        vec![dir(&repo, "home", vec![user2]), mirror],
        MTIME_NS + 1,
    );
    Fixture {
        _dir: temp,
        repo,
        s1,
        s2,
        a,
        b,
    }
}

fn paths(repo: &Repository, entry: &SnapshotEntry, path: Option<&str>) -> Vec<String> {
    repo.ls(entry, path)
        .unwrap()
        .into_iter()
        .map(|n| String::from_utf8(n.path).unwrap())
        .collect()
}

#[test]
fn ls_lists_depth_first_in_name_order() {
    let f = fixture();
    assert_eq!(
        paths(&f.repo, &f.s1, None),
        vec![
            "/home",
            "/home/user",
            "/home/user/a.txt",
            "/home/user/b.txt",
            "/home/user/docs",
            "/home/user/docs/c.txt",
            "/home/user/e.txt",
            "/home/user/hl",
            "/mirror",
            "/mirror/c.txt",
        ]
    );
    assert_eq!(
        paths(&f.repo, &f.s1, Some("/")),
        paths(&f.repo, &f.s1, None)
    );
    assert_eq!(
        paths(&f.repo, &f.s1, Some("/home/user/docs")),
        vec!["/home/user/docs", "/home/user/docs/c.txt"]
    );
    assert_eq!(
        paths(&f.repo, &f.s1, Some("home/user/a.txt/")),
        vec!["/home/user/a.txt"]
    );

    let listed = f.repo.ls(&f.s1, Some("/home/user/b.txt")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].node.kind, NodeKind::File);
    assert_eq!(listed[0].node.size, 8000);

    let err = f.repo.ls(&f.s1, Some("/home/nobody")).unwrap_err();
    match err {
        Error::Snapshot(snapshot_index::Error::PathNotFound { path, snapshot }) => {
            assert_eq!(path, "/home/nobody");
            assert_eq!(snapshot, f.s1.id.to_hex()[..8]);
        }
        other => panic!("expected PathNotFound, got {other}"),
    }
    // A path through a file is not found either.
    assert!(f.repo.ls(&f.s1, Some("/home/user/a.txt/x")).is_err());
}

#[test]
fn diff_reports_exact_changes() {
    let f = fixture();
    let entry = |path: &str, kind| DiffEntry {
        path: path.to_string(),
        kind,
    };
    assert_eq!(
        f.repo.diff(&f.s1, &f.s2).unwrap(),
        vec![
            entry("/home/user/a.txt", ChangeKind::Modified),
            entry("/home/user/docs/c.txt", ChangeKind::Removed),
            entry("/home/user/docs/d.txt", ChangeKind::Added),
            entry("/home/user/e.txt", ChangeKind::MetadataOnly),
        ]
    );
    assert_eq!(
        f.repo.diff(&f.s2, &f.s1).unwrap(),
        vec![
            entry("/home/user/a.txt", ChangeKind::Modified),
            entry("/home/user/docs/c.txt", ChangeKind::Added),
            entry("/home/user/docs/d.txt", ChangeKind::Removed),
            entry("/home/user/e.txt", ChangeKind::MetadataOnly),
        ]
    );
    assert!(f.repo.diff(&f.s1, &f.s1).unwrap().is_empty());
}

#[test]
fn dump_writes_one_file() {
    let f = fixture();
    let mut out = Vec::new();
    assert_eq!(
        f.repo.dump(&f.s1, "/home/user/b.txt", &mut out).unwrap(),
        8000
    );
    assert_eq!(out, [f.a.clone(), f.b.clone()].concat());

    let mut out = Vec::new();
    assert_eq!(
        f.repo.dump(&f.s1, "/home/user/hl", &mut out).unwrap(),
        8000,
        "hard link"
    );
    assert_eq!(out, [f.a.clone(), f.b.clone()].concat());

    let mut out = Vec::new();
    assert_eq!(
        f.repo
            .dump(&f.s2, "home/user/docs/d.txt", &mut out)
            .unwrap(),
        9
    );
    assert_eq!(out, b"d content");

    let err = f
        .repo
        .dump(&f.s1, "/home/user/docs", &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("/home/user/docs"), "{err}");
    assert!(err.to_string().contains("dir"), "{err}");

    let err = f
        .repo
        .dump(&f.s2, "/home/user/docs/c.txt", &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::Snapshot(snapshot_index::Error::PathNotFound { ref path, .. }) if path == "/home/user/docs/c.txt"),
        "{err}"
    );
    assert!(
        f.repo.dump(&f.s1, "/", &mut Vec::new()).is_err(),
        "the root is not a file"
    );
}

/// Stored size of the given data chunks, straight from the index.
fn stored(repo: &Repository, chunks: &[&[u8]]) -> u64 {
    chunks
        .iter()
        .map(|c| {
            u64::from(
                repo.store()
                    .locate(&repo.store().blob_id(c))
                    .unwrap()
                    .unwrap()
                    .length,
            )
        })
        .sum()
}

#[test]
fn stats_of_one_snapshot_and_of_all() {
    let f = fixture();
    let a2 = pseudo_random(4000, 3);

    let one = f.repo.stats(Some(&f.s1)).unwrap();
    // Files: a, b, c, e, hl, mirror/c. Chunks: a, b, "c content", "e".
    let stored_one = stored(&f.repo, &[&f.a, &f.b, b"c content", b"e"]);
    let expected_one = Stats {
        snapshots: 1,
        files: 6,
        logical_bytes: 5000 + 8000 + 9 + 1 + 8000 + 9,
        unique_chunks: 4,
        unique_bytes: 5000 + 3000 + 9 + 1,
        stored_bytes: stored_one,
        packs: 1,
        dedup_ratio: 21019.0 / 8010.0,
        compression_ratio: 8010.0 / stored_one as f64,
    };
    assert_eq!(one, expected_one);
    assert!(
        one.stored_bytes > one.unique_bytes,
        "random data plus sealing overhead"
    );

    let all = f.repo.stats(None).unwrap();
    let stored_all = stored(
        &f.repo,
        &[&f.a, &f.b, b"c content", b"e", &a2, b"d content"],
    );
    let logical_all = 21019 + (4000 + 8000 + 9 + 1 + 8000 + 9);
    let unique_all = 8010 + 4000 + 9;
    assert_eq!(
        all,
        Stats {
            snapshots: 2,
            files: 12,
            logical_bytes: logical_all,
            unique_chunks: 6,
            unique_bytes: unique_all,
            stored_bytes: stored_all,
            packs: 2,
            dedup_ratio: logical_all as f64 / unique_all as f64,
            compression_ratio: unique_all as f64 / stored_all as f64,
        }
    );
}

#[test]
fn stats_of_an_empty_repository() {
    let temp = tempfile::tempdir().unwrap();
    let repo = repository(temp.path());
    assert_eq!(
        repo.stats(None).unwrap(),
        Stats {
            dedup_ratio: 1.0,
            compression_ratio: 1.0,
            ..Stats::default()
        }
    );
}

#[test]
fn a_full_id_resolves_in_either_case_whatever_the_filter_until_deleted() {
    use chunk_store::FileKind;
    use respaldo::{SnapshotFilter, SnapshotSpec};
    let f = fixture();
    let hex = f.s1.id.to_hex();
    // Ids ignore the filter, as prefixes always did.
    let nobody = SnapshotFilter {
        hosts: vec!["no such host".into()],
        ..SnapshotFilter::default()
    };
    for spec in [hex.clone(), hex.to_uppercase(), hex[..10].to_string()] {
        let entry = f
            .repo
            .resolve_snapshot(&SnapshotSpec::Id(spec.clone()), &nobody)
            .unwrap();
        assert_eq!(entry, f.s1, "{spec}");
    }
    f.repo
        .store()
        .backend()
        .delete(FileKind::Snapshot, &hex)
        .unwrap();
    for spec in [hex.clone(), hex[..10].to_string()] {
        let err = f
            .repo
            .resolve_snapshot(&SnapshotSpec::Id(spec.clone()), &SnapshotFilter::default())
            .expect_err("a deleted snapshot");
        assert!(err.to_string().contains(&spec), "{err}");
    }
    assert_eq!(
        f.repo
            .resolve_snapshot(&SnapshotSpec::Latest, &SnapshotFilter::default())
            .unwrap(),
        f.s2
    );
}
