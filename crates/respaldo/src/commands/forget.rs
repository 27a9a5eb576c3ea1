//! `forget`: remove snapshots, by a retention policy or by id.
//!
//! Forget deletes snapshot manifests only, never packs: the data of a forgotten snapshot stays
//! in the repository (and readable) until `prune` removes what no remaining snapshot needs.
//! Deleting a manifest never invalidates data another process reads, so forget takes a
//! shared lock (prune, which deletes data, takes an exclusive one).
//!
//! With a policy, the snapshots that pass the filter are split into groups
//! ([`GroupBy`], host and paths by default) and the policy is applied to each group on its
//! own ([`snapshot_index::apply_policy`]): the rules are restic's. With explicit ids, exactly
//! those snapshots are removed. Manifests are deleted oldest first.

use std::collections::{HashMap, HashSet};

use chunk_store::FileKind;
use chunker::ChunkId;
use jiff::tz::TimeZone;
use snapshot_index::{
    Catalog, Decision, GroupBy, GroupKey, RetentionPolicy, SnapshotEntry, SnapshotFilter,
    apply_policy, group_snapshots,
};

use crate::error::{Error, Result};
use crate::events::Operation;
use crate::lock::LockKind;
use crate::repository::Repository;

/// What `forget` removes.
///
/// Give either a [`policy`](Self::policy) or [`snapshots`](Self::snapshots), not both: with
/// neither, or both, [`Repository::forget`] refuses with [`Error::InvalidArgument`].
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// Which snapshots of each group to keep; every other snapshot of the group is removed.
    pub policy: RetentionPolicy,
    /// How snapshots are grouped before the policy is applied to each group.
    pub group_by: GroupBy,
    /// Only snapshots passing this filter are considered (by the policy, and when resolving
    /// [`snapshots`](Self::snapshots)); the others are neither kept nor removed.
    pub filter: SnapshotFilter,
    /// Snapshots to remove, named by full id, unique id prefix or `latest` (restic's
    /// `forget ID...`), instead of a policy.
    pub snapshots: Vec<String>,
    /// Only report what would be removed: no lock is taken and nothing is deleted.
    pub dry_run: bool,
    /// The time zone whose civil hours, days, weeks, months and years the policy's calendar
    /// rules count (the CLI passes the system's).
    pub time_zone: TimeZone,
}

impl Default for ForgetOptions {
    /// No policy, no ids (refused as such), default grouping (host and paths), no filter,
    /// not a dry run, the system time zone.
    fn default() -> Self {
        Self {
            policy: RetentionPolicy::default(),
            group_by: GroupBy::default(),
            filter: SnapshotFilter::default(),
            snapshots: Vec::new(),
            dry_run: false,
            time_zone: TimeZone::system(),
        }
    }
}

/// One group of snapshots and what became of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetGroup {
    /// What the snapshots of the group share.
    pub key: GroupKey,
    /// Every snapshot of the group with its decision, newest first. With explicit ids, only
    /// the named snapshots, each removed (with no reasons).
    pub decisions: Vec<(SnapshotEntry, Decision)>,
}

impl ForgetGroup {
    /// The snapshots kept, newest first, with their decisions (which list the reasons).
    pub fn kept(&self) -> impl DoubleEndedIterator<Item = &(SnapshotEntry, Decision)> {
        self.decisions.iter().filter(|(_, d)| d.keep)
    }

    /// The snapshots removed (or, in a dry run, to be removed), newest first.
    pub fn removed(&self) -> impl DoubleEndedIterator<Item = &(SnapshotEntry, Decision)> {
        self.decisions.iter().filter(|(_, d)| !d.keep)
    }
}

/// What `forget` did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetOutcome {
    /// The groups, sorted by key; groups with nothing removed are included.
    pub groups: Vec<ForgetGroup>,
    /// The snapshots removed (in a dry run: that would be), oldest first, the order in which
    /// their manifests are deleted.
    pub removed: Vec<ChunkId>,
    /// Whether this was a dry run (nothing was deleted).
    pub dry_run: bool,
}

/// The decisions of every group under `options`, among the entries of `catalog` that pass
/// the filter.
fn plan(catalog: &Catalog, options: &ForgetOptions) -> Result<Vec<ForgetGroup>> {
    if options.snapshots.is_empty() {
        let considered = catalog.filtered(&options.filter);
        return Ok(group_snapshots(considered, options.group_by)
            .into_iter()
            .map(|(key, entries)| {
                // `apply_policy` answers newest first; pair each decision with its entry.
                let by_id: HashMap<ChunkId, &SnapshotEntry> =
                    entries.iter().map(|e| (e.id, *e)).collect();
                let decisions = apply_policy(&options.policy, &entries, &options.time_zone)
                    .into_iter()
                    .filter_map(|d| Some(((*by_id.get(&d.id)?).clone(), d)))
                    .collect();
                ForgetGroup { key, decisions }
            })
            .collect());
    }

    // Explicit ids are resolved among the snapshots that pass the filter.
    let considered = Catalog::from_entries(catalog.filtered(&options.filter).cloned().collect());
    let mut seen = HashSet::new();
    let mut named = Vec::new();
    for spec in &options.snapshots {
        let entry = considered.resolve(spec, &SnapshotFilter::default())?;
        if seen.insert(entry.id) {
            named.push(entry);
        }
    }
    Ok(group_snapshots(named, options.group_by)
        .into_iter()
        .map(|(key, mut entries)| {
            entries.sort_by_key(|e| std::cmp::Reverse((e.snapshot.time_ns, e.id)));
            let decisions = entries
                .into_iter()
                .map(|e| {
                    let decision = Decision {
                        id: e.id,
                        keep: false,
                        reasons: Vec::new(),
                    };
                    (e.clone(), decision)
                })
                .collect();
            ForgetGroup { key, decisions }
        })
        .collect())
}

impl Repository {
    /// Removes snapshots by a retention policy or by id (see the module documentation), and
    /// reports, per group, every snapshot considered with the rules that keep it.
    ///
    /// Deletes snapshot manifests only, oldest first, under a shared lock (none in a dry run).
    /// No pack is deleted: the data stays until `prune`.
    ///
    /// Errors: [`Error::InvalidArgument`] when neither a policy nor ids are given (nothing
    /// would be removed) or when both are; a named snapshot that does not exist (or does not
    /// pass the filter) or a prefix that is ambiguous; [`Error::Locked`]; a manifest that
    /// cannot be read; and [`Error::ForgetIncomplete`] when a deletion fails, naming the
    /// manifest and the snapshots already removed before it.
    pub fn forget(&self, options: &ForgetOptions) -> Result<ForgetOutcome> {
        self.observed(Operation::Forget, None, || self.forget_snapshots(options))
    }

    fn forget_snapshots(&self, options: &ForgetOptions) -> Result<ForgetOutcome> {
        let has_policy = !options.policy.is_empty();
        let has_ids = !options.snapshots.is_empty();
        if !has_policy && !has_ids {
            return Err(Error::invalid(
                "no policy was specified, no snapshots will be removed: give at least one \
                 --keep-* rule (e.g. --keep-last 10) or the ids of the snapshots to forget",
            ));
        }
        if has_policy && has_ids {
            return Err(Error::invalid(
                "give either a policy (--keep-* rules) or the ids of the snapshots to forget, \
                 not both",
            ));
        }

        let lock = if options.dry_run {
            None
        } else {
            Some(self.lock(LockKind::Shared, "forget")?)
        };
        // Verified manifests, not the kept catalog: which snapshots go follows from them.
        let catalog = Catalog::load_verified(self.store())?;
        let groups = plan(&catalog, options)?;

        let mut doomed: Vec<&SnapshotEntry> = groups
            .iter()
            .flat_map(|g| g.removed().map(|(e, _)| e))
            .collect();
        doomed.sort_by_key(|e| (e.snapshot.time_ns, e.id));
        let doomed: Vec<ChunkId> = doomed.into_iter().map(|e| e.id).collect();

        let mut outcome = ForgetOutcome {
            groups: Vec::new(),
            removed: Vec::with_capacity(doomed.len()),
            dry_run: options.dry_run,
        };
        if let Some(lock) = &lock {
            if !doomed.is_empty() {
                lock.ensure_held()?;
            }
            let backend = self.store().backend();
            for (done, id) in doomed.iter().enumerate() {
                let name = id.to_hex();
                if let Err(e) = backend.delete(FileKind::Snapshot, &name) {
                    return Err(Error::ForgetIncomplete {
                        file: FileKind::Snapshot.display_path(&name),
                        reason: e.to_string(),
                        removed: outcome.removed,
                        remaining: doomed.len() - done,
                    });
                }
                outcome.removed.push(*id);
            }
        } else {
            outcome.removed = doomed;
        }
        outcome.groups = groups;
        Ok(outcome)
    }
}

/// The second half of [`Error::ForgetIncomplete`]'s message: what was already removed, what
/// is left, and what to do.
pub(crate) fn incomplete_hint(removed: &[ChunkId], remaining: usize) -> String {
    const LISTED: usize = 20;
    let done = if removed.is_empty() {
        "No snapshot was removed".to_string()
    } else {
        let mut ids: Vec<String> = removed
            .iter()
            .take(LISTED)
            .map(|id| id.to_hex()[..8].to_string())
            .collect();
        if removed.len() > LISTED {
            ids.push(format!("and {} more", removed.len() - LISTED));
        }
        format!(
            "forget had already removed {} snapshot{} ({})",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            ids.join(", ")
        )
    };
    format!(
        "{done}; {remaining} snapshot{} it meant to remove {} still there. Fix the cause and \
         run forget again to remove the rest (with ids, name only those still listed by \
         `respaldo snapshots`)",
        if remaining == 1 { "" } else { "s" },
        if remaining == 1 { "is" } else { "are" },
    )
}
