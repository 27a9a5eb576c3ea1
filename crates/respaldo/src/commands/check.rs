//! `check`: can every snapshot be restored?
//!
//! Without reading data, check proves that the repository's structure holds: every key file
//! and index file is intact, every pack an index file lists exists with the listed size, every
//! snapshot manifest and every tree loads, and every blob a snapshot refers to is listed by an
//! index file in a pack that exists. With `--read-data` (or a deterministic subset of packs) it
//! also reads packs whole and verifies every blob against its id, and each pack against its
//! name. Every problem is reported with the file it is in and the snapshots and paths it
//! affects; nothing is changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use chunk_store::{ChunkId, FileKind};
use rayon::prelude::*;
use snapshot_index::{NodeKind, Snapshot, Tree};

use crate::commands::listed_blobs::{ListedBlobs, ListedBlobsBuilder};
use crate::error::{Error, Result};
use crate::events::Operation;
use crate::progress::Progress;
use crate::repository::Repository;

/// Which packs `check` reads whole.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadData {
    /// None: check the structure only.
    #[default]
    No,
    /// Every pack.
    All,
    /// A deterministic part of the packs.
    Subset(DataSubset),
}

/// A deterministic part of the packs: the same packs on every run with the same value, and
/// the parts `1/M` to `M/M` cover every pack exactly once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSubset {
    /// About this percentage (0 to 100) of the packs: those whose id, read as a fraction,
    /// falls below it.
    Percent(f64),
    /// Part `k` of `m` (1 ≤ k ≤ m): the packs whose id, as a number, is `k - 1` modulo `m`.
    Part {
        /// Which part, from 1.
        k: u32,
        /// How many parts.
        m: u32,
    },
}

impl DataSubset {
    /// Whether pack `pack` is in this subset.
    pub fn contains(&self, pack: &ChunkId) -> bool {
        let b = pack.as_bytes();
        let head = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        match *self {
            DataSubset::Percent(p) => f64::from(head) < p / 100.0 * 4_294_967_296.0,
            // Parts come from `from_str` (1 ≤ k ≤ m); a hand-made part 0 or of 0 holds nothing.
            DataSubset::Part { k, m } => m > 0 && k > 0 && head % m == k - 1,
        }
    }
}

impl FromStr for DataSubset {
    type Err = Error;

    /// `N%` (0 < N ≤ 100, decimals allowed) or `K/M` (1 ≤ K ≤ M).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "invalid data subset {s:?}: give a percentage such as 10% or a part such as 2/5"
            ))
        };
        let s = s.trim();
        if let Some(percent) = s.strip_suffix('%') {
            let p: f64 = percent.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(DataSubset::Percent(p));
        }
        let (k, m) = s.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let m: u32 = m.trim().parse().map_err(|_| bad())?;
        if k == 0 || k > m {
            return Err(bad());
        }
        Ok(DataSubset::Part { k, m })
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Which packs to read and verify blob by blob.
    pub read_data: ReadData,
}

/// A file of a snapshot that a problem makes unrestorable (in whole or in part).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AffectedFile {
    /// The snapshot.
    pub snapshot: ChunkId,
    /// The path in it.
    pub path: String,
}

/// One thing wrong (or worth knowing) about the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The damaged or missing object: a repository file (`packs/…`, `index/…`,
    /// `snapshots/…`, `keys/…`), `tree <id>`, or `missing blobs`.
    pub object: String,
    /// What is wrong and what the user can do.
    pub message: String,
    /// Files it affects, sorted (at most [`MAX_AFFECTED`] are listed).
    pub affected: Vec<AffectedFile>,
    /// How many affected files were not listed beyond [`MAX_AFFECTED`].
    pub more_affected: usize,
}

/// Most affected files listed per problem.
pub const MAX_AFFECTED: usize = 1000;

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees loaded.
    pub trees: u64,
    /// Distinct data blobs referenced by the snapshots.
    pub data_blobs: u64,
    /// Index files read.
    pub index_files: u64,
    /// Packs listed by the index files.
    pub packs: u64,
    /// Packs read whole and verified.
    pub packs_read: u64,
    /// Bytes read for that.
    pub bytes_read: u64,
    /// Damage: the repository cannot restore something, or a file is not what it should be.
    pub errors: Vec<Problem>,
    /// Harmless findings (such as packs no index lists, left by interrupted backups).
    pub warnings: Vec<Problem>,
}

impl CheckOutcome {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Problems gathered by object, so that each damaged file is reported once with everything it
/// affects.
#[derive(Default)]
struct Problems {
    errors: BTreeMap<String, Problem>,
    affected: HashMap<String, HashSet<AffectedFile>>,
}

impl Problems {
    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        let object = object.into();
        self.errors.entry(object.clone()).or_insert(Problem {
            object,
            message: message.into(),
            affected: Vec::new(),
            more_affected: 0,
        });
    }

    fn affects(&mut self, object: &str, snapshot: ChunkId, path: &str) {
        self.affected
            .entry(object.to_string())
            .or_default()
            .insert(AffectedFile {
                snapshot,
                path: path.to_string(),
            });
    }

    fn into_errors(mut self) -> Vec<Problem> {
        for (object, files) in self.affected {
            if let Some(problem) = self.errors.get_mut(&object) {
                let mut files: Vec<AffectedFile> = files.into_iter().collect();
                files.sort();
                problem.more_affected = files.len().saturating_sub(MAX_AFFECTED);
                files.truncate(MAX_AFFECTED);
                problem.affected = files;
            }
        }
        self.errors.into_values().collect()
    }
}

/// What to do about a pack that is lost or damaged.
const REPAIR_LOST: &str = "Run `respaldo repair index` (it lists only the packs that exist), then \
                           `respaldo repair snapshots` (snapshots without the files that need them)";
/// What to do about a pack whose content is damaged.
const REPAIR_DAMAGED: &str = "Run `respaldo repair index --read-data` (it moves the intact blobs to \
                              new packs), then a backup (it stores the lost ones again if their \
                              files still exist) or `respaldo repair snapshots`";

/// The object a missing blob is reported under.
const MISSING_BLOBS: &str = "missing blobs";

/// Flag of a blob's first copy: a file refers to the blob.
const REFERRED: u8 = 1;
/// Flag of a tree's first copy: the tree was loaded.
const LOADED: u8 = 2;
/// Flag of a tree's first copy: nothing below the tree is damaged.
const CLEAN: u8 = 4;
/// Flag of a copy: it cannot be read (its pack is missing or damaged, or the copy is).
const BAD: u8 = 8;

/// Walks the trees of every snapshot, skipping subtrees already found clean.
struct Walker<'a> {
    repo: &'a Repository,
    /// Every copy the index files list.
    listed: &'a ListedBlobs,
    /// One byte per copy: [`REFERRED`], [`LOADED`] and [`CLEAN`] on a blob's first copy,
    /// [`BAD`] on each copy that cannot be read. Flags rather than sets of blobs beside the
    /// table (`docs/benchmarks.md`, "What `check` and `prune` hold per blob").
    flags: Vec<u8>,
    /// Blobs files refer to that no index file lists.
    unlisted_data: HashSet<ChunkId>,
    /// Distinct trees loaded.
    trees: u64,
    /// Distinct blobs files refer to.
    data_blobs: u64,
    problems: &'a mut Problems,
}

impl Walker<'_> {
    /// Why blob `id` cannot be read, if it cannot: the problem object it is reported under
    /// (the first pack, in id order, when every copy is bad).
    fn blob_problem(&mut self, id: &ChunkId) -> Option<String> {
        let copies = self.listed.copies_of(id);
        if copies.is_empty() {
            self.problems.error(
                MISSING_BLOBS,
                "blobs that snapshots refer to are listed by no index file: if a pack holds \
                 them, `respaldo repair index` finds them again; otherwise `respaldo repair \
                 snapshots` writes snapshots without the files that need them",
            );
            return Some(MISSING_BLOBS.to_string());
        }
        if self.flags[copies.clone()].iter().all(|f| f & BAD != 0) {
            let pack = &self.listed.packs()[self.listed.copies()[copies.start].pack as usize];
            return Some(FileKind::Pack.display_path(&pack.id.to_hex()));
        }
        None
    }

    /// The flags of blob `id`'s first copy, if an index file lists it.
    fn first_flags(&mut self, id: &ChunkId) -> Option<&mut u8> {
        let first = self.listed.first_copy(id)?;
        self.flags.get_mut(first)
    }

    /// Counts data blob `id` once among those files refer to, and says why it cannot be read,
    /// if it cannot (as [`Walker::blob_problem`]).
    fn data_blob(&mut self, id: &ChunkId) -> Option<String> {
        let copies = self.listed.copies_of(id);
        if copies.is_empty() {
            self.data_blobs += u64::from(self.unlisted_data.insert(*id));
            return self.blob_problem(id);
        }
        let flags = &mut self.flags[copies.start];
        self.data_blobs += u64::from(*flags & REFERRED == 0);
        *flags |= REFERRED;
        // Most blobs have one copy, and it is readable: no second lookup for them.
        if self.flags[copies].iter().all(|f| f & BAD == 0) {
            return None;
        }
        self.blob_problem(id)
    }

    /// Checks tree `id` at `path` of `snapshot`; whether anything below is damaged.
    fn tree(&mut self, snapshot: ChunkId, id: ChunkId, path: &str) -> bool {
        if self.first_flags(&id).is_some_and(|f| *f & CLEAN != 0) {
            return false;
        }
        let shown = if path.is_empty() { "/" } else { path };
        if let Some(object) = self.blob_problem(&id) {
            self.problems.affects(&object, snapshot, shown);
            return true;
        }
        let tree = match Tree::load(self.repo.store(), &id) {
            Ok(tree) => tree,
            Err(e) => {
                let object = format!("tree {id}");
                self.problems.error(
                    &object,
                    format!(
                        "{e}; `respaldo repair snapshots` writes snapshots that hold an empty \
                         folder in its place"
                    ),
                );
                self.problems.affects(&object, snapshot, shown);
                return true;
            }
        };
        // Listed: `blob_problem` found it.
        let first_load = self.first_flags(&id).is_some_and(|flags| {
            let first = *flags & LOADED == 0;
            *flags |= LOADED;
            first
        });
        self.trees += u64::from(first_load);
        let mut damaged = false;
        for node in tree.nodes() {
            let child = format!("{path}/{}", String::from_utf8_lossy(&node.name));
            match node.kind {
                NodeKind::File | NodeKind::Hardlink => {
                    for chunk in &node.content {
                        if let Some(object) = self.data_blob(chunk) {
                            self.problems.affects(&object, snapshot, &child);
                            damaged = true;
                        }
                    }
                }
                // The tree decoder refuses a folder without a subtree.
                NodeKind::Dir => {
                    if let Some(subtree) = node.subtree {
                        damaged |= self.tree(snapshot, subtree, &child);
                    }
                }
                _ => {}
            }
        }
        if !damaged && let Some(flags) = self.first_flags(&id) {
            *flags |= CLEAN;
        }
        damaged
    }
}

impl Repository {
    /// Checks the repository (see the module documentation); takes a shared lock.
    ///
    /// Damage is reported in the outcome, not as an error: an error means the check itself
    /// could not run (the lock, the backend, or index files listing more than 2^32 - 1 packs
    /// or blobs).
    pub fn check(&self, options: &CheckOptions, progress: &dyn Progress) -> Result<CheckOutcome> {
        self.observed(Operation::Check, None, || self.check_all(options, progress))
    }

    fn check_all(&self, options: &CheckOptions, progress: &dyn Progress) -> Result<CheckOutcome> {
        let _lock = self.read_lock("check")?;
        let store = self.store();
        let backend = store.backend();
        let mut outcome = CheckOutcome::default();
        let mut problems = Problems::default();

        for name in backend.list(FileKind::Key)? {
            if let Err(e) = store.key_info(&name) {
                problems.error(FileKind::Key.display_path(&name), e.to_string());
            }
        }

        // Snapshots first, then index files: a backup running beside check writes its index
        // files before its snapshot, so every snapshot listed now has its blobs listed below.
        let snapshot_names = backend.list(FileKind::Snapshot)?;

        // The index files are the durable index: check against them, not the local cache.
        let mut builder = ListedBlobsBuilder::default();
        for name in backend.list(FileKind::Index)? {
            outcome.index_files += 1;
            match store.read_index_file(&name) {
                Ok(file) => builder.add_file(name, file)?,
                Err(e) => problems.error(
                    FileKind::Index.display_path(&name),
                    format!("{e}. The packs it lists are found again by `respaldo repair index`"),
                ),
            }
        }
        let listed = builder.finish();
        let packs = listed.packs();
        outcome.packs = packs.len() as u64;
        let mut flags = vec![0u8; listed.copies().len()];
        // The index file a pack's listing comes from, for messages.
        let listed_by = |p: usize| {
            let file = packs[p].index_files.first();
            match file.and_then(|f| listed.index_files().get(*f as usize)) {
                Some(name) => FileKind::Index.display_path(name),
                None => "an index file".to_string(),
            }
        };

        let on_backend: HashSet<String> = backend.list(FileKind::Pack)?.into_iter().collect();
        let mut readable = Vec::new();
        for (p, pack) in packs.iter().enumerate() {
            let name = pack.id.to_hex();
            let object = FileKind::Pack.display_path(&name);
            let size = if on_backend.contains(&name) {
                Some(backend.size(FileKind::Pack, &name)?)
            } else {
                None
            };
            let problem = match size {
                None => Some(format!(
                    "missing, but {} lists it. {REPAIR_LOST}",
                    listed_by(p)
                )),
                Some(size) if size != pack.size => Some(format!(
                    "is {size} bytes, but {} lists it as {} bytes: it was truncated or replaced. \
                     {REPAIR_LOST}",
                    listed_by(p),
                    pack.size
                )),
                Some(_) => None,
            };
            match problem {
                Some(message) => {
                    problems.error(&object, message);
                    for i in listed.copies_in(p as u32) {
                        flags[i] |= BAD;
                    }
                }
                None => readable.push(p),
            }
        }
        for name in &on_backend {
            let listed_somewhere = name
                .parse::<ChunkId>()
                .is_ok_and(|id| listed.pack_position(&id).is_some());
            if !listed_somewhere {
                outcome.warnings.push(Problem {
                    object: FileKind::Pack.display_path(name),
                    message: "no index file lists this pack: an interrupted backup left it; \
                              `respaldo prune` removes it, `respaldo repair index` lists it"
                        .to_string(),
                    affected: Vec::new(),
                    more_affected: 0,
                });
            }
        }
        outcome.warnings.sort_by(|a, b| a.object.cmp(&b.object));

        let to_read: Vec<usize> = match options.read_data {
            ReadData::No => Vec::new(),
            ReadData::All => readable,
            ReadData::Subset(subset) => readable
                .into_iter()
                .filter(|p| subset.contains(&packs[*p].id))
                .collect(),
        };
        progress.add_total(
            to_read.len() as u64,
            to_read.iter().map(|p| packs[*p].size).sum(),
        );
        let reports: Vec<_> = to_read
            .par_iter()
            .map(|p| {
                let report = store.verify_pack(&packs[*p].id, &listed.entries_in(*p as u32));
                progress.bytes_done(packs[*p].size);
                (*p, report)
            })
            .collect();
        for (p, report) in reports {
            let object = FileKind::Pack.display_path(&packs[p].id.to_hex());
            let report = match report {
                Ok(report) => report,
                Err(e) => {
                    problems.error(&object, format!("cannot be read: {e}. {REPAIR_LOST}"));
                    for i in listed.copies_in(p as u32) {
                        flags[i] |= BAD;
                    }
                    continue;
                }
            };
            outcome.packs_read += 1;
            outcome.bytes_read += packs[p].size;
            let mut faults = Vec::new();
            if !report.name_matches {
                faults.push("its content does not match its name (some byte changed)".to_string());
            }
            if let Err(e) = &report.trailer {
                faults.push(format!("its trailer is damaged ({e})"));
            }
            if !report.trailer_mismatch.is_empty() {
                faults.push(format!(
                    "its trailer and the index disagree about {} blob(s)",
                    report.trailer_mismatch.len()
                ));
            }
            if let Some((_, first)) = report.damaged.first() {
                faults.push(format!(
                    "{} blob(s) do not match their id (first: {first})",
                    report.damaged.len()
                ));
            }
            for (entry, _) in &report.damaged {
                for i in listed.copies_of(&entry.id) {
                    if listed.copies()[i].pack as usize == p {
                        flags[i] |= BAD;
                    }
                }
            }
            if !faults.is_empty() {
                problems.error(&object, format!("{}. {REPAIR_DAMAGED}", faults.join("; ")));
            }
        }

        let mut walker = Walker {
            repo: self,
            listed: &listed,
            flags,
            unlisted_data: HashSet::new(),
            trees: 0,
            data_blobs: 0,
            problems: &mut problems,
        };
        for name in snapshot_names {
            let object = FileKind::Snapshot.display_path(&name);
            let loaded = match name.parse::<ChunkId>() {
                Err(_) => Err("the name is not a 64-digit hex id".to_string()),
                Ok(id) => match Snapshot::load(store, &id) {
                    Ok(snapshot) => Ok((id, snapshot)),
                    // Forgotten since it was listed (forget runs beside check).
                    Err(snapshot_index::Error::Store(e)) if e.is_not_found() => continue,
                    Err(e) => Err(e.to_string()),
                },
            };
            outcome.snapshots += 1;
            match loaded {
                Ok((id, snapshot)) => {
                    walker.tree(id, snapshot.tree, "");
                }
                Err(e) => walker.problems.error(
                    object,
                    format!(
                        "{e}; this snapshot cannot be restored: `respaldo repair snapshots \
                         --forget {name}` deletes it"
                    ),
                ),
            }
        }
        outcome.trees = walker.trees;
        outcome.data_blobs = walker.data_blobs;
        outcome.errors = problems.into_errors();
        Ok(outcome)
    }
}
