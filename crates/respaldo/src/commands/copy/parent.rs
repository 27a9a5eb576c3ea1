//! What an incremental `copy` already knows: the source snapshot whose copy the destination
//! holds ([`copied_parent`], [`is_copy_of`]), and the walk of both snapshots' trees side by
//! side ([`ParentWalk`]) that learns which destination ids the source's blobs and trees have,
//! so that only what changed is read from the source (see the module documentation of
//! `copy`).

use std::collections::{HashMap, HashSet};

use chunk_store::{BlobKind, BlobLocator, ChunkId, ChunkStore};
use snapshot_index::{Catalog, Node, Snapshot, SnapshotEntry, Tree};

/// The source snapshot whose copy in the destination `entry` can be copied against, and that
/// copy's id: `entry`'s parent if the destination has a copy of it, else the newest source
/// snapshot before `entry` with the same host and paths (as sets) that the destination has a
/// copy of. `copies` maps source snapshots to their copies.
pub(super) fn copied_parent<'a>(
    entry: &SnapshotEntry,
    catalog: &'a Catalog,
    copies: &HashMap<ChunkId, ChunkId>,
) -> Option<(&'a SnapshotEntry, ChunkId)> {
    let with_copy = |e: &'a SnapshotEntry| copies.get(&e.id).map(|copy| (e, *copy));
    if let Some(parent) = entry.snapshot.parent
        && let Some(found) = catalog
            .entries()
            .iter()
            .find(|e| e.id == parent)
            .and_then(with_copy)
    {
        return Some(found);
    }
    let sorted = |paths: &[String]| {
        let mut paths = paths.to_vec();
        paths.sort();
        paths.dedup();
        paths
    };
    let paths = sorted(&entry.snapshot.paths);
    let position = (entry.snapshot.time_ns, entry.id);
    catalog
        .entries()
        .iter()
        .rev()
        .filter(|e| (e.snapshot.time_ns, e.id) < position)
        .filter(|e| e.snapshot.hostname == entry.snapshot.hostname)
        .filter(|e| sorted(&e.snapshot.paths) == paths)
        .find_map(with_copy)
}

/// Whether the destination's snapshot `copy` carries exactly the manifest of the source's
/// `original` (every field but the tree and the parent, which a copy translates): what a copy
/// writes, and what an unrelated snapshot that merely has the same time, host, user, paths and
/// tags does not (its summary, with its duration, differs).
pub(super) fn is_copy_of(copy: &Snapshot, original: &Snapshot) -> bool {
    let translated = Snapshot {
        tree: original.tree,
        parent: original.parent,
        ..copy.clone()
    };
    translated == *original
}

/// Source data blob id -> destination id, and source tree id -> destination tree id.
pub(super) type Learned = (HashMap<ChunkId, ChunkId>, HashMap<ChunkId, ChunkId>);

/// Walks the source tree `source` beside the destination tree `target` (the roots of a
/// source snapshot and of its copy) and returns the source data blob and tree ids it learned
/// the destination ids of, beyond those already `known` (blobs, trees); `None` when the walk
/// found a contradiction (nothing it saw can be trusted) or an index cannot be read. Reads
/// trees and index entries only.
pub(super) fn learn(
    from: &ChunkStore,
    to: &ChunkStore,
    known: (&HashMap<ChunkId, ChunkId>, &HashMap<ChunkId, ChunkId>),
    source: ChunkId,
    target: ChunkId,
) -> Option<Learned> {
    let (Ok(from_index), Ok(to_index)) = (from.blob_locator(), to.blob_locator()) else {
        return None;
    };
    let mut walk = ParentWalk {
        from,
        to,
        from_index,
        to_index,
        known_blobs: known.0,
        known_trees: known.1,
        blobs: HashMap::new(),
        trees: HashMap::new(),
        mismatched: HashSet::new(),
        contradicted: false,
    };
    walk.trees_pair(source, target);
    // Some entry that looked identical is not: trust nothing this walk found.
    (!walk.contradicted).then_some((walk.blobs, walk.trees))
}

/// A walk of a source snapshot's trees beside those of its copy in the destination
/// ([`Copier::learn`]): the ids it has learned so far, kept apart from the run's memo until
/// the walk is over, so that a contradiction found late discards all of them.
struct ParentWalk<'a> {
    from: &'a ChunkStore,
    to: &'a ChunkStore,
    /// The source's index, for the length of a source blob.
    from_index: BlobLocator<'a>,
    /// The destination's index: a blob it does not list is not learned.
    to_index: BlobLocator<'a>,
    /// The run's memo: ids known before the walk (true translations or an earlier walk's).
    known_blobs: &'a HashMap<ChunkId, ChunkId>,
    known_trees: &'a HashMap<ChunkId, ChunkId>,
    /// Source data blob id -> destination id, learned by this walk.
    blobs: HashMap<ChunkId, ChunkId>,
    /// Source tree id -> destination tree id, learned (and verified) by this walk.
    trees: HashMap<ChunkId, ChunkId>,
    /// Pairs of trees walked that did not line up, so that a subtree repeated in the snapshot
    /// is not walked again.
    mismatched: HashSet<(ChunkId, ChunkId)>,
    /// An entry that looked identical paired a source blob with another destination id than
    /// the one known for it: the copy is not what it seems, and nothing is learned.
    contradicted: bool,
}

impl ParentWalk<'_> {
    fn known_blob(&self, source: &ChunkId) -> Option<ChunkId> {
        self.blobs
            .get(source)
            .or_else(|| self.known_blobs.get(source))
            .copied()
    }

    fn known_tree(&self, source: &ChunkId) -> Option<ChunkId> {
        self.trees
            .get(source)
            .or_else(|| self.known_trees.get(source))
            .copied()
    }

    /// Walks source tree `source` beside destination tree `target` (at the same path), learning
    /// what lines up below; returns whether the whole tree did, in which case `target` is
    /// learned as the translation of `source`.
    fn trees_pair(&mut self, source: ChunkId, target: ChunkId) -> bool {
        if self.contradicted {
            return false;
        }
        if let Some(known) = self.known_tree(&source) {
            // Its blobs are known too; a different id only means this copy differs here.
            return known == target;
        }
        if self.mismatched.contains(&(source, target)) {
            return false;
        }
        let lined_up = self.walk_trees(source, target);
        if !lined_up {
            self.mismatched.insert((source, target));
        }
        lined_up
    }

    fn walk_trees(&mut self, source: ChunkId, target: ChunkId) -> bool {
        let (Ok(ours), Ok(theirs)) = (Tree::load(self.from, &source), Tree::load(self.to, &target))
        else {
            // Damaged or missing on either side: learn nothing below.
            return false;
        };
        let (ours, theirs) = (ours.into_nodes(), theirs.nodes());
        let mut lined_up = ours.len() == theirs.len();
        // Both are sorted by name: pair entries of the same name.
        let (mut i, mut j) = (0, 0);
        while i < ours.len() && j < theirs.len() {
            match ours[i].name.cmp(&theirs[j].name) {
                std::cmp::Ordering::Less => {
                    lined_up = false;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    lined_up = false;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if !self.nodes_pair(&ours[i], &theirs[j]) {
                        lined_up = false;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        if !lined_up || self.contradicted {
            return false;
        }
        // Check: the source tree, rewritten with the learned ids, is the destination tree.
        let mut translated = ours;
        for node in &mut translated {
            for chunk in &mut node.content {
                match self.known_blob(chunk) {
                    Some(id) => *chunk = id,
                    None => return false,
                }
            }
            if let Some(subtree) = &mut node.subtree {
                match self.known_tree(subtree) {
                    Some(id) => *subtree = id,
                    None => return false,
                }
            }
        }
        let Ok(bytes) = Tree::new(translated).and_then(|tree| tree.to_bytes()) else {
            return false;
        };
        if self.to.blob_id(&bytes) != target {
            return false;
        }
        self.trees.insert(source, target);
        true
    }

    /// Pairs entry `ours` (source) with `theirs` (destination, same name): learns their chunks
    /// and walks their subtrees when they are the same entry apart from ids; returns whether
    /// everything in them lined up.
    fn nodes_pair(&mut self, ours: &Node, theirs: &Node) -> bool {
        if !same_but_ids(ours, theirs) || !self.chunks_pair(&ours.content, &theirs.content) {
            return false;
        }
        match (ours.subtree, theirs.subtree) {
            (Some(source), Some(target)) => self.trees_pair(source, target),
            (None, None) => true,
            _ => false,
        }
    }

    /// Pairs the chunk lists of two entries found identical apart from ids, position by
    /// position; learns them only if every pair is two data blobs of the same length, the
    /// destination's listed by its index, and none contradicts an id known already.
    fn chunks_pair(&mut self, ours: &[ChunkId], theirs: &[ChunkId]) -> bool {
        if ours.len() != theirs.len() {
            return false;
        }
        let mut learned = Vec::new();
        for (source, target) in ours.iter().zip(theirs) {
            if let Some(known) = self.known_blob(source) {
                if known != *target {
                    self.contradicted = true;
                    return false;
                }
                continue;
            }
            let (Ok(Some(a)), Ok(Some(b))) =
                (self.from_index.locate(source), self.to_index.locate(target))
            else {
                return false;
            };
            let data = |l: &chunk_store::BlobLocation| l.kind == BlobKind::Data;
            if !data(&a) || !data(&b) || a.raw_length != b.raw_length {
                return false;
            }
            learned.push((*source, *target));
        }
        for (source, target) in learned {
            match self.blobs.insert(source, target) {
                // The same source blob twice in these lists, at two different places.
                Some(earlier) if earlier != target => {
                    self.contradicted = true;
                    return false;
                }
                _ => {}
            }
        }
        true
    }
}

/// Whether `ours` and `theirs` are the same entry apart from the ids a copy translates: every
/// field equal but the chunk ids and the subtree id, as many chunks, and a subtree in both or
/// in neither. (Destructured whole, so that a field added to [`Node`] must be considered.)
fn same_but_ids(ours: &Node, theirs: &Node) -> bool {
    let Node {
        name,
        kind,
        mode,
        uid,
        gid,
        user,
        group,
        mtime_ns,
        ctime_ns,
        device,
        inode,
        links,
        rdev,
        size,
        content,
        subtree,
        link_target,
        flags,
    } = ours;
    *name == theirs.name
        && *kind == theirs.kind
        && *mode == theirs.mode
        && *uid == theirs.uid
        && *gid == theirs.gid
        && *user == theirs.user
        && *group == theirs.group
        && *mtime_ns == theirs.mtime_ns
        && *ctime_ns == theirs.ctime_ns
        && *device == theirs.device
        && *inode == theirs.inode
        && *links == theirs.links
        && *rdev == theirs.rdev
        && *size == theirs.size
        && content.len() == theirs.content.len()
        && subtree.is_some() == theirs.subtree.is_some()
        && *link_target == theirs.link_target
        && *flags == theirs.flags
}
