//! Stores a file in a local repository and restores it, verified, next to it.
//!
//! ```text
//! cargo run --release -p respaldo-chunk-store --example roundtrip -- FILE REPO_DIR
//! ```
//! The repository is created on first use (encrypted with `RESPALDO_PASSWORD` when it is set,
//! unencrypted otherwise). The file is cut into content-defined chunks, each chunk is stored
//! once, and the file is rebuilt from the repository as `FILE.restored`, then compared.
//! Storing the same file twice adds nothing: the second run reports 0 new bytes.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chunk_store::{BlobKind, ChunkId, ChunkStore, Error, InitOptions, LocalBackend};
use chunker::CutPoints;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(file), Some(repo)) = (args.next(), args.next()) else {
        eprintln!("usage: roundtrip FILE REPO_DIR");
        std::process::exit(2);
    };
    let (file, repo) = (PathBuf::from(file), PathBuf::from(repo));
    let password = std::env::var("RESPALDO_PASSWORD").ok();
    let backend = Arc::new(LocalBackend::new(&repo));
    let index = repo.join("cache").join("index.redb");
    let store = match ChunkStore::open(backend.clone(), password.as_deref(), &index) {
        Ok(store) => store,
        Err(Error::NoRepository { .. }) => {
            let options = InitOptions {
                password: password.clone(),
                ..InitOptions::default()
            };
            println!("created repository {}", repo.display());
            ChunkStore::init(backend, &options, &index)?
        }
        Err(e) => return Err(e.into()),
    };

    let (ids, new_bytes) = store_file(&store, &file)?;
    println!(
        "stored {} in {} chunks, {} new bytes in the repository",
        file.display(),
        ids.len(),
        new_bytes
    );

    let mut restored = file.clone().into_os_string();
    restored.push(".restored");
    let restored = PathBuf::from(restored);
    let mut out = BufWriter::new(File::create(&restored)?);
    for id in &ids {
        out.write_all(&store.get_blob(id)?)?;
    }
    out.flush()?;
    if std::fs::read(&file)? != std::fs::read(&restored)? {
        return Err(format!("{} differs from {}", restored.display(), file.display()).into());
    }
    println!(
        "restored {} and verified it byte for byte",
        restored.display()
    );
    Ok(())
}

fn store_file(
    store: &ChunkStore,
    path: &Path,
) -> Result<(Vec<ChunkId>, u64), Box<dyn std::error::Error>> {
    let reader: Box<dyn Read> = Box::new(File::open(path)?);
    let mut ids = Vec::new();
    let mut new_bytes = 0;
    store
        .chunker()
        .chunk_reader(reader, |chunk| -> Result<(), Box<dyn std::error::Error>> {
            let added = store.add_blob(BlobKind::Data, chunk)?;
            new_bytes += added.stored_bytes;
            ids.push(added.id);
            Ok(())
        })?;
    store.flush()?;
    Ok((ids, new_bytes))
}
