//! What a repository's trees cost in stored bytes, and what they would cost encoded otherwise.
//!
//! ```sh
//! cargo build --release -p respaldo-benches --bin tree_bytes
//! RESPALDO_PASSWORD=... target/release/tree_bytes REPO CACHE
//! ```
//!
//! Walks every snapshot's trees (each distinct tree once) and prints the number of trees, their
//! decoded bytes and their stored bytes (compressed and sealed as the repository stores them)
//! for the current encoding and for candidate encodings.

use std::collections::HashSet;
use std::path::PathBuf;

use chunk_store::{BlobKind, ChunkId, ChunkStore};
use respaldo::Repository;
use snapshot_index::{Node, Snapshot, Tree};

type Failure = Box<dyn std::error::Error>;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Row-wise, every integer a varint.
fn rows_varint(nodes: &[Node]) -> Vec<u8> {
    let mut out = b"RSPLTREE\x02\x00".to_vec();
    varint(&mut out, nodes.len() as u64);
    for n in nodes {
        bytes(&mut out, &n.name);
        out.push(n.kind as u8);
        varint(&mut out, n.mode.into());
        varint(&mut out, n.uid.into());
        varint(&mut out, n.gid.into());
        bytes(&mut out, n.user.as_bytes());
        bytes(&mut out, n.group.as_bytes());
        varint(&mut out, zigzag(n.mtime_ns));
        varint(&mut out, zigzag(n.ctime_ns));
        varint(&mut out, n.device);
        varint(&mut out, n.inode);
        varint(&mut out, n.links);
        varint(&mut out, n.rdev);
        varint(&mut out, n.size);
        varint(&mut out, n.content.len() as u64);
        for c in &n.content {
            out.extend_from_slice(c.as_bytes());
        }
        match &n.subtree {
            Some(s) => {
                out.push(1);
                out.extend_from_slice(s.as_bytes());
            }
            None => out.push(0),
        }
        bytes(&mut out, &n.link_target);
        varint(&mut out, n.flags.into());
    }
    out
}

/// Column-wise: each field of every node together, ids last; times as deltas from the
/// previous node's; user and group names once per tree when all nodes share them.
fn columns(nodes: &[Node]) -> Vec<u8> {
    let mut out = b"RSPLTREE\x02\x00".to_vec();
    varint(&mut out, nodes.len() as u64);
    for n in nodes {
        bytes(&mut out, &n.name);
    }
    for n in nodes {
        out.push(n.kind as u8);
    }
    for n in nodes {
        varint(&mut out, n.mode.into());
    }
    for n in nodes {
        varint(&mut out, n.uid.into());
    }
    for n in nodes {
        varint(&mut out, n.gid.into());
    }
    for n in nodes {
        bytes(&mut out, n.user.as_bytes());
    }
    for n in nodes {
        bytes(&mut out, n.group.as_bytes());
    }
    let mut prev = 0i64;
    for n in nodes {
        varint(&mut out, zigzag(n.mtime_ns.wrapping_sub(prev)));
        prev = n.mtime_ns;
    }
    for n in nodes {
        varint(&mut out, zigzag(n.ctime_ns.wrapping_sub(n.mtime_ns)));
    }
    for n in nodes {
        varint(&mut out, n.device);
    }
    let mut prev = 0i64;
    for n in nodes {
        varint(&mut out, zigzag((n.inode as i64).wrapping_sub(prev)));
        prev = n.inode as i64;
    }
    for n in nodes {
        varint(&mut out, n.links);
    }
    for n in nodes {
        varint(&mut out, n.rdev);
    }
    for n in nodes {
        varint(&mut out, n.size);
    }
    for n in nodes {
        bytes(&mut out, &n.link_target);
    }
    for n in nodes {
        varint(&mut out, n.flags.into());
    }
    for n in nodes {
        varint(&mut out, n.content.len() as u64);
    }
    for n in nodes {
        for c in &n.content {
            out.extend_from_slice(c.as_bytes());
        }
        if let Some(s) = &n.subtree {
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn stored(store: &ChunkStore, data: &[u8]) -> Result<usize, Failure> {
    let id = store.blob_id(data);
    let mut out = Vec::new();
    store.encode_blob(BlobKind::Tree, &id, data, &mut out)?;
    Ok(out.len())
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tree_bytes REPO CACHE (password in RESPALDO_PASSWORD)";
    let repo_dir = PathBuf::from(args.next().ok_or(usage)?);
    let cache = PathBuf::from(args.next().ok_or(usage)?);
    let password = std::env::var("RESPALDO_PASSWORD").ok();
    let repo = Repository::open(&repo_dir, password.as_deref(), &cache)?;
    let store = repo.store();

    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut snapshots = Vec::new();
    for id in Snapshot::list_ids(store)? {
        snapshots.push(Snapshot::load(store, &id)?);
    }
    snapshots.sort_by_key(|s| s.time_ns);
    // Upper bound of grouping: each snapshot's new trees as one zstd frame.
    let mut grouped = 0usize;
    for snapshot in &snapshots {
        let mut group = Vec::new();
        let mut pending = vec![snapshot.tree];
        while let Some(id) = pending.pop() {
            if !seen.insert(id) {
                continue;
            }
            let tree = Tree::load(store, &id)?;
            group.extend_from_slice(&columns(tree.nodes()));
            pending.extend(tree.nodes().iter().filter_map(|n| n.subtree));
        }
        grouped += zstd::bulk::compress(&group, 3)?.len();
    }
    println!("new trees of each snapshot as one frame (columns): {grouped}");
    seen.clear();
    let mut pending: Vec<ChunkId> = snapshots.iter().map(|s| s.tree).collect();
    let names = ["v1 (bincode, fixed)", "rows, varints", "columns, varints"];
    let mut raw = [0usize; 3];
    let mut kept = [0usize; 3];
    let mut nodes_total = 0usize;
    let mut ids_total = 0usize;
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = Tree::load(store, &id)?;
        let nodes = tree.nodes();
        nodes_total += nodes.len();
        for n in nodes {
            ids_total += n.content.len() + usize::from(n.subtree.is_some());
            if let Some(s) = n.subtree {
                pending.push(s);
            }
        }
        let encodings = [tree.to_bytes()?, rows_varint(nodes), columns(nodes)];
        for (i, e) in encodings.iter().enumerate() {
            raw[i] += e.len();
            kept[i] += stored(store, e)?;
        }
    }
    println!(
        "{} trees, {} nodes, {} ids ({} bytes of ids)",
        seen.len(),
        nodes_total,
        ids_total,
        ids_total * 32
    );
    for i in 0..3 {
        println!(
            "{:24} encoded {:>10} stored {:>10}",
            names[i], raw[i], kept[i]
        );
    }
    Ok(())
}
