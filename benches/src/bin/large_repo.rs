//! A repository of N blobs, made without backing anything up, for measuring what `check`,
//! `prune` and the other whole-repository commands cost as the number of blobs grows.
//!
//! ```sh
//! cargo run --release -p respaldo-benches --bin large_repo -- 1000000 DIR
//! RESPALDO_PASSWORD=scale RESPALDO_REPOSITORY=DIR/repo RESPALDO_CACHE_DIR=DIR/cache \
//!     /usr/bin/time -v target/release/respaldo prune --dry-run
//! ```
//!
//! The repository (password `scale`, a fast key derivation) holds N data blobs of 32 bytes
//! each, every one distinct, in packs of up to 100,000 blobs as a backup of small chunks
//! writes them, and one snapshot whose files name the first four fifths of them: the last
//! fifth is unreachable, in packs of their own, so that a prune deletes those packs. Each file
//! names 10,000 blobs; each folder holds 10 files. DIR must not exist or be empty; it needs
//! about 200 bytes per blob.

use std::path::PathBuf;
use std::time::Instant;

use chunk_store::{BlobKind, ChunkId, KdfParams};
use respaldo::{InitOptions, Repository};
use snapshot_index::{Node, NodeKind, Snapshot, Summary, Tree};

/// Blobs each file names.
const BLOBS_PER_FILE: u64 = 10_000;
/// Files in each folder.
const FILES_PER_FOLDER: u64 = 10;

type Failure = Box<dyn std::error::Error>;

/// The content of blob number `n`: 32 bytes no other blob has.
fn content(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: large_repo BLOBS DIR";
    let blobs: u64 = args.next().ok_or(usage)?.parse()?;
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let options = InitOptions {
        password: Some("scale".into()),
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = Repository::init(&dir.join("repo"), &options, &dir.join("cache"))?;
    let store = repo.store();
    let start = Instant::now();

    let reachable = blobs / 5 * 4;
    let mut folders = Vec::new();
    let mut files = Vec::new();
    let mut file = Vec::with_capacity(BLOBS_PER_FILE as usize);
    for n in 0..blobs {
        let id = store.add_blob(BlobKind::Data, &content(n))?.id;
        if n >= reachable {
            continue;
        }
        file.push(id);
        if file.len() as u64 == BLOBS_PER_FILE || n + 1 == reachable {
            let mut node = Node::new(format!("f{:08}", files.len()), NodeKind::File);
            node.size = 32 * file.len() as u64;
            node.content = std::mem::take(&mut file);
            files.push(node);
        }
        if files.len() as u64 == FILES_PER_FOLDER || (n + 1 == reachable && !files.is_empty()) {
            let tree = Tree::new(std::mem::take(&mut files))?.save(store)?;
            let mut folder = Node::new(format!("d{:08}", folders.len()), NodeKind::Dir);
            folder.subtree = Some(tree);
            folders.push(folder);
        }
        if n % 1_000_000 == 999_999 {
            eprintln!("{} blobs in {:.1} s", n + 1, start.elapsed().as_secs_f64());
        }
    }
    let root: ChunkId = Tree::new(folders)?.save(store)?;
    store.flush()?;
    let snapshot = Snapshot {
        time_ns: 1_700_000_000_000_000_000,
        utc_offset_s: 0,
        hostname: "large-repo".into(),
        username: "bench".into(),
        tags: vec![],
        paths: vec!["/large".into()],
        tree: root,
        parent: None,
        program_version: "large_repo".into(),
        summary: Summary::default(),
    };
    let id = snapshot.save(store)?;
    println!(
        "{blobs} blobs ({reachable} reachable) and snapshot {id} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
