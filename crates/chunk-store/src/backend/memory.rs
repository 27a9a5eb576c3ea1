//! A backend that keeps every file in memory: for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, FileKind, ListingStamp, check_range, validate_name};
use crate::error::{Error, Result};

type Files = BTreeMap<(FileKind, String), Arc<Vec<u8>>>;

/// Distinguishes the stamps of backends that do not share their files.
static BACKENDS: AtomicU64 = AtomicU64::new(0);

/// An in-memory [`Backend`]. Clones share the same files, so a test can keep a handle and
/// inspect or damage what a store wrote.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    files: Arc<Mutex<Files>>,
    /// Writes and deletes so far, per kind, for [`Backend::listing_stamp`].
    changes: Arc<Mutex<BTreeMap<FileKind, u64>>>,
    id: u64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            files: Arc::default(),
            changes: Arc::default(),
            id: BACKENDS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single insert or remove), so a poisoned lock is safe to reuse.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self, kind: FileKind) {
        *self
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    fn get(&self, kind: FileKind, name: &str) -> Result<Arc<Vec<u8>>> {
        validate_name(name)?;
        self.files()
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: kind.label(),
                name: name.to_string(),
            })
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        validate_name(name)?;
        // The count changes under the files' lock, as the file does, so that a stamp never
        // pairs with a listing it does not describe.
        let mut files = self.files();
        files.insert((kind, name.to_string()), Arc::new(data.to_vec()));
        self.changed(kind);
        drop(files);
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(kind, name)?.as_ref().clone())
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let data = self.get(kind, name)?;
        check_range(kind, name, offset, len, data.len() as u64)?;
        // check_range proved offset + len <= data.len(), which is a usize.
        let start = offset as usize;
        Ok(data[start..start + len as usize].to_vec())
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        Ok(self.get(kind, name)?.len() as u64)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        Ok(self
            .files()
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect())
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        validate_name(name)?;
        let mut files = self.files();
        if files.remove(&(kind, name.to_string())).is_some() {
            self.changed(kind);
        }
        drop(files);
        Ok(())
    }

    /// The backend and the number of writes and deletes of `kind` so far: always current.
    fn listing_stamp(&self, kind: FileKind) -> Option<ListingStamp> {
        let files = self.files();
        let changes = self
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kind)
            .copied()
            .unwrap_or(0);
        drop(files);
        let mut bytes = self.id.to_le_bytes().to_vec();
        bytes.extend_from_slice(&changes.to_le_bytes());
        Some(ListingStamp::from_bytes(bytes))
    }

    fn exists(&self, kind: FileKind, name: &str) -> Result<bool> {
        validate_name(name)?;
        Ok(self.files().contains_key(&(kind, name.to_string())))
    }
}
