//! The contract of [`Backend`], shared by the conformance tests of every backend.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use chunk_store::{Backend, Error, FileKind};

/// The contract of [`Backend`], checked on an empty backend.
pub fn conformance(backend: &dyn Backend) {
    // Empty at first.
    for kind in FileKind::ALL {
        assert!(backend.list(kind).unwrap().is_empty(), "{kind:?} not empty");
    }
    assert!(!backend.exists(FileKind::Pack, "aa01").unwrap());

    // Write, then read whole and in ranges.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    backend.write(FileKind::Pack, "aa01", &data).unwrap();
    assert!(backend.exists(FileKind::Pack, "aa01").unwrap());
    assert_eq!(backend.read(FileKind::Pack, "aa01").unwrap(), data);
    assert_eq!(backend.size(FileKind::Pack, "aa01").unwrap(), 100_000);
    assert_eq!(
        backend
            .read_range(FileKind::Pack, "aa01", 1000, 500)
            .unwrap(),
        &data[1000..1500]
    );
    assert_eq!(
        backend
            .read_range(FileKind::Pack, "aa01", 99_990, 10)
            .unwrap(),
        &data[99_990..]
    );
    assert!(
        backend
            .read_range(FileKind::Pack, "aa01", 0, 0)
            .unwrap()
            .is_empty()
    );

    // A range past the end is an error, never a short buffer.
    for (offset, len) in [(99_991, 10), (100_001, 0), (u64::MAX, 2)] {
        match backend.read_range(FileKind::Pack, "aa01", offset, len) {
            Err(Error::ShortRead { size: 100_000, .. }) => {}
            other => panic!("range {offset}+{len}: {other:?}"),
        }
    }

    // Missing files.
    assert!(
        backend
            .read(FileKind::Pack, "bb02")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        backend
            .read_range(FileKind::Pack, "bb02", 0, 1)
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        backend
            .size(FileKind::Index, "bb02")
            .unwrap_err()
            .is_not_found()
    );

    // Kinds are separate namespaces; lists are sorted.
    backend.write(FileKind::Index, "zz", b"index z").unwrap();
    backend.write(FileKind::Index, "aa01", b"index a").unwrap();
    backend.write(FileKind::Pack, "0f03", b"").unwrap();
    assert_eq!(backend.list(FileKind::Index).unwrap(), ["aa01", "zz"]);
    assert_eq!(backend.list(FileKind::Pack).unwrap(), ["0f03", "aa01"]);
    assert_eq!(backend.read(FileKind::Index, "aa01").unwrap(), b"index a");
    assert!(backend.read(FileKind::Pack, "0f03").unwrap().is_empty());
    assert!(backend.list(FileKind::Snapshot).unwrap().is_empty());

    // The config has a fixed name.
    backend.write(FileKind::Config, "config", b"cfg").unwrap();
    assert_eq!(backend.list(FileKind::Config).unwrap(), ["config"]);

    // Rewriting replaces the whole file.
    backend
        .write(FileKind::Lock, "lock1", b"a longer first version")
        .unwrap();
    backend.write(FileKind::Lock, "lock1", b"short").unwrap();
    assert_eq!(backend.read(FileKind::Lock, "lock1").unwrap(), b"short");

    // Delete is idempotent.
    backend.delete(FileKind::Lock, "lock1").unwrap();
    backend.delete(FileKind::Lock, "lock1").unwrap();
    assert!(!backend.exists(FileKind::Lock, "lock1").unwrap());
    assert!(backend.list(FileKind::Lock).unwrap().is_empty());

    // Unsafe names are refused by every method.
    for name in ["", "../escape", "a/b", ".hidden", "with space", "nul\0"] {
        assert!(
            matches!(
                backend.write(FileKind::Key, name, b"x"),
                Err(Error::InvalidName { .. })
            ),
            "write accepted {name:?}"
        );
        assert!(matches!(
            backend.read(FileKind::Key, name),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            backend.exists(FileKind::Key, name),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            backend.delete(FileKind::Key, name),
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(backend.list(FileKind::Key).unwrap().is_empty());

    staging(backend);
}

/// A staged file (for a backend that stages): invisible until committed, readable while it
/// is filled, whole once committed, gone if dropped.
fn staging(backend: &dyn Backend) {
    let Some(mut staged) = backend.stage(FileKind::Pack).unwrap() else {
        return;
    };
    let before = backend.list(FileKind::Pack).unwrap();
    let pieces: [Vec<u8>; 3] = [
        b"head".to_vec(),
        (0..300_000u32).map(|i| (i % 253) as u8).collect(),
        b"tail".to_vec(),
    ];
    for piece in &pieces {
        staged.append(piece).unwrap();
    }
    let whole = pieces.concat();
    assert_eq!(staged.read_at(2, 10).unwrap(), &whole[2..12]);
    assert_eq!(
        staged.read_at(300_000, 8).unwrap(),
        &whole[300_000..300_008]
    );
    staged.append(b"!").unwrap();
    assert_eq!(backend.list(FileKind::Pack).unwrap(), before);
    staged.commit("aa09").unwrap();
    assert_eq!(
        backend.read(FileKind::Pack, "aa09").unwrap(),
        [&whole[..], b"!"].concat()
    );

    let mut abandoned = backend.stage(FileKind::Pack).unwrap().unwrap();
    abandoned.append(b"never named").unwrap();
    drop(abandoned);
    let mut after = before.clone();
    after.push("aa09".to_string());
    after.sort();
    assert_eq!(backend.list(FileKind::Pack).unwrap(), after);
    // A hint to read ahead changes nothing a read returns, and never fails.
    backend.read_ahead(FileKind::Pack, "aa09", 300_000, 100_000);
    backend.read_ahead(FileKind::Pack, "aa09", u64::MAX, u64::MAX);
    backend.read_ahead(FileKind::Pack, "ffff", 0, 10);
    assert_eq!(
        backend
            .read_range(FileKind::Pack, "aa09", 300_000, 8)
            .unwrap(),
        &whole[300_000..300_008]
    );
    // A pack read in ranges (which a backend may keep open) and then deleted is gone.
    assert_eq!(
        backend.read_range(FileKind::Pack, "aa09", 2, 10).unwrap(),
        &whole[2..12]
    );
    backend.delete(FileKind::Pack, "aa09").unwrap();
    assert!(
        backend
            .read_range(FileKind::Pack, "aa09", 0, 4)
            .unwrap_err()
            .is_not_found()
    );
}

/// A listing stamp vouches only for an unchanged set of files: after a file of its kind is
/// written or deleted, the stamp is no longer the one taken before (or there is none).
pub fn listing_stamps_change_with_the_files(backend: &dyn Backend) {
    for kind in [FileKind::Index, FileKind::Snapshot] {
        for change in 0..3 {
            let before = backend.listing_stamp(kind);
            match change {
                0 => backend.write(kind, "s1", b"one").unwrap(),
                1 => backend.write(kind, "s2", b"two").unwrap(),
                _ => backend.delete(kind, "s1").unwrap(),
            }
            let after = backend.listing_stamp(kind);
            assert!(
                before.is_none() || after != before,
                "{kind:?}: the stamp did not change with the files"
            );
        }
    }
}

/// Many threads writing and reading at once see only whole files.
pub fn concurrent_writers(backend: Arc<dyn Backend>) {
    std::thread::scope(|scope| {
        for t in 0..8u8 {
            let backend = backend.clone();
            scope.spawn(move || {
                for i in 0..20u8 {
                    let name = format!("{t:02x}{i:02x}");
                    let data = vec![t ^ i; 10_000 + usize::from(i)];
                    backend.write(FileKind::Pack, &name, &data).unwrap();
                    assert_eq!(backend.read(FileKind::Pack, &name).unwrap(), data);
                }
            });
        }
    });
    assert_eq!(backend.list(FileKind::Pack).unwrap().len(), 160);
}
