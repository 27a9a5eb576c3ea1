//! Nodes: one entry of a directory, with everything needed to restore it exactly.

use chunker::ChunkId;

use crate::error::{Error, Result};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeKind {
    /// A regular file; `content` lists its chunks.
    File,
    /// A directory; `subtree` is its tree.
    Dir,
    /// A symbolic link; `link_target` is its target.
    Symlink,
    /// A further name of a file already stored in this snapshot: `link_target` is the path
    /// (from the snapshot root, `/`-separated) of the first name; `content` repeats its chunks
    /// so that a partial restore without the first name still has the data.
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A character device; `rdev` is its device number.
    CharDevice,
    /// A block device; `rdev` is its device number.
    BlockDevice,
    /// A Unix socket (restored as nothing: a socket cannot be recreated meaningfully).
    Socket,
}

impl NodeKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            NodeKind::File => 0,
            NodeKind::Dir => 1,
            NodeKind::Symlink => 2,
            NodeKind::Hardlink => 3,
            NodeKind::Fifo => 4,
            NodeKind::CharDevice => 5,
            NodeKind::BlockDevice => 6,
            NodeKind::Socket => 7,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => NodeKind::File,
            1 => NodeKind::Dir,
            2 => NodeKind::Symlink,
            3 => NodeKind::Hardlink,
            4 => NodeKind::Fifo,
            5 => NodeKind::CharDevice,
            6 => NodeKind::BlockDevice,
            7 => NodeKind::Socket,
            _ => return None,
        })
    }

    /// A short lowercase name (`file`, `dir`, ...), for listings.
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Hardlink => "hardlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// Flag: the file changed while it was being read; its content may be inconsistent.
pub const FLAG_CHANGED_WHILE_READ: u32 = 1;
/// Flag: the file is a SQLite database captured consistently.
pub const FLAG_SQLITE: u32 = 2;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name, raw bytes (any name the file system allows round-trips).
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Owner's user name, when known.
    pub user: String,
    /// Owner's group name, when known.
    pub group: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i64,
    /// Device of the file system holding it (change detection, hard links).
    pub device: u64,
    /// Inode number (change detection, hard links).
    pub inode: u64,
    /// Number of hard links.
    pub links: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Content chunks in order (files and hard links).
    pub content: Vec<ChunkId>,
    /// Tree of a directory.
    pub subtree: Option<ChunkId>,
    /// Target of a symlink, or first path of a hard link.
    pub link_target: Vec<u8>,
    /// `FLAG_*` bits.
    pub flags: u32,
}

impl Node {
    /// A node of `kind` named `name` with every other field zero or empty.
    pub fn new(name: impl Into<Vec<u8>>, kind: NodeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            ctime_ns: 0,
            device: 0,
            inode: 0,
            links: 0,
            rdev: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            link_target: Vec::new(),
            flags: 0,
        }
    }

    /// The name, lossily as text (for display).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Whether a file can reuse `earlier`'s content unread: both hold file content (a file or
    /// a hard link: the same file may be either, depending on which name the walk meets
    /// first), and size, mtime, ctime, inode, device and mode are equal, and neither was
    /// changed while being read.
    pub fn unchanged_from(&self, earlier: &Node) -> bool {
        let holds_content = |n: &Node| matches!(n.kind, NodeKind::File | NodeKind::Hardlink);
        holds_content(self)
            && holds_content(earlier)
            && self.size == earlier.size
            && self.mtime_ns == earlier.mtime_ns
            && self.ctime_ns == earlier.ctime_ns
            && self.inode == earlier.inode
            && self.device == earlier.device
            && self.mode == earlier.mode
            && self.flags & FLAG_CHANGED_WHILE_READ == 0
            && earlier.flags & FLAG_CHANGED_WHILE_READ == 0
    }

    /// Whether everything but times, inode and device is equal (same content and same
    /// restorable metadata apart from times).
    pub fn same_content(&self, other: &Node) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.content == other.content
            && self.subtree == other.subtree
            && self.link_target == other.link_target
            && self.rdev == other.rdev
    }
}

/// Checks that a name can be restored without escaping its directory.
pub fn validate_name(name: &[u8], context: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == b"."
        || name == b".."
        || name.iter().any(|&b| b == b'/' || b == 0);
    if bad {
        return Err(Error::InvalidName {
            name: String::from_utf8_lossy(name).into_owned(),
            context: context.to_string(),
        });
    }
    Ok(())
}
