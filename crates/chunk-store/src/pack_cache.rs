//! A local copy of whole tree packs, for repositories on remote stores.
//!
//! Trees are small and read one at a time (a backup reads every folder of its parent
//! snapshot, a restore or `ls` every folder of the snapshot): on an object store that is one
//! request per folder, each paying the store's latency. Trees and data never share a pack, so
//! fetching a tree pack whole, once, and reading later trees from the local copy turns
//! thousands of requests into a few.
//!
//! The copy is a cache in every sense: pack names are the hash of their content, so a copy is
//! never stale, only perhaps no longer needed; every blob read from it is still verified
//! against its id, and a copy that fails is deleted and the read goes to the store.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::backend::{Backend, FileKind, check_range, validate_name};
use crate::error::{Result, io_err};

/// Whole tree packs kept in a local folder.
#[derive(Debug, Clone)]
pub(crate) struct PackCache {
    dir: PathBuf,
}

impl PackCache {
    /// A cache in `dir` (created when the first pack is stored).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, pack: &str) -> Result<PathBuf> {
        validate_name(pack)?;
        Ok(self.dir.join(pack))
    }

    /// `len` bytes at `offset` of `pack`: from the local copy, which is fetched whole from
    /// `backend` first when there is none.
    pub(crate) fn read_range(
        &self,
        backend: &dyn Backend,
        pack: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let path = self.path(pack)?;
        if let Ok(file) = File::open(&path) {
            let size = file.metadata().map_err(io_err("stat", &path))?.len();
            if check_range(FileKind::Pack, pack, offset, len, size).is_ok() {
                let mut data = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
                file.read_exact_at(&mut data, offset)
                    .map_err(io_err("read", &path))?;
                return Ok(data);
            }
            // A copy too short for the range is not the pack: fetch it again.
            self.forget(pack);
        }
        let whole = backend.read(FileKind::Pack, pack)?;
        let size = whole.len() as u64;
        check_range(FileKind::Pack, pack, offset, len, size)?;
        // A failure to keep the copy (disk full, read-only cache) only costs speed.
        let _ = self.store(&path, &whole);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(whole[start..end].to_vec())
    }

    /// Removes the local copy of `pack`, if any (it failed verification, or the pack was
    /// deleted from the repository).
    pub(crate) fn forget(&self, pack: &str) {
        if let Ok(path) = self.path(pack) {
            let _ = fs::remove_file(path);
        }
    }

    fn store(&self, path: &Path, data: &[u8]) -> Result<()> {
        // Private: the trees of an unencrypted repository name every file.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err("create cache folder", &self.dir))?;
        // Written under a temporary name and renamed, so that a reader never sees half a pack.
        let mut suffix = [0u8; 8];
        let _ = getrandom::fill(&mut suffix);
        let tmp = self.dir.join(format!(".tmp-{}", hex::encode(suffix)));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", path)(e));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Error, MemoryBackend};

    #[test]
    fn fetches_a_pack_once_and_serves_ranges_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let backend = MemoryBackend::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        backend.write(FileKind::Pack, "abcd", &data).unwrap();
        let cache = PackCache::new(dir.path().join("packs"));
        assert_eq!(
            cache.read_range(&backend, "abcd", 10, 5).unwrap(),
            &data[10..15]
        );
        // The copy answers once the pack is gone from the store.
        backend.delete(FileKind::Pack, "abcd").unwrap();
        assert_eq!(
            cache.read_range(&backend, "abcd", 9_000, 1_000).unwrap(),
            &data[9_000..]
        );
        assert!(matches!(
            cache.read_range(&backend, "abcd", 9_999, 2),
            Err(Error::NotFound { .. })
        ));
        // A truncated copy is fetched again, and a forgotten one too.
        backend.write(FileKind::Pack, "abcd", &data).unwrap();
        fs::write(dir.path().join("packs/abcd"), &data[..100]).unwrap();
        assert_eq!(
            cache.read_range(&backend, "abcd", 5_000, 10).unwrap(),
            &data[5_000..5_010]
        );
        cache.forget("abcd");
        assert!(!dir.path().join("packs/abcd").exists());
    }
}
