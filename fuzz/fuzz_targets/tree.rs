//! Tree blob decoding in `snapshot-index` (format.md section 10.1): magic, version, bincode
//! `Vec<NodeRecord>`, and the rules a restore relies on (valid names, strictly ascending,
//! known kinds, a subtree exactly for directories).
//!
//! The first byte picks how the rest is used (modulo 2):
//! - 0: the rest is the tree blob, as is;
//! - 1: a tree written here in the format's layout from nodes drawn from the rest: mostly
//!   valid, sometimes breaking one rule (a bad or repeated name, disorder, an unknown kind, a
//!   misplaced subtree, invalid UTF-8 in an owner name, trailing bytes).
//!
//! A built tree must decode exactly when it follows every rule, to the nodes written. Whatever
//! decodes must re-encode to the same bytes and be accepted by `Tree::new`.
#![no_main]

use std::sync::Once;

use arbitrary::Unstructured;
use chunker::ChunkId;
use libfuzzer_sys::fuzz_target;
use respaldo_fuzz::{Bin, Draw, TREE_MAGIC, draw_version, header, trace};
use snapshot_index::{Node, NodeKind, Tree};

const KINDS: [NodeKind; 8] = [
    NodeKind::File,
    NodeKind::Dir,
    NodeKind::Symlink,
    NodeKind::Hardlink,
    NodeKind::Fifo,
    NodeKind::CharDevice,
    NodeKind::BlockDevice,
    NodeKind::Socket,
];

fuzz_target!(|data: &[u8]| {
    static HARNESS: Once = Once::new();
    HARNESS.call_once(|| {
        // An empty input draws the empty tree: proves the harness matches the format.
        built(&mut Unstructured::new(&[]));
    });
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        check_decoded(rest, Tree::from_bytes(rest, "fuzz input"));
    } else {
        built(&mut Unstructured::new(rest));
    }
});

fn check_decoded(bytes: &[u8], result: snapshot_index::Result<Tree>) {
    trace("tree", &result);
    let Ok(tree) = result else { return };
    assert_eq!(
        tree.to_bytes().expect("re-encode"),
        bytes,
        "a decoded tree re-encodes to other bytes"
    );
    let again = Tree::new(tree.nodes().to_vec()).expect("Tree::new refuses a decoded tree");
    assert_eq!(again, tree);
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

fn draw_name(u: &mut Unstructured<'_>) -> Vec<u8> {
    let mut name = u.bytes_up_to(12);
    if u.chance(7, 8) {
        // make it valid
        for b in &mut name {
            if *b == b'/' || *b == 0 {
                *b = b'_';
            }
        }
        if !valid_name(&name) {
            name.push(b'x');
        }
    }
    name
}

fn built(u: &mut Unstructured<'_>) {
    let version = draw_version(u);
    let mut valid = version == 1;
    let count = u.below(12) as usize;
    let mut names: Vec<Vec<u8>> = (0..count).map(|_| draw_name(u)).collect();
    if !u.chance(1, 8) {
        names.sort();
        names.dedup();
    }
    valid &= names.iter().all(|n| valid_name(n));
    valid &= names.windows(2).all(|w| w[0] < w[1]);

    let mut body = Bin::default();
    body.u64(names.len() as u64);
    let mut expected = Vec::new();
    for name in names {
        let kind_byte = {
            let valid = u.below(8) as u8;
            u.mostly(valid)
        };
        let kind = KINDS.get(usize::from(kind_byte)).copied();
        valid &= kind.is_some();
        let mut node = Node::new(name, kind.unwrap_or(NodeKind::File));
        node.mode = u.any();
        node.uid = u.any();
        node.gid = u.any();
        let mut owner_names = [Vec::new(), Vec::new()];
        for owner in &mut owner_names {
            *owner = if u.chance(1, 16) {
                u.bytes_up_to(16)
            } else {
                u.any::<String>().into_bytes()
            };
            valid &= std::str::from_utf8(owner).is_ok();
        }
        node.user = String::from_utf8_lossy(&owner_names[0]).into_owned();
        node.group = String::from_utf8_lossy(&owner_names[1]).into_owned();
        node.mtime_ns = u.any();
        node.ctime_ns = u.any();
        node.device = u.any();
        node.inode = u.any();
        node.links = u.any();
        node.rdev = u.any();
        node.size = u.any();
        node.content = (0..u.below(4))
            .map(|_| ChunkId::from_bytes(u.any()))
            .collect();
        let has_subtree = u.mostly(kind == Some(NodeKind::Dir));
        valid &= has_subtree == (kind == Some(NodeKind::Dir));
        node.subtree = has_subtree.then(|| ChunkId::from_bytes(u.any()));
        node.link_target = u.bytes_up_to(32);
        node.flags = u.any();

        body.bytes(&node.name)
            .u8(kind_byte)
            .u32(node.mode)
            .u32(node.uid)
            .u32(node.gid)
            .bytes(&owner_names[0])
            .bytes(&owner_names[1])
            .i64(node.mtime_ns)
            .i64(node.ctime_ns)
            .u64(node.device)
            .u64(node.inode)
            .u64(node.links)
            .u64(node.rdev)
            .u64(node.size)
            .u64(node.content.len() as u64);
        for id in &node.content {
            body.raw(id.as_bytes());
        }
        body.opt_id(node.subtree.map(|s| *s.as_bytes()))
            .bytes(&node.link_target)
            .u32(node.flags);
        expected.push(node);
    }
    if u.chance(1, 16) {
        valid = false;
        body.0.push(u.any());
    }
    let mut bytes = header(TREE_MAGIC, version);
    bytes.extend_from_slice(&body.0);

    let result = Tree::from_bytes(&bytes, "fuzz input");
    match &result {
        Ok(tree) => {
            assert!(valid, "a tree breaking a rule was accepted: {tree:?}");
            assert_eq!(
                tree.nodes(),
                expected.as_slice(),
                "a valid tree was read wrong"
            );
        }
        Err(e) => assert!(!valid, "a valid tree was refused: {e}"),
    }
    check_decoded(&bytes, result);
}
