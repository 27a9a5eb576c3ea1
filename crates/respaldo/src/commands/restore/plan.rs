//! The plan of a restore: every node to create, where, in which phase. Built from the trees
//! before anything is written.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use chunk_store::ChunkStore;
use chunker::ChunkId;
use snapshot_index::{Node, NodeKind, Tree, validate_name};

use super::filter::PathFilter;
use crate::error::{Error, Result};

/// A node and where it goes.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Destination on disk: the restore's target, then the path in the snapshot.
    pub(crate) dest: PathBuf,
    /// Where, in `dest`, the path in the snapshot (`/a/b/c`) starts: it is not stored twice,
    /// since a restore holds an entry for every file it writes.
    path_start: usize,
    /// The node.
    pub(crate) node: Node,
    /// Whether the node itself was selected (a folder above an included node is created but
    /// keeps its metadata).
    pub(crate) selected: bool,
}

impl Entry {
    /// The path in the snapshot (`/a/b/c`).
    pub(crate) fn path(&self) -> &[u8] {
        &self.dest.as_os_str().as_bytes()[self.path_start..]
    }

    /// The snapshot path as text.
    pub(crate) fn path_lossy(&self) -> String {
        String::from_utf8_lossy(self.path()).into_owned()
    }
}

/// A hard link to create: `dest` becomes another name of the restored file `source`.
#[derive(Debug)]
pub(crate) struct LinkEntry {
    pub(crate) entry: Entry,
    pub(crate) source: PathBuf,
}

/// Everything a restore creates, by phase.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Directories in walk order (parents first).
    pub(crate) dirs: Vec<Entry>,
    /// Regular files (and hard links whose first name is not restored).
    pub(crate) files: Vec<Entry>,
    /// Hard links to restored files.
    pub(crate) hardlinks: Vec<LinkEntry>,
    /// Fifos and devices.
    pub(crate) specials: Vec<Entry>,
    /// Symbolic links (created last).
    pub(crate) symlinks: Vec<Entry>,
    /// Hard links waiting for resolution.
    pending_links: Vec<Entry>,
}

impl Plan {
    fn len(&self) -> usize {
        self.dirs.len()
            + self.files.len()
            + self.specials.len()
            + self.symlinks.len()
            + self.pending_links.len()
    }
}

/// A hard link target or snapshot path without its leading `/`.
fn link_key(path: &[u8]) -> Vec<u8> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(&b'/')
}

struct Walker<'a> {
    store: &'a ChunkStore,
    filter: &'a PathFilter,
    target: &'a Path,
    plan: Plan,
}

impl Walker<'_> {
    fn walk(
        &mut self,
        tree_id: &ChunkId,
        path: &[u8],
        dest: &Path,
        parent_selected: bool,
    ) -> Result<()> {
        let tree = Tree::load(self.store, tree_id)?;
        for node in tree.nodes() {
            let mut child_path = path.to_vec();
            child_path.push(b'/');
            child_path.extend_from_slice(&node.name);
            let unsafe_path = |reason: String| Error::UnsafePath {
                path: String::from_utf8_lossy(&child_path).into_owned(),
                reason,
            };
            validate_name(&node.name, &format!("tree {tree_id}"))
                .map_err(|e| unsafe_path(e.to_string()))?;
            let child_dest = dest.join(OsStr::from_bytes(&node.name));
            if !child_dest.starts_with(self.target) || child_dest.parent() != Some(dest) {
                return Err(unsafe_path(format!(
                    "it would be written to {}",
                    child_dest.display()
                )));
            }
            // `child_dest` ends with `/` and the name (a checked name has no `/`), and every
            // folder's `dest` ends with its snapshot path: so does `child_dest`.
            let dest_bytes = child_dest.as_os_str().as_bytes();
            let Some(path_start) = dest_bytes
                .len()
                .checked_sub(child_path.len())
                .filter(|&start| dest_bytes[start..] == child_path[..])
            else {
                return Err(unsafe_path(format!(
                    "its destination {} does not end with it",
                    child_dest.display()
                )));
            };
            if self.filter.excluded(&child_path) {
                continue;
            }
            let selected = parent_selected || self.filter.included(&child_path);
            let entry = Entry {
                dest: child_dest,
                path_start,
                node: node.clone(),
                selected,
            };
            match node.kind {
                NodeKind::Dir => {
                    if !selected && !self.filter.may_contain_included(&child_path) {
                        continue;
                    }
                    let subtree =
                        node.subtree
                            .ok_or_else(|| snapshot_index::Error::MissingSubtree {
                                tree: *tree_id,
                                name: node.name_lossy(),
                            })?;
                    let child_dest = entry.dest.clone();
                    let before = self.plan.len();
                    self.plan.dirs.push(entry);
                    self.walk(&subtree, &child_path, &child_dest, selected)?;
                    if !selected && self.plan.len() == before + 1 {
                        // Nothing below was selected: do not create the folder.
                        self.plan.dirs.pop();
                    }
                }
                _ if !selected => {}
                NodeKind::File => self.plan.files.push(entry),
                NodeKind::Hardlink => self.plan.pending_links.push(entry),
                NodeKind::Symlink => self.plan.symlinks.push(entry),
                NodeKind::Socket => {}
                // Fifos, devices, and any kind added later that needs no content.
                _ => self.plan.specials.push(entry),
            }
        }
        Ok(())
    }
}

/// Builds the plan of restoring tree `root` into `target`.
pub(crate) fn build(
    store: &ChunkStore,
    root: &ChunkId,
    target: &Path,
    filter: &PathFilter,
) -> Result<Plan> {
    let mut walker = Walker {
        store,
        filter,
        target,
        plan: Plan::default(),
    };
    walker.walk(root, b"", target, false)?;
    let mut plan = walker.plan;
    if plan.pending_links.is_empty() {
        return Ok(plan);
    }

    // Hard links: link to the first name when it is restored; otherwise the first hard link
    // of the group is written as a file and the others link to it.
    let mut restored: HashMap<Vec<u8>, PathBuf> = plan
        .files
        .iter()
        .map(|f| (link_key(f.path()), f.dest.clone()))
        .collect();
    for entry in std::mem::take(&mut plan.pending_links) {
        let key = link_key(&entry.node.link_target);
        match restored.get(&key) {
            Some(source) if !key.is_empty() => {
                let source = source.clone();
                plan.hardlinks.push(LinkEntry { entry, source });
            }
            _ => {
                if !key.is_empty() {
                    restored.insert(key, entry.dest.clone());
                }
                plan.files.push(entry);
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::link_key;

    #[test]
    fn link_keys_ignore_leading_and_double_slashes() {
        assert_eq!(link_key(b"/a/b"), b"a/b");
        assert_eq!(link_key(b"a//b/"), b"a/b");
        assert_eq!(link_key(b""), b"");
    }
}
