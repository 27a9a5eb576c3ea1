//! What a repository on S3 costs in requests: the counts of each operation against a real
//! server (Garage on loopback, see `crates/test-s3`), bounded so that a change that adds a
//! request per file or per chunk fails here. `docs/object-storage.md` quotes the figures this
//! test prints (`cargo test -p respaldo --test s3_requests -- --nocapture`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use chunk_store::{ObjectBackend, RequestCounts, RequestPolicy, S3Access, S3Location};
use respaldo::{
    BackupOptions, InitOptions, KdfParams, NoProgress, Repository, RestoreOptions, SnapshotSpec,
};
use test_s3::{BUCKET, REGION, S3Server};

fn delta(after: RequestCounts, before: RequestCounts) -> RequestCounts {
    RequestCounts {
        put: after.put - before.put,
        get: after.get - before.get,
        head: after.head - before.head,
        list: after.list - before.list,
        delete: after.delete - before.delete,
    }
}

fn write_tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let len = 2_000 + (i * 7_919) % 40_000;
        let data: Vec<u8> = (0..len)
            .map(|j| ((j as u64 * 2_654_435_761 + i as u64 * 97) >> 7) as u8)
            .collect();
        std::fs::write(dir.join(format!("f{i:04}")), data).unwrap();
    }
}

#[test]
fn requests_per_operation_stay_few_and_independent_of_the_file_count() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let backend = S3Location {
        endpoint: Some(server.endpoint()),
        bucket: BUCKET.to_string(),
        prefix: "costs".to_string(),
    }
    .open_with(
        RequestPolicy::default(),
        Some(&S3Access {
            access_key_id: server.access_key_id.clone(),
            secret_access_key: server.secret_access_key.clone(),
            region: Some(REGION.to_string()),
        }),
    )
    .unwrap();
    let counter: ObjectBackend = backend.clone();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = dir.path().join("data");
    write_tree(&source, 1_000);

    let mut rows = Vec::new();
    let mut last = counter.request_counts();
    let mut step = |name: &str, rows: &mut Vec<(String, RequestCounts)>| {
        let now = counter.request_counts();
        rows.push((name.to_string(), delta(now, last)));
        last = now;
    };

    let options = InitOptions {
        password: Some("pw".to_string()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = Repository::init_with_backend(Arc::new(backend.clone()), &options, &cache).unwrap();
    step("init", &mut rows);
    let backup = BackupOptions {
        paths: vec![source.clone()],
        ..BackupOptions::default()
    };
    let first = repo.backup(&backup, &NoProgress).unwrap();
    step("first backup (1,000 files, 21 MB)", &mut rows);
    repo.backup(&backup, &NoProgress).unwrap();
    step("unchanged backup", &mut rows);
    std::fs::write(source.join("d3/new"), vec![7u8; 100_000]).unwrap();
    repo.backup(&backup, &NoProgress).unwrap();
    step("backup with one new file", &mut rows);
    drop(repo);

    // Another host: a fresh cache, so the index comes from the index files.
    let other_cache = dir.path().join("cache-2");
    let repo =
        Repository::open_with_backend(Arc::new(backend.clone()), Some("pw"), &other_cache).unwrap();
    step("open with an empty cache", &mut rows);
    let snapshot = repo
        .resolve_snapshot(&SnapshotSpec::Latest, &Default::default())
        .unwrap();
    let target = dir.path().join("restored");
    let restored = repo
        .restore(
            &snapshot,
            &RestoreOptions {
                target: target.clone(),
                ..RestoreOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
    step("restore (1,001 files)", &mut rows);
    assert_eq!(restored.files, 1_001);
    let catalog = repo.catalog().unwrap();
    step("list the snapshots again (`snapshots`)", &mut rows);
    assert_eq!(catalog.entries().len(), 3);

    println!("| step | PUT | GET | HEAD | LIST | DELETE |\n|---|---:|---:|---:|---:|---:|");
    for (name, c) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            c.put, c.get, c.head, c.list, c.delete
        );
    }

    let find = |name: &str| rows.iter().find(|(n, _)| n.starts_with(name)).unwrap().1;
    // A backup writes packs (16 MiB each), index files, the snapshot and its lock: a handful
    // of uploads, not one per file or chunk.
    let packs = first.snapshot.summary.bytes_added.div_ceil(16 << 20);
    let first_backup = find("first backup");
    assert!(
        first_backup.put <= packs + 8,
        "{first_backup:?} for {packs} packs"
    );
    // An unchanged backup reads the parent's trees from the local copy of their packs (one
    // GET per new tree pack, not one per folder), and the manifests; never a file's data.
    let unchanged = find("unchanged backup");
    assert!(unchanged.put <= 4, "{unchanged:?}");
    assert!(unchanged.get <= 6, "{unchanged:?}");
    let one_new = find("backup with one new file");
    assert!(one_new.put <= 6, "{one_new:?}");
    assert!(one_new.get <= 6, "{one_new:?}");
    // A restore reads each pack once (in ranges split at large gaps), plus trees.
    let restore = find("restore");
    assert!(restore.get <= 4 * packs + 12, "{restore:?}");
    assert!(restore.put <= 2, "{restore:?}");
    // Manifests read once are kept in the cache: listing them again is one LIST.
    let listing = find("list the snapshots again");
    assert_eq!(listing.get, 0, "{listing:?}");
    assert!(listing.list <= 1, "{listing:?}");
}
