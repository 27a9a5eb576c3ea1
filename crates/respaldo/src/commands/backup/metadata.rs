//! Nodes from file system metadata.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use snapshot_index::{Node, NodeKind};

use crate::error::{Error, Result};

/// Caches user and group names: a lookup per file would cost a passwd read each time.
#[derive(Debug, Default)]
pub(crate) struct OwnerNames {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl OwnerNames {
    fn user(&self, uid: u32) -> String {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group(&self, gid: u32) -> String {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

fn nanos(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

/// The node for `path`, whose `symlink_metadata` is `meta`. Content and subtree are left empty.
pub(crate) fn node_from_metadata(
    path: &Path,
    name: &[u8],
    meta: &Metadata,
    owners: &OwnerNames,
) -> Result<Node> {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        NodeKind::Dir
    } else if file_type.is_file() {
        NodeKind::File
    } else if file_type.is_symlink() {
        NodeKind::Symlink
    } else if file_type.is_fifo() {
        NodeKind::Fifo
    } else if file_type.is_char_device() {
        NodeKind::CharDevice
    } else if file_type.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::Socket
    };
    let mut node = Node::new(name.to_vec(), kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.user = owners.user(node.uid);
    node.group = owners.group(node.gid);
    node.mtime_ns = nanos(meta.mtime(), meta.mtime_nsec());
    node.ctime_ns = nanos(meta.ctime(), meta.ctime_nsec());
    node.device = meta.dev();
    node.inode = meta.ino();
    node.links = meta.nlink();
    node.rdev = if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        meta.rdev()
    } else {
        0
    };
    node.size = if kind == NodeKind::File {
        meta.len()
    } else {
        0
    };
    if kind == NodeKind::Symlink {
        let target = std::fs::read_link(path).map_err(Error::io("read symlink", path))?;
        node.link_target = target.as_os_str().as_bytes().to_vec();
    }
    Ok(node)
}
