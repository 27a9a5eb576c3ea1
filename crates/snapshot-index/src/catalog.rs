//! The catalog: every snapshot of a repository, with filters and point-in-time selection.

use std::collections::HashSet;

use chunk_store::{ChunkStore, FileKind};
use chunker::ChunkId;

use crate::error::{Error, Result};
use crate::kept_catalog;
use crate::snapshot::Snapshot;

/// One snapshot and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The id (name of the manifest file).
    pub id: ChunkId,
    /// The manifest.
    pub snapshot: Snapshot,
}

/// Which snapshots a command considers. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Only these hosts.
    pub hosts: Vec<String>,
    /// Only snapshots carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only snapshots whose paths include every one of these.
    pub paths: Vec<String>,
    /// Require the snapshot's paths and tags to be exactly `paths` and `tags` (as sets), not
    /// merely to include them: how a scheduled job picks its own snapshots and no other's.
    pub exact: bool,
}

impl SnapshotFilter {
    /// Whether `snapshot` passes.
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        fn set(v: &[String]) -> std::collections::BTreeSet<&String> {
            v.iter().collect()
        }
        (self.hosts.is_empty() || self.hosts.contains(&snapshot.hostname))
            && self.tags.iter().all(|t| snapshot.tags.contains(t))
            && self.paths.iter().all(|p| snapshot.paths.contains(p))
            && (!self.exact
                || (set(&self.tags) == set(&snapshot.tags)
                    && set(&self.paths) == set(&snapshot.paths)))
    }
}

/// Every snapshot of a repository, oldest first (ties by id).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<SnapshotEntry>,
}

impl Catalog {
    /// Every snapshot the repository lists. A damaged manifest is an error naming it; a
    /// manifest deleted between listing and reading (a `forget` running meanwhile) is left
    /// out.
    ///
    /// The catalog keeps the manifests it opened, decoded and sealed with the repository's
    /// key, beside the fast index ([`ChunkStore::update_kept_values`]), so that a load opens
    /// only the manifests new to it (each verified against its name and seal, from the
    /// store's copy of the file when it has one); and while the backend vouches that
    /// `snapshots/` is unchanged since ([`ChunkStore::listing_stamp`]), it does not list the
    /// repository either. In an unencrypted repository the seal is a checksum: it catches
    /// damage to the cache, not a deliberate change to it; commands that delete data on the
    /// catalog's word use [`Catalog::load_verified`].
    pub fn load(store: &ChunkStore) -> Result<Self> {
        // Taken before the listing: a file added after it changes the stamp, so what is kept
        // under this stamp is never older than what the stamp vouches for.
        let stamp = store.listing_stamp(FileKind::Snapshot);
        let mut kept = kept_catalog::read(store)?;
        let kept_before = kept.records.len();
        if kept.is_current(stamp.as_ref()) {
            return Ok(Self::from_entries(
                kept.records
                    .into_iter()
                    .map(|(id, snapshot)| SnapshotEntry { id, snapshot })
                    .collect(),
            ));
        }
        let kept_names: HashSet<String> = kept.records.keys().map(ChunkId::to_hex).collect();
        let listed = store.read_snapshot_files_except(|name| kept_names.contains(name))?;
        let mut entries = Vec::with_capacity(listed.len());
        let mut opened = HashSet::new();
        let mut complete = true;
        for (name, bytes) in listed {
            let id = Snapshot::id_from_name(&name)?;
            let snapshot = match bytes {
                None => match kept.records.remove(&id) {
                    Some(snapshot) => snapshot,
                    // Listed twice: the first listing took the kept manifest.
                    None => continue,
                },
                Some(Ok(bytes)) => {
                    opened.insert(id);
                    Snapshot::from_bytes(store, &id, &bytes)?
                }
                Some(Err(e)) if e.is_not_found() => {
                    // Deleted after the listing: the stamp has changed since, too.
                    complete = false;
                    continue;
                }
                Some(Err(e)) => return Err(e.into()),
            };
            entries.push(SnapshotEntry { snapshot, id });
        }
        // What is left of the kept manifests are those of files deleted since. Keeping the
        // catalog is only a shortcut for the next load: failing to (a full disk, a cache
        // another process holds) must not fail a command that has its catalog already.
        // Kept whenever the listing can be vouched for (the kept stamp is not current, or
        // the load would have returned above): once per change of `snapshots/`, by the
        // first load after it settles. Right after a change (a backup), only when many
        // manifests are new to it, so that a run of backups does not each pay a durable
        // write of the cache for one manifest the next command opens again cheaply.
        let stamp = stamp.filter(|_| complete);
        if stamp.is_some()
            || kept_catalog::worth_writing(kept_before, opened.len(), kept.records.len())
        {
            let _ = kept_catalog::write(store, stamp.as_ref(), &entries, |id| opened.contains(id));
        }
        Ok(Self::from_entries(entries))
    }

    /// The newest snapshot passing `filter`, taken at or before `at_or_before` when given:
    /// the answer [`Catalog::load`] then [`Catalog::resolve`] (`latest`) or
    /// [`Catalog::at_or_before`] give, `None` when no snapshot passes. While the kept catalog
    /// is current (see [`Catalog::load`]) it reads the manifests from the newest down to the
    /// one it returns, without listing the repository: its cost then grows with the snapshots
    /// it passes over, not with the number of snapshots.
    pub fn find_newest(
        store: &ChunkStore,
        filter: &SnapshotFilter,
        at_or_before: Option<i64>,
    ) -> Result<Option<SnapshotEntry>> {
        if let Some(found) = kept_catalog::newest(store, at_or_before, |s| filter.matches(s))? {
            return Ok(found);
        }
        if let Some(found) =
            kept_catalog::newest_listed(store, at_or_before, |s| filter.matches(s))?
        {
            return Ok(found);
        }
        let catalog = Self::load(store)?;
        Ok(match at_or_before {
            Some(time_ns) => catalog.at_or_before(time_ns, filter).cloned(),
            None => catalog
                .entries
                .iter()
                .rfind(|e| filter.matches(&e.snapshot))
                .cloned(),
        })
    }

    /// The snapshot `spec` names: `latest` (the newest passing `filter`), a full id or a
    /// unique id prefix, with the answers and errors of [`Catalog::resolve`]. A full id reads
    /// its manifest alone ([`Catalog::load_full_id`]); `latest` and prefixes are found
    /// without listing the repository while the kept catalog is current
    /// ([`Catalog::find_newest`]).
    pub fn find(store: &ChunkStore, spec: &str, filter: &SnapshotFilter) -> Result<SnapshotEntry> {
        let none = || Error::NoSnapshot {
            spec: spec.to_string(),
        };
        if spec == "latest" {
            return Self::find_newest(store, filter, None)?.ok_or_else(none);
        }
        if let Some(entry) = Self::load_full_id(store, spec)? {
            return Ok(entry);
        }
        let prefix = spec.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(none());
        }
        match kept_catalog::with_prefix(store, &prefix)? {
            Some((Some(entry), 1)) => Ok(entry),
            Some((_, 0)) => Err(none()),
            Some((_, count)) => Err(Error::AmbiguousSnapshot {
                prefix: spec.to_string(),
                count,
            }),
            None => Ok(Self::load(store)?.resolve(spec, filter)?.clone()),
        }
    }

    /// Every snapshot the repository lists, each manifest verified against its name and
    /// seal on this call (from the store's copy of the file when it has one), never taken
    /// from the kept catalog: for `forget` and `prune`, which delete on the catalog's word.
    /// Errors as [`Catalog::load`].
    pub fn load_verified(store: &ChunkStore) -> Result<Self> {
        let mut entries = Vec::new();
        for (name, bytes) in store.read_snapshot_files()? {
            let id = Snapshot::id_from_name(&name)?;
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            entries.push(SnapshotEntry {
                snapshot: Snapshot::from_bytes(store, &id, &bytes)?,
                id,
            });
        }
        Ok(Self::from_entries(entries))
    }

    /// The snapshot `spec` names when `spec` is a full id (64 hex digits, either case), read
    /// on its own: its cost does not grow with the number of snapshots. `None` for any other
    /// spec (`latest`, a prefix), which needs the whole catalog ([`Catalog::resolve`]). A
    /// full id that names no snapshot is [`Error::NoSnapshot`]; a damaged manifest is an
    /// error naming it.
    pub fn load_full_id(store: &ChunkStore, spec: &str) -> Result<Option<SnapshotEntry>> {
        let Ok(id) = spec.parse::<ChunkId>() else {
            return Ok(None);
        };
        match Snapshot::load(store, &id) {
            Ok(snapshot) => Ok(Some(SnapshotEntry { id, snapshot })),
            Err(Error::Store(e)) if e.is_not_found() => Err(Error::NoSnapshot {
                spec: spec.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// A catalog of the given snapshots.
    pub fn from_entries(mut entries: Vec<SnapshotEntry>) -> Self {
        entries.sort_by_key(|e| (e.snapshot.time_ns, e.id));
        Self { entries }
    }

    /// All snapshots, oldest first.
    pub fn entries(&self) -> &[SnapshotEntry] {
        &self.entries
    }

    /// The snapshots that pass `filter`, oldest first.
    pub fn filtered<'a>(
        &'a self,
        filter: &'a SnapshotFilter,
    ) -> impl Iterator<Item = &'a SnapshotEntry> + 'a {
        self.entries.iter().filter(|e| filter.matches(&e.snapshot))
    }

    /// Resolves `latest` (the newest passing `filter`), a full id, or a unique id prefix.
    pub fn resolve(&self, spec: &str, filter: &SnapshotFilter) -> Result<&SnapshotEntry> {
        if spec == "latest" {
            return self
                .entries
                .iter()
                .rfind(|e| filter.matches(&e.snapshot))
                .ok_or_else(|| Error::NoSnapshot {
                    spec: spec.to_string(),
                });
        }
        let spec_lower = spec.to_ascii_lowercase();
        if spec_lower.is_empty() || !spec_lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NoSnapshot {
                spec: spec.to_string(),
            });
        }
        let matches: Vec<&SnapshotEntry> = self
            .entries
            .iter()
            .filter(|e| e.id.has_prefix(&spec_lower))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::NoSnapshot {
                spec: spec.to_string(),
            }),
            many => Err(Error::AmbiguousSnapshot {
                prefix: spec.to_string(),
                count: many.len(),
            }),
        }
    }

    /// The newest snapshot passing `filter` taken at or before `time_ns`.
    pub fn at_or_before(&self, time_ns: i64, filter: &SnapshotFilter) -> Option<&SnapshotEntry> {
        self.entries
            .iter()
            .filter(|e| filter.matches(&e.snapshot))
            .take_while(|e| e.snapshot.time_ns <= time_ns)
            .last()
    }

    /// The parent for a new backup: the newest snapshot of `host` with exactly `paths`.
    pub fn parent_for(&self, host: &str, paths: &[String]) -> Option<&SnapshotEntry> {
        let is_parent = parent_test(host, paths);
        self.entries.iter().rev().find(|e| is_parent(&e.snapshot))
    }

    /// [`Catalog::parent_for`] on the repository's catalog, found as
    /// [`Catalog::find_newest`] finds snapshots: without listing the repository while the
    /// kept catalog is current.
    pub fn find_parent(
        store: &ChunkStore,
        host: &str,
        paths: &[String],
    ) -> Result<Option<SnapshotEntry>> {
        if let Some(found) = kept_catalog::newest(store, None, parent_test(host, paths))? {
            return Ok(found);
        }
        if let Some(found) = kept_catalog::newest_listed(store, None, parent_test(host, paths))? {
            return Ok(found);
        }
        Ok(Self::load(store)?.parent_for(host, paths).cloned())
    }
}

/// Whether a snapshot is of `host` with exactly `paths` (in any order): a parent for a new
/// backup of them.
fn parent_test(host: &str, paths: &[String]) -> impl Fn(&Snapshot) -> bool {
    let mut wanted = paths.to_vec();
    wanted.sort();
    let host = host.to_string();
    move |snapshot| {
        let mut have = snapshot.paths.clone();
        have.sort();
        snapshot.hostname == host && have == wanted
    }
}
