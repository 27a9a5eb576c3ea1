//! The content of a staged file ([`super::StagedFile`]) while it is filled: a file written
//! through a buffer, and read back on demand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};

/// Write buffer of a spool: many small blobs (trees, small files) reach the file in few
/// system calls.
const SPOOL_BUFFER: usize = 256 * 1024;

/// A file filled from its start, through a buffer.
#[derive(Debug)]
pub(super) struct Spool {
    file: BufWriter<File>,
    /// Names the file in errors.
    path: PathBuf,
    len: u64,
}

impl Spool {
    /// A spool over `file`, empty and open for reading and writing; `path` names it in
    /// errors.
    pub(super) fn new(file: File, path: PathBuf) -> Self {
        Self {
            file: BufWriter::with_capacity(SPOOL_BUFFER, file),
            path,
            len: 0,
        }
    }

    /// The file's path, as given to [`Spool::new`].
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `data`.
    pub(super) fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(io_err("write", &self.path))?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// The `len` bytes at `offset` of what was appended.
    pub(super) fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.flush()?;
        let mut data = vec![0u8; len];
        self.file
            .get_ref()
            .read_exact_at(&mut data, offset)
            .map_err(io_err("read", &self.path))?;
        Ok(data)
    }

    /// Everything appended.
    pub(super) fn read_all(&mut self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.len).map_err(|_| {
            io_err("read", &self.path)(std::io::Error::other("larger than memory can hold"))
        })?;
        self.read_at(0, len)
    }

    /// Writes out the buffer and makes the content durable.
    pub(super) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(io_err("sync", &self.path))
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(io_err("write", &self.path))
    }
}
