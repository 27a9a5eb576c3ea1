//! `dump`: one file of a snapshot to a writer.

use std::io::Write;
use std::path::PathBuf;

use snapshot_index::{NodeKind, SnapshotEntry};

use super::ls::{find_node, short_id};
use crate::error::{Error, Result};
use crate::repository::Repository;

impl Repository {
    /// Writes the content of file `path` of `snapshot` to `out`, chunk by chunk, each verified
    /// against its id; returns its size. A hard link is dumped as the file it names.
    ///
    /// Errors: `path` is not in the snapshot ([`snapshot_index::Error::PathNotFound`]), or is
    /// not a file ([`Error::InvalidArgument`] naming it); damaged data (naming the pack);
    /// writing to `out` failed ([`Error::Io`] naming the path in the snapshot).
    pub fn dump(&self, snapshot: &SnapshotEntry, path: &str, out: &mut dyn Write) -> Result<u64> {
        let node = find_node(self, snapshot, path)?;
        if !matches!(node.kind, NodeKind::File | NodeKind::Hardlink) {
            return Err(Error::invalid(format!(
                "{path} in snapshot {} is a {}, not a file: dump writes the content of one file (list a folder with `respaldo ls`)",
                short_id(&snapshot.id),
                node.kind.label()
            )));
        }
        let mut written = 0u64;
        for id in &node.content {
            let data = self.store().get_blob(id)?;
            out.write_all(&data).map_err(Error::io(
                "write the output of dumping",
                PathBuf::from(path),
            ))?;
            written += data.len() as u64;
        }
        out.flush().map_err(Error::io(
            "write the output of dumping",
            PathBuf::from(path),
        ))?;
        Ok(written)
    }
}
