//! `repair index` and `repair snapshots`: get a damaged repository back to a state that
//! `check` accepts, saying exactly what was lost.
//!
//! - `repair index` lists every pack again from its own trailer (packs are self-describing),
//!   writes new index files, and only then deletes the old ones. With `read_data` it also
//!   verifies every pack: the intact blobs of a damaged pack are copied into new packs and the
//!   damaged pack is deleted, so that the damaged blobs are listed nowhere (later backups store
//!   them again, and `repair snapshots` sees them as lost).
//! - `repair snapshots` writes, for each snapshot that needs a blob the index does not list (or,
//!   with `read_data`, one that does not read back), a new snapshot without the files that need
//!   it; a folder whose tree is lost becomes an empty folder. The new snapshot carries the tag
//!   `repaired`; the original stays unless `forget` is set. Damaged manifests (which cannot be
//!   repaired: their tree is unknown) are deleted only with `forget`.
//!
//! Both take an exclusive lock, and add before they delete.

use std::collections::{HashMap, HashSet};

use chunk_store::{ChunkId, FileKind, IndexedPack, MAX_INDEX_FILE_ENTRIES};
use snapshot_index::{Node, NodeKind, Snapshot, Tree};

use crate::error::Result;
use crate::lock::LockKind;
use crate::progress::Progress;
use crate::repository::Repository;

/// A problem `repair index` found and worked around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairNote {
    /// The file concerned (`packs/…`, `index/…`).
    pub object: String,
    /// What was wrong and what was done about it.
    pub message: String,
}

/// What `repair index` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRepairOutcome {
    /// Packs in the repository.
    pub packs: u64,
    /// Packs listed in the new index files.
    pub packs_listed: u64,
    /// Blobs listed.
    pub blobs_listed: u64,
    /// Blobs left out because they do not read back as their id (with `read_data`; the rest of
    /// their pack is copied to new packs).
    pub blobs_dropped: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Old index files deleted.
    pub index_files_removed: u64,
    /// Damage found and worked around.
    pub notes: Vec<RepairNote>,
}

/// One snapshot `repair snapshots` rewrote (or could not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub original: ChunkId,
    /// The snapshot written in its place; `None` when its manifest is unreadable.
    pub repaired: Option<ChunkId>,
    /// Files left out, and folders emptied, with why.
    pub lost: Vec<String>,
    /// Whether the original manifest was deleted.
    pub forgotten: bool,
}

/// What `repair snapshots` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRepairOutcome {
    /// Snapshots examined.
    pub snapshots: u64,
    /// The damaged ones and what became of them; intact snapshots are not listed.
    pub repaired: Vec<RepairedSnapshot>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Options of `repair snapshots`.
#[derive(Debug, Clone, Default)]
pub struct SnapshotRepairOptions {
    /// Only these snapshots (ids or unique prefixes); empty: all.
    pub snapshots: Vec<String>,
    /// Also read every data blob the snapshots need and treat one that does not read back as
    /// lost.
    pub read_data: bool,
    /// Delete the original of each repaired snapshot, and manifests that cannot be read.
    pub forget: bool,
    /// Only report what would be done.
    pub dry_run: bool,
}

/// Rewrites trees without what is lost, each tree once.
struct TreeRepair<'a> {
    repo: &'a Repository,
    read_data: bool,
    dry_run: bool,
    /// Blob id → whether it can be read.
    readable: HashMap<ChunkId, bool>,
    /// Tree id → its repaired id and what was lost below it (relative paths).
    done: HashMap<ChunkId, (ChunkId, Vec<String>)>,
}

impl TreeRepair<'_> {
    fn blob_ok(&mut self, id: &ChunkId) -> Result<bool> {
        if let Some(ok) = self.readable.get(id) {
            return Ok(*ok);
        }
        let store = self.repo.store();
        let ok = match store.locate(id)? {
            None => false,
            Some(_) if !self.read_data => true,
            Some(_) => match store.get_blob(id) {
                Ok(_) => true,
                Err(chunk_store::Error::Corrupt { .. })
                | Err(chunk_store::Error::NotFound { .. })
                | Err(chunk_store::Error::ShortRead { .. }) => false,
                Err(e) => return Err(e.into()),
            },
        };
        self.readable.insert(*id, ok);
        Ok(ok)
    }

    /// The repaired form of tree `id`, and what was lost below it.
    fn tree(&mut self, id: ChunkId) -> Result<(ChunkId, Vec<String>)> {
        if let Some(done) = self.done.get(&id) {
            return Ok(done.clone());
        }
        let mut lost = Vec::new();
        let nodes = if self.blob_ok(&id)? {
            match Tree::load(self.repo.store(), &id) {
                Ok(tree) => Some(tree.into_nodes()),
                Err(snapshot_index::Error::Corrupt { .. })
                | Err(snapshot_index::Error::Store(
                    chunk_store::Error::Corrupt { .. }
                    | chunk_store::Error::NotFound { .. }
                    | chunk_store::Error::ShortRead { .. },
                )) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let Some(nodes) = nodes else {
            lost.push(String::from(
                ": folder contents lost (tree unreadable), kept empty",
            ));
            let empty = self.save(Vec::new())?;
            self.done.insert(id, (empty, lost.clone()));
            return Ok((empty, lost));
        };
        let mut kept = Vec::with_capacity(nodes.len());
        let mut changed = false;
        for mut node in nodes {
            let name = String::from_utf8_lossy(&node.name).into_owned();
            match node.kind {
                NodeKind::File | NodeKind::Hardlink => {
                    let mut missing = 0;
                    for chunk in &node.content {
                        if !self.blob_ok(chunk)? {
                            missing += 1;
                        }
                    }
                    if missing > 0 {
                        lost.push(format!(
                            "/{name}: file left out ({missing} of its {} chunk(s) lost)",
                            node.content.len()
                        ));
                        changed = true;
                        continue;
                    }
                }
                NodeKind::Dir => {
                    if let Some(subtree) = node.subtree {
                        let (repaired, below) = self.tree(subtree)?;
                        if repaired != subtree {
                            changed = true;
                            node.subtree = Some(repaired);
                        }
                        lost.extend(below.into_iter().map(|l| format!("/{name}{l}")));
                    }
                }
                _ => {}
            }
            kept.push(node);
        }
        let repaired = if changed { self.save(kept)? } else { id };
        self.done.insert(id, (repaired, lost.clone()));
        Ok((repaired, lost))
    }

    fn save(&self, nodes: Vec<Node>) -> Result<ChunkId> {
        let tree = Tree::new(nodes)?;
        if self.dry_run {
            // The id the tree would have, without storing it.
            return Ok(self.repo.store().blob_id(&tree.to_bytes()?));
        }
        Ok(tree.save(self.repo.store())?)
    }
}

/// Succeeds when every pack of the repository is listed by a readable index file, and every
/// pack an index file lists exists; otherwise an error saying to run `repair index` first.
fn index_is_complete(store: &chunk_store::ChunkStore) -> Result<()> {
    let backend = store.backend();
    let first = |what: String| {
        Err(crate::error::Error::invalid(format!(
            "repair snapshots stopped before changing anything: {what}, so blobs that are safe \
             in their packs would look lost. Run `respaldo repair index` first"
        )))
    };
    let mut listed = HashSet::new();
    for name in backend.list(FileKind::Index)? {
        match store.read_index_file(&name) {
            Ok(packs) => listed.extend(packs.into_iter().map(|p| p.pack)),
            Err(e) => return first(format!("{e}")),
        }
    }
    let on_backend: HashSet<ChunkId> = backend
        .list(FileKind::Pack)?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    if let Some(pack) = on_backend.difference(&listed).next() {
        return first(format!("no index file lists packs/{pack}"));
    }
    if let Some(pack) = listed.difference(&on_backend).next() {
        return first(format!(
            "an index file lists packs/{pack}, which is missing"
        ));
    }
    Ok(())
}

impl Repository {
    /// Rebuilds the index files from the pack trailers (see the module documentation).
    pub fn repair_index(
        &self,
        read_data: bool,
        progress: &dyn Progress,
    ) -> Result<IndexRepairOutcome> {
        let lock = self.lock(LockKind::Exclusive, "repair index")?;
        let store = self.store();
        let backend = store.backend();
        let mut outcome = IndexRepairOutcome::default();

        // What the current index files say, for packs whose trailer is damaged.
        let old_files = backend.list(FileKind::Index)?;
        let mut old_listing: HashMap<ChunkId, IndexedPack> = HashMap::new();
        for name in &old_files {
            match store.read_index_file(name) {
                Ok(packs) => {
                    for pack in packs {
                        old_listing.entry(pack.pack).or_insert(pack);
                    }
                }
                Err(e) => outcome.notes.push(RepairNote {
                    object: FileKind::Index.display_path(name),
                    message: format!("{e}; it is replaced"),
                }),
            }
        }

        let names = backend.list(FileKind::Pack)?;
        outcome.packs = names.len() as u64;
        let mut salvaged = Vec::new();
        progress.add_total(names.len() as u64, 0);
        let mut listed = Vec::new();
        for name in &names {
            let object = FileKind::Pack.display_path(name);
            let Ok(pack) = name.parse::<ChunkId>() else {
                outcome.notes.push(RepairNote {
                    object,
                    message: "the name is not a 64-digit hex id; left out".to_string(),
                });
                continue;
            };
            let size = backend.size(FileKind::Pack, name)?;
            let blobs = match store.pack_entries(&pack) {
                Ok(blobs) => blobs,
                Err(e) => match old_listing.get(&pack) {
                    Some(old) if old.size == size => {
                        outcome.notes.push(RepairNote {
                            object: object.clone(),
                            message: format!("{e}; listed as an intact index file listed it"),
                        });
                        old.blobs.clone()
                    }
                    _ => {
                        outcome.notes.push(RepairNote {
                            object,
                            message: format!(
                                "{e}; no intact index file lists it, so its blobs are lost \
                                 (`respaldo repair snapshots` removes what needs them)"
                            ),
                        });
                        continue;
                    }
                },
            };
            if read_data {
                let bytes = store.read_pack(&pack)?;
                let report = store.verify_pack_bytes(&pack, &bytes, &blobs);
                if !report.is_intact() {
                    // Salvage: the blobs that still read back go to new packs (listed by the
                    // flush's own index file), and the damaged pack goes once nothing lists it.
                    let bad: HashSet<ChunkId> = report.damaged.iter().map(|(e, _)| e.id).collect();
                    let mut copied = 0;
                    for entry in blobs.iter().filter(|b| !bad.contains(&b.id)) {
                        if let Some(sealed) = entry.sealed_in(&bytes) {
                            store.repack_blob(&pack, entry, sealed)?;
                            copied += 1;
                        }
                    }
                    outcome.blobs_dropped += bad.len() as u64;
                    outcome.blobs_listed += copied;
                    outcome.notes.push(RepairNote {
                        object,
                        message: format!(
                            "damaged ({} blob(s) do not match their id{}); its {copied} intact \
                             blob(s) were copied to new packs and it is deleted",
                            bad.len(),
                            if report.name_matches {
                                ""
                            } else {
                                ", and its content does not match its name"
                            }
                        ),
                    });
                    salvaged.push(pack);
                    progress.file_done(std::path::Path::new(name));
                    continue;
                }
            }
            progress.file_done(std::path::Path::new(name));
            if blobs.is_empty() {
                continue;
            }
            outcome.packs_listed += 1;
            outcome.blobs_listed += blobs.len() as u64;
            listed.push(IndexedPack { pack, size, blobs });
        }

        // The salvaged blobs' new packs, and an index file listing them. That file (like those
        // below) may have the name of an old one (unencrypted sealing is deterministic): what
        // this repair wrote is never deleted.
        store.flush()?;
        let mut written: HashSet<String> = backend
            .list(FileKind::Index)?
            .into_iter()
            .filter(|name| !old_files.contains(name))
            .collect();
        for batch in chunk_store::index_file_batches(listed, MAX_INDEX_FILE_ENTRIES) {
            written.insert(store.write_index_file(&batch)?);
        }
        outcome.index_files_written = written.len() as u64;
        lock.ensure_held()?;
        for name in old_files.iter().filter(|n| !written.contains(*n)) {
            backend.delete(FileKind::Index, name)?;
            outcome.index_files_removed += 1;
        }
        for pack in &salvaged {
            store.delete_pack(&pack.to_hex())?;
        }
        store.rebuild_index()?;
        Ok(outcome)
    }

    /// Writes snapshots without what is lost (see the module documentation).
    pub fn repair_snapshots(
        &self,
        options: &SnapshotRepairOptions,
        progress: &dyn Progress,
    ) -> Result<SnapshotRepairOutcome> {
        let lock = self.lock(LockKind::Exclusive, "repair snapshots")?;
        let store = self.store();
        let backend = store.backend();
        // With an incomplete index, blobs that are safe in their packs would look lost, and
        // repairing would throw intact files away: the index comes first.
        index_is_complete(store)?;
        let mut outcome = SnapshotRepairOutcome {
            dry_run: options.dry_run,
            ..SnapshotRepairOutcome::default()
        };
        let all: Vec<ChunkId> = backend
            .list(FileKind::Snapshot)?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let chosen: Vec<ChunkId> = if options.snapshots.is_empty() {
            all
        } else {
            let mut chosen = Vec::new();
            for spec in &options.snapshots {
                let spec = spec.to_ascii_lowercase();
                let matches: Vec<&ChunkId> = all.iter().filter(|id| id.has_prefix(&spec)).collect();
                match matches.as_slice() {
                    [one] => chosen.push(**one),
                    [] => {
                        return Err(snapshot_index::Error::NoSnapshot { spec }.into());
                    }
                    many => {
                        return Err(snapshot_index::Error::AmbiguousSnapshot {
                            prefix: spec,
                            count: many.len(),
                        }
                        .into());
                    }
                }
            }
            chosen
        };
        progress.add_total(chosen.len() as u64, 0);
        let mut repair = TreeRepair {
            repo: self,
            read_data: options.read_data,
            dry_run: options.dry_run,
            readable: HashMap::new(),
            done: HashMap::new(),
        };
        let mut pending = Vec::new();
        for id in chosen {
            outcome.snapshots += 1;
            progress.file_done(std::path::Path::new(&id.to_hex()));
            let snapshot = match Snapshot::load(store, &id) {
                Ok(snapshot) => snapshot,
                // Only a manifest that is damaged is beyond repair (and deleted with
                // `forget`); one that cannot be read now (I/O, a newer version) stops repair.
                Err(
                    e @ (snapshot_index::Error::Corrupt { .. }
                    | snapshot_index::Error::Store(chunk_store::Error::Corrupt { .. })),
                ) => {
                    outcome.repaired.push(RepairedSnapshot {
                        original: id,
                        repaired: None,
                        lost: vec![format!(
                            "the manifest cannot be read ({e}); {}",
                            if options.forget {
                                "it is deleted"
                            } else {
                                "`--forget` deletes it"
                            }
                        )],
                        forgotten: options.forget && !options.dry_run,
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let (tree, lost) = repair.tree(snapshot.tree)?;
            if tree == snapshot.tree {
                continue;
            }
            let lost = lost
                .into_iter()
                .map(|l| match l.strip_prefix(':') {
                    Some(root) => format!("/:{root}"),
                    None => l,
                })
                .collect();
            let mut fixed = snapshot.clone();
            fixed.tree = tree;
            if !fixed.tags.iter().any(|t| t == "repaired") {
                fixed.tags.push("repaired".to_string());
            }
            pending.push((id, fixed, lost));
        }
        if !options.dry_run {
            store.flush()?;
        }
        for (original, fixed, lost) in pending {
            let repaired = if options.dry_run {
                None
            } else {
                lock.ensure_held()?;
                Some(fixed.save(store)?)
            };
            outcome.repaired.push(RepairedSnapshot {
                original,
                repaired,
                lost,
                forgotten: options.forget && !options.dry_run,
            });
        }
        if options.forget && !options.dry_run {
            lock.ensure_held()?;
            for snapshot in &outcome.repaired {
                backend.delete(FileKind::Snapshot, &snapshot.original.to_hex())?;
            }
        }
        outcome.repaired.sort_by_key(|r| r.original);
        Ok(outcome)
    }
}
