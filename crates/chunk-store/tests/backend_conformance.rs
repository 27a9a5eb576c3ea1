//! The conformance suite on the local and in-memory backends (`s3_backend.rs` runs it on
//! object storage).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chunk_store::{Backend, FileKind, LocalBackend, MemoryBackend};

#[path = "support/conformance.rs"]
mod conformance;
use conformance::{concurrent_writers, conformance, listing_stamps_change_with_the_files};

#[test]
fn memory_backend_conforms() {
    conformance(&MemoryBackend::new());
    concurrent_writers(Arc::new(MemoryBackend::new()));
    let backend = MemoryBackend::new();
    assert!(backend.listing_stamp(FileKind::Snapshot).is_some());
    listing_stamps_change_with_the_files(&backend);
    // Backends that do not share their files have different stamps.
    assert_ne!(
        backend.listing_stamp(FileKind::Lock),
        MemoryBackend::new().listing_stamp(FileKind::Lock)
    );
}

#[test]
fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&LocalBackend::new(dir.path().join("repo")));
    let dir2 = tempfile::tempdir().unwrap();
    concurrent_writers(Arc::new(LocalBackend::new(dir2.path())));
    let dir3 = tempfile::tempdir().unwrap();
    listing_stamps_change_with_the_files(&LocalBackend::new(dir3.path()));
}

/// Sets the modification time of `dir` to `seconds_ago`.
fn age(dir: &std::path::Path, seconds_ago: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
    std::fs::File::open(dir)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(when))
        .unwrap();
}

#[test]
fn a_local_folder_gets_a_stamp_once_it_has_settled() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    let snapshots = dir.path().join("snapshots");
    // No folder yet, and packs (in fan-out folders) never.
    assert_eq!(backend.listing_stamp(FileKind::Snapshot), None);
    backend.write(FileKind::Snapshot, "s1", b"one").unwrap();
    // Just changed: a file added in the same clock tick would not change the stamp.
    assert_eq!(backend.listing_stamp(FileKind::Snapshot), None);
    age(&snapshots, 10);
    let Some(settled) = backend.listing_stamp(FileKind::Snapshot) else {
        // Network and unknown file systems give no stamps: nothing more to check here.
        eprintln!(
            "no listing stamps on the file system of {}",
            dir.path().display()
        );
        return;
    };
    assert_eq!(
        backend.listing_stamp(FileKind::Snapshot),
        Some(settled.clone())
    );
    // Reading and listing change nothing.
    backend.read(FileKind::Snapshot, "s1").unwrap();
    backend.list(FileKind::Snapshot).unwrap();
    assert_eq!(
        backend.listing_stamp(FileKind::Snapshot),
        Some(settled.clone())
    );
    // Each change gives another stamp once settled.
    backend.write(FileKind::Snapshot, "s2", b"two").unwrap();
    assert_eq!(backend.listing_stamp(FileKind::Snapshot), None);
    age(&snapshots, 5);
    let after_write = backend.listing_stamp(FileKind::Snapshot).unwrap();
    assert_ne!(after_write, settled);
    backend.delete(FileKind::Snapshot, "s1").unwrap();
    assert_eq!(backend.listing_stamp(FileKind::Snapshot), None);
    age(&snapshots, 5);
    let after_delete = backend.listing_stamp(FileKind::Snapshot).unwrap();
    assert_ne!(after_delete, after_write);
    backend.write(FileKind::Pack, "aa01", b"pack").unwrap();
    age(&dir.path().join("packs"), 10);
    assert_eq!(backend.listing_stamp(FileKind::Pack), None);
}

#[test]
fn local_backend_lays_out_private_files_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    backend.write(FileKind::Pack, "abcdef", b"pack").unwrap();
    backend.write(FileKind::Key, "k1", b"key").unwrap();
    backend.write(FileKind::Config, "config", b"cfg").unwrap();
    assert!(dir.path().join("packs/ab/abcdef").is_file());
    assert!(dir.path().join("keys/k1").is_file());
    assert!(dir.path().join("config").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("packs/ab/abcdef"), 0o600);
        assert_eq!(mode("keys/k1"), 0o600);
        assert_eq!(mode("packs"), 0o700);
        assert_eq!(mode("packs/ab"), 0o700);
    }
    // Only the final names are present: no temporary left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("packs/ab"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["abcdef"]);
    // A file in progress (a dot-name, as a crashed writer leaves) is never listed.
    std::fs::write(dir.path().join("packs/ab/.tmp-abcd-1234"), b"partial").unwrap();
    std::fs::write(dir.path().join("keys/.tmp-k2-99"), b"partial").unwrap();
    assert_eq!(backend.list(FileKind::Pack).unwrap(), ["abcdef"]);
    assert_eq!(backend.list(FileKind::Key).unwrap(), ["k1"]);
}

#[cfg(unix)]
#[test]
fn local_backend_write_failure_names_the_path_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    if nix_is_root() {
        eprintln!("skipped: running as root, permissions do not stop writes");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    backend.write(FileKind::Index, "first", b"x").unwrap();
    let index_dir = dir.path().join("index");
    std::fs::set_permissions(&index_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let err = backend.write(FileKind::Index, "second", b"y").unwrap_err();
    std::fs::set_permissions(&index_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(err.to_string().contains("index"), "{err}");
    assert_eq!(backend.list(FileKind::Index).unwrap(), ["first"]);
}

#[cfg(unix)]
fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // A file we create is owned by our effective uid.
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid() == 0
}

#[test]
fn an_opendal_service_location_conforms() {
    // opendal's in-memory service is always built in: it stands for gcs, azblob and sftp,
    // which need their cargo features and a real service.
    let location = chunk_store::Location::parse("opendal:memory?root=/repo".as_ref()).unwrap();
    assert_eq!(location.to_string(), "opendal:memory?root=/repo");
    let backend = location.open().unwrap();
    assert!(backend.is_remote());
    conformance(backend.as_ref());
}
