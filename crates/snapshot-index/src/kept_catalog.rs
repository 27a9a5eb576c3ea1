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

use chunk_store::{ChunkStore, FileKind, KeptView, ListingStamp};
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
fn kept_record(view: &KeptView<'_>, id_hex: &str) -> chunk_store::Result<Option<Snapshot>> {
    Ok(view
        .get(&format!("{PREFIX}i/{id_hex}"))?
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
    // One view: the stamp vouches for the records kept in the same transaction.
    let view = store.kept_values()?;
    let stamp = view.get(&stamp_key())?;
    let (start, end) = records_range();
    view.scan(
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
    if whole {
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

/// Whether the kept catalog as `view` sees it is the repository's as listed now
/// ([`Kept::is_current`] without reading the records).
fn current(store: &ChunkStore, view: &KeptView<'_>) -> Result<bool> {
    let Some(now) = store.listing_stamp(FileKind::Snapshot) else {
        return Ok(false);
    };
    Ok(view.get(&stamp_key())?.as_deref() == Some(now.as_bytes()))
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
    let view = store.kept_values()?;
    if !current(store, &view)? {
        return Ok(None);
    }
    let (start, end) = times_range(at_or_before);
    let mut found = Some(None);
    view.scan(
        (Bound::Included(&start), Bound::Excluded(&end)),
        true,
        |key, _| {
            let Some((id_hex, id)) = id_hex_of_key(key).zip(id_of_key(key)) else {
                found = None;
                return Ok(false);
            };
            let Some(snapshot) = kept_record(&view, id_hex)? else {
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
    Ok(found)
}

/// [`newest`] for when the kept catalog is not current (right after a backup, or on an
/// object store): lists `snapshots/`, reads the few manifests new to the kept catalog, and
/// walks the kept records newest first among the listed ones, so that no more records are
/// opened than [`newest`] opens. `None` when the kept catalog cannot answer (nothing kept,
/// many manifests new to it, a record missing or damaged): the caller loads the whole
/// catalog, which keeps it again. When the backend vouches for the listing, keeps what it
/// read and forgets what was deleted ([`keep_changes`]), so that the next pick lists nothing.
pub(crate) fn newest_listed(
    store: &ChunkStore,
    at_or_before: Option<i64>,
    mut accept: impl FnMut(&Snapshot) -> bool,
) -> Result<Option<Option<SnapshotEntry>>> {
    // Taken before the listing, as in `Catalog::load`.
    let stamp = store.listing_stamp(FileKind::Snapshot);
    let view = store.kept_values()?;
    let kept_stamp = view.get(&stamp_key())?;
    let (start, end) = records_range();
    let kept: HashSet<String> = view
        .keys((Bound::Included(&start), Bound::Excluded(&end)))?
        .iter()
        .filter_map(|key| Some(id_hex_of_key(key)?.to_string()))
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    let mut listed = HashSet::new();
    let mut fresh = HashSet::new();
    let mut new = Vec::new();
    let mut complete = true;
    let mut best: Option<SnapshotEntry> = None;
    for (name, bytes) in store.read_snapshot_files_except(|name| kept.contains(name))? {
        let bytes = match bytes {
            None => {
                listed.insert(name);
                continue;
            }
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) if e.is_not_found() => {
                // Deleted after the listing: the stamp has changed since, too.
                complete = false;
                continue;
            }
            Some(Err(e)) => return Err(e.into()),
        };
        if new.len() + 1 >= WRITE_AFTER {
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
            best = Some(SnapshotEntry {
                id,
                snapshot: snapshot.clone(),
            });
        }
        listed.insert(name.clone());
        fresh.insert(name);
        new.push(SnapshotEntry { id, snapshot });
    }
    let (start, end) = times_range(at_or_before);
    // Kept records older than the best new one cannot win.
    let floor = best
        .as_ref()
        .map(|b| time_key(b.snapshot.time_ns, &b.id))
        .unwrap_or_default();
    let mut usable = true;
    view.scan(
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
            if !listed.contains(id_hex) || fresh.contains(id_hex) {
                // Deleted since it was kept, or new and weighed above.
                return Ok(true);
            }
            let Some(snapshot) = kept_record(&view, id_hex)? else {
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
    drop(view);
    if !usable {
        return Ok(None);
    }
    // Also when nothing was added or deleted: the kept stamp is then an older one (a file
    // written and deleted since) or none, and the next pick would list again.
    if let Some(stamp) = stamp.filter(|_| complete) {
        // Only a shortcut for the next pick: failing to write it must not fail this one. A
        // kept catalog that cannot be vouched for once its changes are in (a time key
        // missing) is left to a whole load, which keeps it again: otherwise every pick
        // would list and write.
        if let Ok(false) = keep_changes(store, &stamp, kept_stamp.as_deref(), &listed, &new) {
            return Ok(None);
        }
    }
    Ok(Some(best))
}

/// Brings the kept catalog to the listing `listed` (every name listed after `stamp` was
/// taken) without opening the records it keeps: keeps the records of `new` (the listed
/// manifests it did not keep, read and verified), drops those of files no longer listed,
/// and removes the kept stamp; then keeps `stamp` when every listed name has a record key
/// and a time key (the records themselves are not opened: one that does not open makes the
/// next pick or load list, and the load keeps it again). Changes nothing when the kept
/// stamp is no longer `kept_stamp` (the one seen before the listing): another process kept
/// the catalog meanwhile, perhaps under a newer listing. One transaction. Returns `false`
/// when it changed the records but could not keep the stamp.
fn keep_changes(
    store: &ChunkStore,
    stamp: &ListingStamp,
    kept_stamp: Option<&[u8]>,
    listed: &HashSet<String>,
    new: &[SnapshotEntry],
) -> Result<bool> {
    let mut encoded = Vec::with_capacity(new.len());
    for e in new {
        encoded.push((e, encode_record(&e.snapshot)?));
    }
    Ok(store.update_kept_values(|kept| {
        if kept.get(&stamp_key())?.as_deref() != kept_stamp {
            return Ok(true);
        }
        let records_prefix = format!("{PREFIX}i/");
        let times_prefix = format!("{PREFIX}t/");
        let mut records = HashSet::new();
        let mut times = HashSet::new();
        for key in kept.keys_with_prefix(PREFIX)? {
            let id_hex = id_hex_of_key(&key).filter(|id| listed.contains(*id));
            let set = if key.starts_with(&records_prefix) {
                &mut records
            } else if key.starts_with(&times_prefix) {
                &mut times
            } else {
                // The stamp (written again below when it holds), or a key of no use.
                kept.remove(&key)?;
                continue;
            };
            match id_hex {
                Some(id_hex) => {
                    set.insert(id_hex.to_string());
                }
                None => kept.remove(&key)?,
            }
        }
        for (e, record) in &encoded {
            let id_hex = e.id.to_hex();
            kept.insert(&format!("{records_prefix}{id_hex}"), record)?;
            kept.insert(&time_key(e.snapshot.time_ns, &e.id), &[])?;
            records.insert(id_hex.clone());
            times.insert(id_hex);
        }
        let whole = listed
            .iter()
            .all(|name| records.contains(name) && times.contains(name));
        if whole {
            kept.insert(&stamp_key(), stamp.as_bytes())?;
        }
        Ok(whole)
    })?)
}

/// The snapshots whose ids start with `prefix` (lowercase hex digits), from the kept catalog
/// when it is current: the first one found and how many there are, or `None` when the kept
/// catalog cannot answer and the caller must list. Opens one record.
pub(crate) fn with_prefix(
    store: &ChunkStore,
    prefix: &str,
) -> Result<Option<(Option<SnapshotEntry>, usize)>> {
    let view = store.kept_values()?;
    if !current(store, &view)? {
        return Ok(None);
    }
    let start = format!("{PREFIX}i/{prefix}");
    // 'g' sorts after every hex digit.
    let end = format!("{PREFIX}i/{prefix}g");
    let keys = view.keys((Bound::Included(&start), Bound::Excluded(&end)))?;
    let Some(first) = keys.first() else {
        return Ok(Some((None, 0)));
    };
    let entry = match id_hex_of_key(first).zip(id_of_key(first)) {
        Some((id_hex, id)) => {
            kept_record(&view, id_hex)?.map(|snapshot| SnapshotEntry { id, snapshot })
        }
        None => None,
    };
    // A record that does not open: the caller lists.
    Ok(entry.map(|entry| (Some(entry), keys.len())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{PREFIX, newest, newest_listed, read, time_digits, with_prefix, write};
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

    #[test]
    fn a_pick_after_a_change_keeps_the_change_when_the_listing_is_vouched_for() {
        let (_cache, store, tree, ids) = three_snapshots(Some("pw"));
        Catalog::load(&store).unwrap();
        let new = snapshot(tree, 4).save(&store).unwrap();
        store
            .backend()
            .delete(FileKind::Snapshot, &ids[1].to_hex())
            .unwrap();
        assert!(newest(&store, None, |_| true).unwrap().is_none());

        // The pick lists, opens the new manifest, and keeps it and the deletion under the
        // stamp: the next pick reads the kept catalog alone.
        let found = newest_listed(&store, None, |_| true)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(found.id, new);
        let kept = read(&store).unwrap();
        let mut kept_ids: Vec<_> = kept.records.keys().copied().collect();
        kept_ids.sort();
        let mut expected = vec![ids[0], ids[2], new];
        expected.sort();
        assert_eq!(kept_ids, expected);
        assert!(kept.is_current(store.listing_stamp(FileKind::Snapshot).as_ref()));
        let oldest = newest(&store, Some(2), |_| true).unwrap().unwrap().unwrap();
        assert_eq!(oldest.id, ids[0], "the deleted snapshot at time 2 is gone");
        let loaded = Catalog::load(&store).unwrap();
        assert_eq!(
            loaded.entries().iter().map(|e| e.id).collect::<Vec<_>>(),
            [ids[0], ids[2], new]
        );

        // A file written and deleted changes the stamp and nothing else: the pick keeps the
        // new stamp.
        store
            .backend()
            .write(FileKind::Snapshot, "scratch", b"x")
            .unwrap();
        store
            .backend()
            .delete(FileKind::Snapshot, "scratch")
            .unwrap();
        assert!(newest(&store, None, |_| true).unwrap().is_none());
        let found = newest_listed(&store, None, |_| true)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(found.id, new);
        assert!(newest(&store, None, |_| true).unwrap().is_some());
    }

    #[test]
    fn a_pick_after_a_change_leaves_a_catalog_kept_meanwhile_alone() {
        let (_cache, store, tree, _) = three_snapshots(Some("pw"));
        Catalog::load(&store).unwrap();
        snapshot(tree, 4).save(&store).unwrap();
        // Another process keeps the catalog (under the stamp of its own listing) after this
        // pick read the kept stamp: what the pick would write is not kept.
        let seen = read(&store).unwrap().stamp;
        let stamp = store.listing_stamp(FileKind::Snapshot).unwrap();
        let other = Catalog::load(&store).unwrap();
        let newer = read(&store).unwrap();
        assert_ne!(newer.stamp, seen);
        let wrote = super::keep_changes(&store, &stamp, seen.as_deref(), &Default::default(), &[]);
        assert!(wrote.unwrap());
        let after = read(&store).unwrap();
        assert_eq!(after.stamp, newer.stamp);
        assert_eq!(after.records.len(), other.entries().len());
    }

    #[test]
    fn a_pick_after_a_change_keeps_no_stamp_over_a_missing_time_key() {
        let (_cache, store, tree, ids) = three_snapshots(Some("pw"));
        Catalog::load(&store).unwrap();
        // Damage: the time key of a listed snapshot is gone, its record is not.
        store
            .update_kept_values(|kept| {
                kept.remove(&format!("{PREFIX}t/{}/{}", time_digits(1), ids[0].to_hex()))
            })
            .unwrap();
        let new = snapshot(tree, 4).save(&store).unwrap();
        // The pick keeps the new record but not the stamp, and leaves the answer to a load.
        assert!(newest_listed(&store, None, |_| true).unwrap().is_none());
        let kept = read(&store).unwrap();
        assert_eq!(kept.records.len(), 4);
        assert!(
            kept.stamp.is_none(),
            "the walks would miss the first snapshot"
        );
        // Which the catalog's pick then does, keeping the catalog whole again.
        let found = Catalog::find_newest(&store, &Default::default(), None)
            .unwrap()
            .unwrap();
        assert_eq!(found.id, new);
        let oldest = newest(&store, Some(1), |_| true).unwrap().unwrap().unwrap();
        assert_eq!(oldest.id, ids[0]);
    }
}
