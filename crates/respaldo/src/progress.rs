//! How long operations report what they are doing, without printing anything themselves.

use std::path::Path;

/// Receives progress from backup and restore. Every method has an empty default, so a caller
/// implements only what it shows. Called from several threads at once.
pub trait Progress: Sync {
    /// The total amount of work is known or has grown (files and bytes to process).
    fn add_total(&self, _files: u64, _bytes: u64) {}
    /// A file is being processed.
    fn file_started(&self, _path: &Path) {}
    /// `bytes` more bytes were processed (read during backup, written during restore).
    fn bytes_done(&self, _bytes: u64) {}
    /// A file is done.
    fn file_done(&self, _path: &Path) {}
    /// Something could not be backed up or restored; the operation goes on.
    fn warning(&self, _path: &Path, _message: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A problem with one path that did not stop the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The path concerned.
    pub path: std::path::PathBuf,
    /// What happened and what the user can do.
    pub message: String,
}
