//! The decoded manifests a catalog keeps beside the fast index, so that the next command
//! neither reads nor opens again every manifest it opened before, and, while the repository's
//! `snapshots/` is unchanged, does not list it either.
//!
//! Kept through [`ChunkStore::update_kept_values`]: sealed with the repository's key, local,
//! and lost with the fast index. Each record is the decoded content of a manifest file whose
//! name (the BLAKE3 of that content) was verified when it was read, and a file never changes,
//! so a kept record stays true for as long as its file is listed.
//!
//! Keys, under [`PREFIX`]:
//! - `i/ID` (64 hex digits): the manifest's record;
//! - `t/TIME/ID` (TIME: 16 hex digits that sort as the signed time in nanoseconds): nothing,
//!   the order in which `latest` and point-in-time picks walk the snapshots;
//! - `stamp`: the backend's [`ListingStamp`] of `snapshots/` under which the records are
//!   exactly the files listed. Written only in the transaction that makes them so; while
//!   the backend returns the same stamp, the kept catalog is the repository's and a pick reads
//!   a few records instead of listing every file.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use chunk_store::{ChunkStore, FileKind, ListingStamp};
use chunker::ChunkId;

use crate::catalog::SnapshotEntry;
use crate::codec;
use crate::error::Result;
use crate::snapshot::{Snapshot, SnapshotRecord};

/// Where the records are kept. The catalog's own version is part of it, so that records of
/// another version are never read as this one's.
const PREFIX: &str = "snapshot-catalog-v2/";
/// Keys of earlier versions of the kept catalog, removed when the catalog is kept again.
const OLD_KEYS: &[&str] = &["snapshot-catalog"];
const MAGIC: &[u8; 8] = b"RSPLKSNP";
const VERSION: u16 = 1;
// The kept records are manifests' records: a new manifest version changes them, and then
// this version must change too, or records kept before would be decoded with the new layout.
const _: () = assert!(
    crate::snapshot::SNAPSHOT_VERSION == 1,
    "bump kept_catalog::VERSION (and PREFIX) along with the manifest's version"
);

fn stamp_key() -> String {
    format!("{PREFIX}stamp")
}

/// Sixteen hex digits that sort as `time_ns` does.
fn time_digits(time_ns: i64) -> String {
    format!("{:016x}", (time_ns as u64) ^ (1 << 63))
}

fn time_key(time_ns: i64, id: &ChunkId) -> String {
    format!("{PREFIX}t/{}/{}", time_digits(time_ns), id.to_hex())
}

/// The hex id a kept key ends with.
fn id_hex_of_key(key: &str) -> Option<&str> {
    key.get(key.len().checked_sub(64)?..)
}

/// The id a kept key ends with.
fn id_of_key(key: &str) -> Option<ChunkId> {
    id_hex_of_key(key)?.parse().ok()
}

/// The keys of every record (`i/`).
fn records_range() -> (String, String) {
    (format!("{PREFIX}i/"), format!("{PREFIX}i0"))
}

/// The keys of the snapshots taken at or before `at_or_before` (any time when `None`), in the
/// time order (`t/`).
fn times_range(at_or_before: Option<i64>) -> (String, String) {
    // '~' sorts after every hex digit and '/': the bound takes every id at that time.
    let end = match at_or_before {
        Some(t) => format!("{PREFIX}t/{}/~", time_digits(t)),
        None => format!("{PREFIX}t0"),
    };
    (format!("{PREFIX}t/"), end)
}

/// The kept record of the snapshot `id_hex`, or `None` when it is missing or does not open.
fn kept_record(store: &ChunkStore, id_hex: &str) -> chunk_store::Result<Option<Snapshot>> {
    Ok(store
        .kept_value(&format!("{PREFIX}i/{id_hex}"))?
        .as_deref()
        .and_then(decode_record))
}

fn encode_record(snapshot: &Snapshot) -> Result<Vec<u8>> {
    codec::encode(
        MAGIC,
        VERSION,
        &snapshot.to_record(),
        "a kept snapshot record",
    )
}

fn decode_record(bytes: &[u8]) -> Option<Snapshot> {
    let (_, body) = codec::split_header(bytes, MAGIC, VERSION, "a kept snapshot record").ok()?;
    let record: SnapshotRecord = codec::decode(body, "a kept snapshot record").ok()?;
    Some(Snapshot::from_record(record))
}

/// The manifests an earlier command kept.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// The records that open and decode, by id.
    pub(crate) records: HashMap<ChunkId, Snapshot>,
    /// The stamp they were kept under, when every kept record opened.
    pub(crate) stamp: Option<Vec<u8>>,
}

impl Kept {
    /// Whether the records are exactly the files listed now: `stamp` (taken now) is the one
    /// they were kept under.
    pub(crate) fn is_current(&self, stamp: Option<&ListingStamp>) -> bool {
        stamp.is_some_and(|s| self.stamp.as_deref() == Some(s.as_bytes()))
    }
}

/// Every manifest kept by an earlier command. A record that does not open or decode (another
/// version, damage) is left out, and then the stamp too, so that the files are listed.
pub(crate) fn read(store: &ChunkStore) -> Result<Kept> {
    let mut kept = Kept::default();
    let mut whole = true;
    // Read before and after the records (separate transactions): a process that keeps the
    // catalog meanwhile changes or removes it, and then the records are not vouched for.
    let stamp = store.kept_value(&stamp_key())?;
    let (start, end) = records_range();
    store.scan_kept_values(
        (Bound::Included(&start), Bound::Excluded(&end)),
        false,
        |key, value| {
            match (id_of_key(key), value.as_deref().and_then(decode_record)) {
                (Some(id), Some(snapshot)) => {
                    kept.records.insert(id, snapshot);
                }
                _ => whole = false,
            }
            Ok(true)
        },
    )?;
    if whole && store.kept_value(&stamp_key())? == stamp {
        kept.stamp = stamp;
    }
    Ok(kept)
}

/// Keeps `entries` (every manifest the repository listed after `stamp` was taken, read and
/// verified) in place of what was kept before, and `stamp` with them. Writes the records of
/// the entries `fresh` selects (those just read from their files), and of others only where
/// none is kept; what another process kept meanwhile is replaced too, so the records are
/// exactly `entries` when the transaction ends.
pub(crate) fn write(
    store: &ChunkStore,
    stamp: Option<&ListingStamp>,
    entries: &[SnapshotEntry],
    fresh: impl Fn(&ChunkId) -> bool,
) -> Result<()> {
    store.update_kept_values(|kept| {
        let mut wanted: HashMap<String, Option<&Snapshot>> =
            HashMap::with_capacity(entries.len() * 2);
        for e in entries {
            wanted.insert(format!("{PREFIX}i/{}", e.id.to_hex()), Some(&e.snapshot));
            wanted.insert(time_key(e.snapshot.time_ns, &e.id), None);
        }
        let mut present = HashSet::new();
        for key in kept.keys_with_prefix(PREFIX)? {
            if key == stamp_key() || !wanted.contains_key(&key) {
                kept.remove(&key)?;
            } else if !id_of_key(&key).is_some_and(|id| fresh(&id)) {
                present.insert(key);
            }
        }
        for key in OLD_KEYS {
            kept.remove(key)?;
        }
        let mut whole = true;
        for (key, snapshot) in &wanted {
            if present.contains(key) {
                continue;
            }
            match snapshot.map(encode_record) {
                Some(Ok(record)) => kept.insert(key, &record)?,
                // A record that does not encode is left out, and the stamp with it, so that
                // the next load lists the files.
                Some(Err(_)) => whole = false,
                None => kept.insert(key, &[])?,
            }
        }
        if let Some(stamp) = stamp.filter(|_| whole) {
            kept.insert(&stamp_key(), stamp.as_bytes())?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Manifests new to the kept catalog (or gone from the repository) that a load tolerates
/// before it keeps the catalog again when it cannot vouch for the listing (see
/// [`worth_writing`]), at the least.
const WRITE_AFTER: usize = 16;

/// Whether a load that found `kept` manifests kept, had to open `opened` others and found
/// `gone` kept ones no longer listed should keep the catalog again even without a stamp:
/// when nothing was kept yet, or when the difference passes [`WRITE_AFTER`] or a
/// thirty-second of the catalog, so that a load opens at most a few percent of the
/// manifests again.
pub(crate) fn worth_writing(kept: usize, opened: usize, gone: usize) -> bool {
    let changed = opened + gone;
    changed > 0 && (kept == 0 || changed >= WRITE_AFTER.max(kept / 32))
}

/// Whether the kept catalog is the repository's as listed now ([`Kept::is_current`] without
/// reading the records).
fn current(store: &ChunkStore) -> Result<bool> {
    let Some(now) = store.listing_stamp(FileKind::Snapshot) else {
        return Ok(false);
    };
    Ok(store.kept_value(&stamp_key())?.as_deref() == Some(now.as_bytes()))
}

/// The newest snapshot taken at or before `at_or_before` (any time when `None`) that
/// `accept` takes, found in the kept catalog when it is current: `Some(None)` when none is
/// taken, `None` when the kept catalog cannot answer (not current, or a record missing or
/// damaged) and the caller must list. Ties in time go to the larger id, as in a loaded
/// catalog. Reads one record per snapshot passed over, newest first.
pub(crate) fn newest(
    store: &ChunkStore,
    at_or_before: Option<i64>,
    mut accept: impl FnMut(&Snapshot) -> bool,
) -> Result<Option<Option<SnapshotEntry>>> {
    if !current(store)? {
        return Ok(None);
    }
    let (start, end) = times_range(at_or_before);
    let mut found = Some(None);
    store.scan_kept_values(
        (Bound::Included(&start), Bound::Excluded(&end)),
        true,
        |key, _| {
            let Some((id_hex, id)) = id_hex_of_key(key).zip(id_of_key(key)) else {
                found = None;
                return Ok(false);
            };
            let Some(snapshot) = kept_record(store, id_hex)? else {
                found = None;
                return Ok(false);
            };
            if accept(&snapshot) {
                found = Some(Some(SnapshotEntry { id, snapshot }));
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    // Still current after the walk (read in other transactions than the stamp).
    if !current(store)? {
        return Ok(None);
    }
    Ok(found)
}

/// [`newest`] for when the kept catalog is not current (right after a backup, or on an
/// object store): lists `snapshots/`, reads the few manifests new to the kept catalog, and
/// walks the kept records newest first among the listed ones, so that no more records are
/// opened than [`newest`] opens. `None` when the kept catalog cannot answer (nothing kept,
/// many manifests new to it, a record missing or damaged): the caller loads the whole
/// catalog, which keeps it again. Keeps nothing itself.
pub(crate) fn newest_listed(
    store: &ChunkStore,
    at_or_before: Option<i64>,
    mut accept: impl FnMut(&Snapshot) -> bool,
) -> Result<Option<Option<SnapshotEntry>>> {
    let (start, end) = records_range();
    let kept: HashSet<String> = store
        .kept_keys((Bound::Included(&start), Bound::Excluded(&end)))?
        .iter()
        .filter_map(|key| Some(id_hex_of_key(key)?.to_string()))
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    let mut listed = HashSet::new();
    let mut best: Option<SnapshotEntry> = None;
    let mut new = 0;
    for (name, bytes) in store.read_snapshot_files_except(|name| kept.contains(name))? {
        let bytes = match bytes {
            None => {
                listed.insert(name);
                continue;
            }
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) if e.is_not_found() => continue,
            Some(Err(e)) => return Err(e.into()),
        };
        new += 1;
        if new >= WRITE_AFTER {
            return Ok(None);
        }
        let id = Snapshot::id_from_name(&name)?;
        let snapshot = Snapshot::from_bytes(store, &id, &bytes)?;
        let wanted = at_or_before.is_none_or(|t| snapshot.time_ns <= t) && accept(&snapshot);
        let key = (snapshot.time_ns, id);
        if wanted
            && best
                .as_ref()
                .is_none_or(|b| key > (b.snapshot.time_ns, b.id))
        {
            best = Some(SnapshotEntry { id, snapshot });
        }
    }
    let (start, end) = times_range(at_or_before);
    // Kept records older than the best new one cannot win.
    let floor = best
        .as_ref()
        .map(|b| time_key(b.snapshot.time_ns, &b.id))
        .unwrap_or_default();
    let mut usable = true;
    store.scan_kept_values(
        (Bound::Included(&start), Bound::Excluded(&end)),
        true,
        |key, _| {
            if key < floor.as_str() {
                return Ok(false);
            }
            let Some(id_hex) = id_hex_of_key(key) else {
                usable = false;
                return Ok(false);
            };
            if !listed.contains(id_hex) {
                // Deleted since it was kept.
                return Ok(true);
            }
            let Some(snapshot) = kept_record(store, id_hex)? else {
                usable = false;
                return Ok(false);
            };
            if accept(&snapshot) {
                match id_hex.parse() {
                    Ok(id) => best = Some(SnapshotEntry { id, snapshot }),
                    Err(_) => usable = false,
                }
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    Ok(usable.then_some(best))
}

/// The snapshots whose ids start with `prefix` (lowercase hex digits), from the kept catalog
/// when it is current: the first one found and how many there are, or `None` when the kept
/// catalog cannot answer and the caller must list. Opens the records in the prefix's range.
pub(crate) fn with_prefix(
    store: &ChunkStore,
    prefix: &str,
) -> Result<Option<(Option<SnapshotEntry>, usize)>> {
    if !current(store)? {
        return Ok(None);
    }
    let start = format!("{PREFIX}i/{prefix}");
    // 'g' sorts after every hex digit.
    let end = format!("{PREFIX}i/{prefix}g");
    let mut first = None;
    let mut count = 0;
    let mut usable = true;
    store.scan_kept_values(
        (Bound::Included(&start), Bound::Excluded(&end)),
        false,
        |key, value| {
            count += 1;
            if first.is_none() {
                match (id_of_key(key), value.as_deref().and_then(decode_record)) {
                    (Some(id), Some(snapshot)) => first = Some(SnapshotEntry { id, snapshot }),
                    _ => usable = false,
                }
            }
            Ok(usable)
        },
    )?;
    if !current(store)? {
        return Ok(None);
    }
    Ok(usable.then_some((first, count)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{PREFIX, newest, read, time_digits, with_prefix, write};
    use crate::catalog::{Catalog, SnapshotEntry};
    use crate::snapshot::{Snapshot, Summary};
    use crate::test_store::memory_store;
    use crate::tree::Tree;
    use chunk_store::FileKind;

    fn snapshot(tree: chunker::ChunkId, time_ns: i64) -> Snapshot {
        Snapshot {
            time_ns,
            utc_offset_s: 0,
            hostname: "host".into(),
            username: "user".into(),
            tags: vec![],
            paths: vec!["/data".into()],
            tree,
            parent: None,
            program_version: "test".into(),
            summary: Summary::default(),
        }
    }

    /// A store holding three snapshots of an empty tree (times 1, 2, 3), its tree and their
    /// ids, nothing kept yet.
    fn three_snapshots(
        password: Option<&str>,
    ) -> (
        tempfile::TempDir,
        chunk_store::ChunkStore,
        chunker::ChunkId,
        Vec<chunker::ChunkId>,
    ) {
        let (cache, store) = memory_store(password);
        let tree = Tree::new(vec![]).unwrap().save(&store).unwrap();
        store.flush().unwrap();
        let ids = (1..=3)
            .map(|t| snapshot(tree, t).save(&store).unwrap())
            .collect();
        (cache, store, tree, ids)
    }

    #[test]
    fn without_a_stamp_the_catalog_is_kept_when_new_or_far_behind() {
        use super::worth_writing;
        assert!(!worth_writing(0, 0, 0));
        assert!(worth_writing(0, 1, 0));
        assert!(!worth_writing(10, 1, 0));
        assert!(!worth_writing(10, 8, 7));
        assert!(worth_writing(10, 8, 8));
        assert!(worth_writing(10, 0, 16));
        assert!(!worth_writing(3_200, 99, 0));
        assert!(worth_writing(3_200, 100, 0));
        assert!(!worth_writing(3_200, 0, 0));
    }

    #[test]
    fn time_digits_sort_as_times() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(time_digits(pair[0]) < time_digits(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn a_current_kept_catalog_is_served_without_listing_or_opening_files() {
        for password in [Some("pw"), None] {
            let (_cache, store, tree, ids) = three_snapshots(password);
            let loaded = Catalog::load(&store).unwrap();
            let kept = read(&store).unwrap();
            assert_eq!(kept.records.len(), 3);
            assert!(kept.is_current(store.listing_stamp(FileKind::Snapshot).as_ref()));

            // A kept record that differs from its file (only this test can make one) is what
            // the next load returns: the file was not opened again.
            let mut marked: Vec<SnapshotEntry> = loaded.entries().to_vec();
            marked[2].snapshot.hostname = "from the kept catalog".into();
            let stamp = store.listing_stamp(FileKind::Snapshot);
            write(&store, stamp.as_ref(), &marked, |_| true).unwrap();
            assert_eq!(Catalog::load(&store).unwrap().entries(), marked.as_slice());
            let found = newest(&store, None, |_| true).unwrap().unwrap().unwrap();
            assert_eq!(found.snapshot.hostname, "from the kept catalog");
            let (first, count) = with_prefix(&store, &ids[2].to_hex()[..10])
                .unwrap()
                .unwrap();
            assert_eq!(count, 1);
            assert_eq!(first.unwrap().snapshot.hostname, "from the kept catalog");
            // The verified load opens every file.
            assert_eq!(
                Catalog::load_verified(&store).unwrap().entries(),
                loaded.entries()
            );

            // A new manifest changes the stamp: the kept catalog is no longer used for picks
            // until a load lists the files and keeps it again.
            let new = snapshot(tree, 4).save(&store).unwrap();
            assert!(newest(&store, None, |_| true).unwrap().is_none());
            assert!(with_prefix(&store, "0").unwrap().is_none());
            let again = Catalog::load(&store).unwrap();
            assert_eq!(again.entries().len(), 4);
            assert_eq!(again.entries()[3].id, new);
            let kept = read(&store).unwrap();
            assert_eq!(kept.records.len(), 4);
            assert!(kept.is_current(store.listing_stamp(FileKind::Snapshot).as_ref()));
            let found = newest(&store, None, |_| true).unwrap().unwrap().unwrap();
            assert_eq!(found.id, new);

            // A deleted manifest is dropped from the kept catalog by the next load.
            store
                .backend()
                .delete(FileKind::Snapshot, &ids[0].to_hex())
                .unwrap();
            assert_eq!(Catalog::load(&store).unwrap().entries().len(), 3);
            assert!(!read(&store).unwrap().records.contains_key(&ids[0]));
        }
    }

    #[test]
    fn a_damaged_kept_record_makes_the_catalog_list_again() {
        let (_cache, store, _, ids) = three_snapshots(Some("pw"));
        let loaded = Catalog::load(&store).unwrap();
        store
            .update_kept_values(|kept| {
                kept.insert(&format!("{PREFIX}i/{}", ids[2].to_hex()), b"damaged")
            })
            .unwrap();
        let kept = read(&store).unwrap();
        assert_eq!(kept.records.len(), 2);
        assert!(kept.stamp.is_none());
        assert!(newest(&store, None, |_| true).unwrap().is_none());
        assert!(
            with_prefix(&store, &ids[2].to_hex()[..8])
                .unwrap()
                .is_none()
        );
        // The load reads the damaged one's file again and keeps it whole.
        assert_eq!(Catalog::load(&store).unwrap().entries(), loaded.entries());
        let kept = read(&store).unwrap();
        assert_eq!(kept.records.len(), 3);
        assert!(kept.stamp.is_some());
    }
}
