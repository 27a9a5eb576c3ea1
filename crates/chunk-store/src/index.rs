//! The fast blob index, `index.redb`: blob id → where the blob is.
//!
//! It is a cache of the union of the repository's index files (plus, after a slow rebuild, of
//! the pack trailers) and never the only copy of anything: deleting it loses nothing. It records
//! which index files it has absorbed, so bringing it up to date reads only the new ones.
//!
//! Concurrency: the database is opened in redb's `MultiWriter` mode, so several processes
//! (several backups into one repository) share one file; each writes in short transactions:
//! one per index file a backup writes, one per batch of index files a sync reads. The lookups
//! that deduplicate share one read transaction, made again after each change through this
//! handle, after each sync and every few seconds ([`Index::lookup_shared`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use chunker::ChunkId;

use crate::blob::{BlobKind, BlobLocation, Encoding};
use crate::error::{Error, Result};
use crate::index_file::IndexedPack;
use crate::pack::PackEntry;

const BLOBS: TableDefinition<&[u8; 32], &[u8; LOCATION_LEN]> = TableDefinition::new("blobs-v2");
const INDEX_FILES: TableDefinition<&str, ()> = TableDefinition::new("index-files-v2");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-v1");
/// Snapshot files read before, by name. They never change (each is named by the BLAKE3 hash of
/// its content), so a copy stays good until the file is deleted.
const SNAPSHOT_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot-files-v1");
/// Values the store's callers keep beside the index, sealed with the repository's key
/// ([`crate::ChunkStore::kept_values`], [`crate::ChunkStore::update_kept_values`]).
const KEPT_VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("kept-values-v1");
/// The stamp of the listing of `index/` whose every file is absorbed, under the key
/// [`INDEX_LISTING`] ([`crate::Backend::listing_stamp`]); emptied with the blobs.
const LISTING_STAMPS: TableDefinition<&str, &[u8]> = TableDefinition::new("listing-stamps-v2");
/// The tables of caches written before locations had a place in a group (50-byte locations):
/// dropped at open, and the index is absorbed again into the tables above.
const OLD_BLOBS: TableDefinition<&[u8; 32], &[u8; 50]> = TableDefinition::new("blobs-v1");
const OLD_INDEX_FILES: TableDefinition<&str, ()> = TableDefinition::new("index-files-v1");
const OLD_LISTING_STAMPS: TableDefinition<&str, &[u8]> = TableDefinition::new("listing-stamps-v1");
const INDEX_LISTING: &str = "index";
const META_REPOSITORY: &str = "repository-id";

const LOCATION_LEN: usize = 54;
/// Page cache of the database; the index itself stays on disk whatever its size. 16 MiB
/// rather than 64: the SQLite rounds (about 120,000 page-sized chunks) peaked at 72 MiB
/// instead of 96 MiB, within 3% of the time, and a 1.3 GB tree backed up as fast
/// (`docs/benchmarks.md`, "The index's page cache").
const CACHE_BYTES: usize = 16 * 1024 * 1024;

fn encode_location(l: &BlobLocation) -> [u8; LOCATION_LEN] {
    let mut out = [0u8; LOCATION_LEN];
    out[..32].copy_from_slice(l.pack.as_bytes());
    out[32..40].copy_from_slice(&l.offset.to_le_bytes());
    out[40..44].copy_from_slice(&l.length.to_le_bytes());
    out[44..48].copy_from_slice(&l.raw_length.to_le_bytes());
    out[48] = l.kind.to_byte();
    out[49] = l.encoding.to_byte();
    out[50..54].copy_from_slice(&l.member_offset.to_le_bytes());
    out
}

fn decode_location(b: &[u8; LOCATION_LEN]) -> Option<BlobLocation> {
    let mut pack = [0u8; 32];
    pack.copy_from_slice(&b[..32]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&b[32..40]);
    let mut length = [0u8; 4];
    length.copy_from_slice(&b[40..44]);
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[44..48]);
    let mut member_offset = [0u8; 4];
    member_offset.copy_from_slice(&b[50..54]);
    Some(BlobLocation {
        pack: ChunkId::from_bytes(pack),
        offset: u64::from_le_bytes(offset),
        length: u32::from_le_bytes(length),
        raw_length: u32::from_le_bytes(raw),
        kind: BlobKind::from_byte(b[48])?,
        encoding: Encoding::from_byte(b[49])?,
        member_offset: u32::from_le_bytes(member_offset),
    })
}

/// Whether an open failed because the file is not a database this redb can use.
fn is_unusable_file(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::UpgradeRequired(_) => true,
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

/// A read-only view of the index at one moment ([`Index::snapshot`]).
pub(crate) struct IndexSnapshot {
    table: Option<redb::ReadOnlyTable<&'static [u8; 32], &'static [u8; LOCATION_LEN]>>,
    path: PathBuf,
}

impl IndexSnapshot {
    /// Where the blob is, as of this view (`None` when the view does not know it).
    pub(crate) fn lookup(&self, id: &ChunkId) -> Result<Option<BlobLocation>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let err = |reason: String| Error::IndexDb {
            path: self.path.clone(),
            reason,
        };
        let Some(value) = table.get(id.as_bytes()).map_err(|e| err(e.to_string()))? else {
            return Ok(None);
        };
        decode_location(value.value())
            .map(Some)
            .ok_or_else(|| err(format!("entry of blob {id} is damaged")))
    }

    /// Whether the view holds every one of `ids`.
    pub(crate) fn contains_all(&self, ids: &[ChunkId]) -> Result<bool> {
        let Some(table) = &self.table else {
            return Ok(ids.is_empty());
        };
        for id in ids {
            let found = table.get(id.as_bytes()).map_err(|e| Error::IndexDb {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            if found.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A view shared by many lookups ([`Index::lookup_shared`]), and the generation of the index
/// it was made at.
struct SharedView {
    snapshot: IndexSnapshot,
    generation: u64,
    made: Instant,
}

/// How long the shared view is used before a new one is made, even without a change: an open
/// read transaction keeps redb from reusing the pages that other processes' writes free, and
/// makes their compaction fail.
const SHARED_VIEW_RENEWAL: Duration = Duration::from_secs(5);

/// The redb blob index.
pub(crate) struct Index {
    /// The view [`Index::lookup_shared`] answers from: made on first use, and again after
    /// each change made through this handle ([`Index::changed`]) or after
    /// [`SHARED_VIEW_RENEWAL`]. Beginning a read transaction per lookup took a third of a
    /// backup's time when most chunks were known (`docs/benchmarks.md`, "One index view for a
    /// backup's lookups"). Declared before `db`, so that it is dropped (its read transaction
    /// ended) before the database closes.
    shared: RwLock<Option<Arc<SharedView>>>,
    /// Counts the changes made through this handle ([`Index::generation`]).
    generation: AtomicU64,
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Index {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::IndexDb {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn open_db(path: &Path) -> std::result::Result<redb::Database, redb::DatabaseError> {
        redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_BYTES)
            .create(path)
    }

    /// Opens (or creates) the index at `path` for the repository `repository_id`. A file that
    /// cannot be opened as a database, or that belongs to another repository, is replaced by
    /// an empty one: it holds nothing that cannot be rebuilt.
    pub(crate) fn open(path: &Path, repository_id: &[u8; 32]) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                op: "create directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db = match Self::open_db(path) {
            Ok(db) => db,
            // Only a file that is not a usable database is replaced: another I/O error may be
            // passing, and other processes may be using the file.
            Err(e) if is_unusable_file(&e) => {
                std::fs::remove_file(path).map_err(|source| Error::Io {
                    op: "remove unreadable index",
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::open_db(path).map_err(|e| Error::IndexDb {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?
            }
            Err(e) => {
                return Err(Error::IndexDb {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        let index = Index {
            shared: RwLock::new(None),
            generation: AtomicU64::new(0),
            db,
            path: path.to_path_buf(),
        };
        index.claim(repository_id)?;
        Ok(index)
    }

    /// Rewrites the file without the pages that absorbing left free or half full: after a
    /// large absorb the file is 2 to 2.6 times the size of its entries (`docs/benchmarks.md`,
    /// "Compacting the index"). The entries are unchanged.
    ///
    /// Errors: [`Error::IndexDb`] when redb cannot compact, for example while another process
    /// reads or writes the file; nothing is lost then, the file only stays as large.
    pub(crate) fn compact(&mut self) -> Result<()> {
        // redb refuses to compact while a read transaction is open, the shared view's too.
        *self.shared.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        self.db.compact().map_err(|e| Error::IndexDb {
            path: self.path.clone(),
            reason: format!("cannot compact: {e}"),
        })?;
        Ok(())
    }

    /// Records the repository id, or empties the index if it was built for another repository.
    fn claim(&self, repository_id: &[u8; 32]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let current = meta
                .get(META_REPOSITORY)
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec());
            if current.as_deref() != Some(&repository_id[..]) {
                meta.insert(META_REPOSITORY, &repository_id[..])
                    .map_err(|e| self.err(e))?;
                txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
                txn.delete_table(INDEX_FILES).map_err(|e| self.err(e))?;
                txn.delete_table(SNAPSHOT_FILES).map_err(|e| self.err(e))?;
                txn.delete_table(KEPT_VALUES).map_err(|e| self.err(e))?;
                txn.delete_table(LISTING_STAMPS).map_err(|e| self.err(e))?;
            }
        }
        txn.delete_table(OLD_BLOBS).map_err(|e| self.err(e))?;
        txn.delete_table(OLD_INDEX_FILES).map_err(|e| self.err(e))?;
        txn.delete_table(OLD_LISTING_STAMPS)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Where the blob is, if the index knows it.
    pub(crate) fn lookup(&self, id: &ChunkId) -> Result<Option<BlobLocation>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(BLOBS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(value) = table.get(id.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        decode_location(value.value())
            .map(Some)
            .ok_or_else(|| self.err(format!("entry of blob {id} is damaged")))
    }

    /// Where the blob is, from a view of the index that many lookups share, and the
    /// [`Index::generation`] of that view. The view sees every change made through this
    /// handle before the call; changes made through other handles (other processes) in the
    /// last few seconds may be missed. For deduplication, where a missed blob is only stored
    /// again: a caller that must not miss a change made concurrently through this handle
    /// compares the generation with [`Index::generation`] afterwards.
    pub(crate) fn lookup_shared(&self, id: &ChunkId) -> Result<(Option<BlobLocation>, u64)> {
        let view = self.shared_view()?;
        Ok((view.snapshot.lookup(id)?, view.generation))
    }

    /// How many changes were made through this handle: it grows after each one commits, and
    /// when [`Index::changed`] says others may have made some.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn shared_view(&self) -> Result<Arc<SharedView>> {
        // Read before the transaction begins: a change that commits in between makes the view
        // look older than it is, never newer.
        let generation = self.generation();
        {
            let slot = self.shared.read().unwrap_or_else(|e| e.into_inner());
            if let Some(view) = slot
                .as_ref()
                .filter(|v| v.generation == generation && v.made.elapsed() < SHARED_VIEW_RENEWAL)
            {
                return Ok(Arc::clone(view));
            }
        }
        let view = Arc::new(SharedView {
            made: Instant::now(),
            snapshot: self.snapshot()?,
            generation,
        });
        let mut slot = self.shared.write().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_none_or(|v| v.generation < generation || v.made < view.made)
        {
            *slot = Some(Arc::clone(&view));
        }
        Ok(view)
    }

    /// Marks a committed change, or one other handles may have made (the store calls it after
    /// bringing the index up to date): the shared view is dropped, and made again on its next
    /// use.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A view of the index as it is now, for many lookups in a row without a transaction each.
    /// It does not see blobs absorbed after it was made.
    pub(crate) fn snapshot(&self) -> Result<IndexSnapshot> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(BLOBS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        Ok(IndexSnapshot {
            table,
            path: self.path.clone(),
        })
    }

    /// Names of the index files already absorbed.
    pub(crate) fn absorbed_index_files(&self) -> Result<HashSet<String>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(INDEX_FILES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashSet::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut names = HashSet::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (name, _) = item.map_err(|e| self.err(e))?;
            names.insert(name.value().to_string());
        }
        Ok(names)
    }

    /// Adds the blobs of `packs` in one transaction, and records `files` as absorbed.
    pub(crate) fn absorb(&self, files: &[&str], packs: &[IndexedPack]) -> Result<()> {
        // In id order, so that the B-tree's leaves are visited once each, in file order,
        // rather than at random: a large index then rewrites each leaf once per transaction.
        let mut entries: Vec<(&PackEntry, &ChunkId)> =
            Vec::with_capacity(packs.iter().map(|p| p.blobs.len()).sum());
        for pack in packs {
            entries.extend(pack.blobs.iter().map(|entry| (entry, &pack.pack)));
        }
        entries.sort_unstable_by(|a, b| a.0.id.as_bytes().cmp(b.0.id.as_bytes()));
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            for (entry, pack) in entries {
                let location = encode_location(&entry.location(*pack));
                blobs
                    .insert(entry.id.as_bytes(), &location)
                    .map_err(|e| self.err(e))?;
            }
            let mut absorbed = txn.open_table(INDEX_FILES).map_err(|e| self.err(e))?;
            for file in files {
                absorbed.insert(*file, ()).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.changed();
        Ok(())
    }

    /// The cached copies of the snapshot files `names` (`None` where there is none, and for
    /// every name `skip` selects, which is not looked up), and whether the cache holds files
    /// not among `names` (deleted since). That answer is certain when nothing is skipped;
    /// otherwise it is only `true` when the cache holds more files than `names`, so a copy
    /// of a deleted file may stay until a later call.
    pub(crate) fn cached_snapshot_files(
        &self,
        names: &[String],
        skip: impl Fn(&str) -> bool,
    ) -> Result<(Vec<Option<Vec<u8>>>, bool)> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(SNAPSHOT_FILES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok((vec![None; names.len()], false));
            }
            Err(e) => return Err(self.err(e)),
        };
        let mut hits = 0;
        let mut skipped = 0;
        let mut copies = Vec::with_capacity(names.len());
        for name in names {
            if skip(name) {
                skipped += 1;
                copies.push(None);
                continue;
            }
            let copy = table
                .get(name.as_str())
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec());
            hits += usize::from(copy.is_some());
            copies.push(copy);
        }
        let cached = redb::ReadableTableMetadata::len(&table).map_err(|e| self.err(e))?;
        Ok((copies, cached > (hits + skipped) as u64))
    }

    /// The kept values as one read transaction sees them: what another process changes
    /// afterwards is not seen through it.
    pub(crate) fn kept_reader(&self) -> Result<KeptReader<'_>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(KEPT_VALUES) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        Ok(KeptReader { table, index: self })
    }

    /// Caches the snapshot files `add` (name, content) and drops every cached one not in
    /// `keep`, in one transaction.
    pub(crate) fn update_snapshot_files(
        &self,
        add: &[(&str, &[u8])],
        keep: &HashSet<&str>,
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SNAPSHOT_FILES).map_err(|e| self.err(e))?;
            table
                .retain(|name, _| keep.contains(name))
                .map_err(|e| self.err(e))?;
            for (name, bytes) in add {
                table.insert(*name, *bytes).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Number of blobs the index knows.
    pub(crate) fn len(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(BLOBS) {
            Ok(t) => redb::ReadableTableMetadata::len(&t).map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Forgets everything (before a rebuild).
    pub(crate) fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
        txn.delete_table(INDEX_FILES).map_err(|e| self.err(e))?;
        txn.delete_table(LISTING_STAMPS).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        self.changed();
        Ok(())
    }

    /// The stamp of the last listing of `index/` whose every file was absorbed, if one was
    /// recorded since the index was last emptied.
    pub(crate) fn index_listing_stamp(&self) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(LISTING_STAMPS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get(INDEX_LISTING)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Records `stamp` as that of the listing `listed` of `index/`, if every file listed is
    /// recorded as absorbed when the transaction runs (another process may have emptied the
    /// index since this one absorbed them): returns whether it was recorded.
    pub(crate) fn set_index_listing_stamp(&self, stamp: &[u8], listed: &[String]) -> Result<bool> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let recorded = {
            let absorbed = txn.open_table(INDEX_FILES).map_err(|e| self.err(e))?;
            let mut all = true;
            for name in listed {
                if absorbed
                    .get(name.as_str())
                    .map_err(|e| self.err(e))?
                    .is_none()
                {
                    all = false;
                    break;
                }
            }
            if all {
                let mut table = txn.open_table(LISTING_STAMPS).map_err(|e| self.err(e))?;
                table
                    .insert(INDEX_LISTING, stamp)
                    .map_err(|e| self.err(e))?;
            }
            all
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(recorded)
    }

    /// Runs `change` on the kept values in one write transaction: what it reads is what its
    /// writes replace, whatever other processes do meanwhile. Nothing is written when it
    /// fails.
    pub(crate) fn update_kept_values<T>(
        &self,
        change: impl FnOnce(&mut KeptTable<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = {
            let table = txn.open_table(KEPT_VALUES).map_err(|e| self.err(e))?;
            change(&mut KeptTable { table, index: self })?
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }
}

/// The kept values as one read transaction saw them ([`Index::kept_reader`]); values are as
/// stored (sealed).
pub(crate) struct KeptReader<'a> {
    /// `None` when nothing was ever kept.
    table: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    index: &'a Index,
}

impl KeptReader<'_> {
    /// The value kept under `key`, as stored (sealed).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        Ok(table
            .get(key)
            .map_err(|e| self.index.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// The kept values (as stored, sealed) whose keys lie in `range`, in key order or
    /// reversed, handed to `visit` one at a time until it returns `false`.
    pub(crate) fn scan(
        &self,
        range: (std::ops::Bound<&str>, std::ops::Bound<&str>),
        reverse: bool,
        mut visit: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let items = table.range::<&str>(range).map_err(|e| self.index.err(e))?;
        let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
            let (key, value): (redb::AccessGuard<&str>, redb::AccessGuard<&[u8]>) =
                item.map_err(|e| self.index.err(e))?;
            visit(key.value(), value.value())
        };
        if reverse {
            for item in items.rev() {
                if !step(item)? {
                    break;
                }
            }
        } else {
            for item in items {
                if !step(item)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The kept values inside one write transaction ([`Index::update_kept_values`]); values are
/// as stored (sealed).
pub(crate) struct KeptTable<'a> {
    table: redb::Table<'a, &'static str, &'static [u8]>,
    index: &'a Index,
}

impl KeptTable<'_> {
    /// The value kept under `key`, as stored (sealed).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table
            .get(key)
            .map_err(|e| self.index.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Every key that starts with `prefix`, in order.
    pub(crate) fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for item in self
            .table
            .range::<&str>(prefix..)
            .map_err(|e| self.index.err(e))?
        {
            let (key, _) = item.map_err(|e| self.index.err(e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }

    /// Keeps `value` under `key`, in place of any value kept there.
    pub(crate) fn insert(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.table
            .insert(key, value)
            .map_err(|e| self.index.err(e))?;
        Ok(())
    }

    /// Drops the value kept under `key`, if any.
    pub(crate) fn remove(&mut self, key: &str) -> Result<()> {
        self.table.remove(key).map_err(|e| self.index.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_encoding_round_trips() {
        let l = BlobLocation {
            pack: ChunkId::from_bytes([9u8; 32]),
            offset: 0x0102_0304_0506_0708,
            length: 77,
            raw_length: 1 << 20,
            kind: BlobKind::Tree,
            encoding: Encoding::Grouped,
            member_offset: 0x0a0b_0c0d,
        };
        assert_eq!(decode_location(&encode_location(&l)), Some(l));
    }

    /// Packs of 500 blobs with ids from a hash, so that each transaction lands all over the
    /// B-tree, as index files of real backups do.
    fn packs(first: u32, count: u32) -> Vec<IndexedPack> {
        (first..first + count)
            .map(|p| IndexedPack {
                pack: ChunkId::from_bytes(*blake3::hash(&p.to_le_bytes()).as_bytes()),
                size: 1 << 24,
                blobs: (0..500u32)
                    .map(|b| PackEntry {
                        id: ChunkId::from_bytes(
                            *blake3::hash(&(u64::from(p) << 32 | u64::from(b)).to_le_bytes())
                                .as_bytes(),
                        ),
                        kind: BlobKind::Data,
                        encoding: Encoding::Zstd,
                        offset: u64::from(b) * 4096,
                        length: 4000,
                        raw_length: 9000,
                        member_offset: 0,
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn compacting_shrinks_the_file_and_keeps_every_entry() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("index.redb");
        let mut index = Index::open(&path, &[1; 32]).expect("a new index");
        let mut all = Vec::new();
        for round in 0..20 {
            let batch = packs(round * 10, 10);
            index.absorb(&[], &batch).expect("absorbed");
            all.extend(batch);
        }
        let before = std::fs::metadata(&path).expect("the file").len();

        // A reader in this process holds pages: compaction refuses, naming the file.
        let reader = index.snapshot().expect("a read view");
        let err = index.compact().expect_err("a reader blocks compaction");
        assert!(err.to_string().contains("index.redb"), "{err}");
        drop(reader);

        index.compact().expect("compacted");
        let after = std::fs::metadata(&path).expect("the file").len();
        assert!(after * 10 < before * 7, "{before} -> {after} bytes");
        assert_eq!(index.len().expect("a count"), 100_000);
        for pack in &all {
            for entry in &pack.blobs {
                assert_eq!(
                    index.lookup(&entry.id).expect("a lookup"),
                    Some(entry.location(pack.pack))
                );
            }
        }
    }

    #[test]
    fn a_listing_stamp_is_recorded_only_over_every_listed_file_absorbed() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let index = Index::open(&dir.path().join("index.redb"), &[1; 32]).expect("an index");
        let listed = vec!["a".to_string(), "b".to_string()];
        index.absorb(&["a"], &packs(0, 1)).expect("absorbed");
        // "b" is not absorbed (yet, or another process emptied the index meanwhile).
        assert!(
            !index
                .set_index_listing_stamp(b"s1", &listed)
                .expect("a write")
        );
        assert_eq!(index.index_listing_stamp().expect("a read"), None);
        index.absorb(&["b"], &packs(1, 1)).expect("absorbed");
        assert!(
            index
                .set_index_listing_stamp(b"s1", &listed)
                .expect("a write")
        );
        assert_eq!(
            index.index_listing_stamp().expect("a read").as_deref(),
            Some(&b"s1"[..])
        );
        // Emptying the index drops the stamp with what it vouched for.
        index.clear().expect("cleared");
        assert_eq!(index.index_listing_stamp().expect("a read"), None);
        assert!(
            !index
                .set_index_listing_stamp(b"s1", &listed)
                .expect("a write")
        );
    }

    #[test]
    fn the_shared_view_sees_every_change_of_this_process() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut index = Index::open(&dir.path().join("index.redb"), &[1; 32]).expect("an index");
        let first = packs(0, 1);
        let entry = &first[0].blobs[0];
        let (found, before) = index.lookup_shared(&entry.id).expect("a lookup");
        assert_eq!(found, None);

        index.absorb(&[], &first).expect("absorbed");
        assert!(index.generation() > before, "absorbing is a change");
        let (found, generation) = index.lookup_shared(&entry.id).expect("a lookup");
        assert_eq!(found, Some(entry.location(first[0].pack)));
        assert_eq!(generation, index.generation());

        index.clear().expect("cleared");
        assert!(index.generation() > generation, "clearing is a change");
        assert_eq!(index.lookup_shared(&entry.id).expect("a lookup").0, None);

        // A change another handle may have made: the view is made again.
        let other = index.generation();
        index.changed();
        let (found, generation) = index.lookup_shared(&entry.id).expect("a lookup");
        assert_eq!((found, generation > other), (None, true));

        // The shared view is a reader too: compaction drops it rather than fail.
        index.absorb(&[], &first).expect("absorbed again");
        assert!(
            index
                .lookup_shared(&entry.id)
                .expect("a lookup")
                .0
                .is_some()
        );
        index
            .compact()
            .expect("compacted with the shared view open");
        assert!(
            index
                .lookup_shared(&entry.id)
                .expect("a lookup")
                .0
                .is_some()
        );
    }
}
