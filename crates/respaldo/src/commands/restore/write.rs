//! Creating restored nodes on disk and giving them their metadata.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use snapshot_index::{Node, NodeKind};
use tempfile::{Builder, NamedTempFile, TempPath};

use super::Context;
use super::plan::{Entry, LinkEntry};
use crate::error::{Error, Result};

/// Longest part of the real name kept in a temporary name (names are at most 255 bytes).
const TEMP_NAME_KEEP: usize = 100;

/// Permission bits of a mode (including setuid, setgid and sticky).
const PERMISSION_BITS: u32 = 0o7777;

/// `.respaldo-restore-<name>-`, the prefix of the temporary name of `dest`.
fn temp_prefix(dest: &Path) -> OsString {
    let name = dest.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let mut prefix = OsString::from(".respaldo-restore-");
    prefix.push(OsStr::from_bytes(&name[..name.len().min(TEMP_NAME_KEEP)]));
    prefix.push("-");
    prefix
}

fn parent_of(dest: &Path) -> &Path {
    dest.parent().unwrap_or(Path::new("."))
}

/// Creates directory `entry.dest`, or checks that what is there is a real directory. An
/// existing symbolic link is refused: following it could write outside the target. Any other
/// existing non-directory is replaced.
pub(crate) fn prepare_dir(entry: &Entry) -> Result<()> {
    let dest = &entry.dest;
    // Most restores create their folders: look at what is there only when the creation fails
    // (one system call per folder instead of two). Any error is looked into: some file systems
    // answer a `mkdir` over an existing directory with a permission or read-only error.
    let Err(create_error) = std::fs::create_dir(dest) else {
        return Ok(());
    };
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.file_type().is_dir() => {
            // A read-only directory left by an earlier restore must take new entries; its
            // mode from the snapshot is set again in the last phase.
            let mode = meta.permissions().mode();
            if mode & 0o300 != 0o300 {
                std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode | 0o700))
                    .map_err(Error::io("make writable for the restore", dest))?;
            }
            return Ok(());
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::UnsafePath {
                path: entry.path_lossy(),
                reason: format!(
                    "{} is a symbolic link in the target; restoring through it could write outside the target (remove it first)",
                    dest.display()
                ),
            });
        }
        Ok(_) => std::fs::remove_file(dest)
            .map_err(Error::io("remove (to restore a directory there)", dest))?,
        // Nothing there: the creation's own error says why.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::io("create directory", dest)(create_error));
        }
        Err(e) => return Err(Error::io("inspect", dest)(e)),
    }
    std::fs::create_dir(dest).map_err(Error::io("create directory", dest))
}

/// Whether a real directory (not a link to one) is at `dest`.
fn is_real_dir(dest: &Path) -> bool {
    std::fs::symlink_metadata(dest).is_ok_and(|meta| meta.file_type().is_dir())
}

/// Renames temporary file `temp` over `dest`. Files and symbolic links at `dest` are replaced
/// by the rename; a real directory there, which a rename cannot replace, is removed and the
/// rename tried again.
fn rename_into_place(temp: TempPath, dest: &Path) -> Result<()> {
    // Try the rename first: a restore into an empty target then costs no look at `dest`.
    let failed = match temp.persist(dest) {
        Ok(()) => return Ok(()),
        Err(failed) => failed,
    };
    // Only the errors of a directory in the way: on any other (a folder not writable, a full
    // disk) a directory there is left alone, and the rename's error is the answer.
    let in_the_way = matches!(
        failed.error.kind(),
        io::ErrorKind::IsADirectory
            | io::ErrorKind::DirectoryNotEmpty
            | io::ErrorKind::AlreadyExists
    );
    if !in_the_way || !is_real_dir(dest) {
        return Err(Error::io("rename into place", dest)(failed.error));
    }
    std::fs::remove_dir_all(dest).map_err(Error::io("remove (to restore a file there)", dest))?;
    failed
        .path
        .persist(dest)
        .map_err(|e| Error::io("rename into place", dest)(e.error))
}

fn persist<F>(temp: NamedTempFile<F>, dest: &Path) -> Result<()> {
    rename_into_place(temp.into_temp_path(), dest)
}

/// Creates a node under a temporary name in the destination's folder with `create`, then
/// renames it into place.
fn create_and_rename(
    dest: &Path,
    what: &'static str,
    create: impl FnMut(&Path) -> io::Result<()>,
) -> Result<()> {
    let temp = Builder::new()
        .prefix(&temp_prefix(dest))
        .rand_bytes(8)
        .make_in(parent_of(dest), create)
        .map_err(Error::io(what, dest))?;
    persist(temp, dest)
}

/// Whether `data` is all zero bytes (such a chunk is left as a hole).
pub(crate) fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Creates the temporary file of `dest` in its folder (`.respaldo-restore-NAME-XXXXXXXX`,
/// mode 0600, empty), readable and writable. Its [`TempPath`] removes it when dropped, so a
/// file that is never finished leaves nothing behind.
pub(crate) fn create_temp(dest: &Path) -> Result<(File, TempPath)> {
    let temp = Builder::new()
        .prefix(&temp_prefix(dest))
        .rand_bytes(8)
        .tempfile_in(parent_of(dest))
        .map_err(Error::io("create a temporary file for", dest))?;
    Ok(temp.into_parts())
}

/// Finishes a file whose content is all written to `file`, its temporary file `temp`, now
/// `written` bytes long (the end of its last written byte): gives it its length `size` when
/// that differs (trailing holes), checks the length against the snapshot (a warning),
/// reads it back and verifies it when asked (`lengths`: the length of each chunk), sets its
/// metadata, checks a SQLite database, and renames it over `entry.dest`. On error the
/// temporary file is removed and the destination is left as it was.
pub(crate) fn finish_file(
    ctx: &Context<'_>,
    entry: &Entry,
    file: &File,
    temp: TempPath,
    (written, size): (u64, u64),
    lengths: &[u64],
) -> Result<()> {
    let dest = &entry.dest;
    if written != size {
        file.set_len(size)
            .map_err(Error::io("set the length of", dest))?;
    }
    if size != entry.node.size {
        ctx.warn(
            dest,
            format!(
                "the snapshot records {} bytes but its content holds {size}",
                entry.node.size
            ),
        );
    }
    if ctx.verify {
        verify_file(ctx, file, entry, lengths)?;
    }
    apply_file_metadata(ctx, file, dest, &entry.node);
    let aside = if entry.node.flags & snapshot_index::FLAG_SQLITE != 0 {
        Some(super::sqlite::prepare_replace(ctx, &temp, dest)?)
    } else {
        None
    };
    let persisted = rename_into_place(temp, dest);
    match (persisted, aside) {
        (Ok(()), Some(aside)) => aside.discard(),
        (Err(e), Some(aside)) => {
            aside.put_back();
            return Err(e);
        }
        (result, None) => result?,
    }
    ctx.progress.file_done(dest);
    Ok(())
}

/// Reads the written file back and compares the id of every chunk with the snapshot.
fn verify_file(ctx: &Context<'_>, file: &File, entry: &Entry, lengths: &[u64]) -> Result<()> {
    let dest = &entry.dest;
    // `&File` reads and seeks: the handle may be shared with writers that are done with it.
    let mut file = file;
    let mismatch = |reason: String| Error::Verify {
        path: dest.clone(),
        reason,
    };
    file.seek(SeekFrom::Start(0))
        .map_err(Error::io("seek in", dest))?;
    let mut buffer = Vec::new();
    let mut offset = 0u64;
    for (i, (id, &len)) in entry.node.content.iter().zip(lengths).enumerate() {
        buffer.clear();
        let read = Read::by_ref(&mut file)
            .take(len)
            .read_to_end(&mut buffer)
            .map_err(Error::io("read back", dest))?;
        if read as u64 != len {
            return Err(mismatch(format!(
                "chunk {i} at offset {offset}: only {read} of {len} bytes could be read"
            )));
        }
        let got = ctx.store.blob_id(&buffer);
        if got != *id {
            return Err(mismatch(format!(
                "chunk {i} at offset {offset} has id {got}, the snapshot says {id}"
            )));
        }
        offset += len;
    }
    let mut rest = [0u8; 1];
    if file.read(&mut rest).map_err(Error::io("read back", dest))? != 0 {
        return Err(mismatch(format!(
            "the file is longer than the {offset} bytes of the snapshot"
        )));
    }
    Ok(())
}

/// The modification time of a node.
fn mtime_of(node: &Node) -> FileTime {
    let seconds = node.mtime_ns.div_euclid(1_000_000_000);
    let nanos = u32::try_from(node.mtime_ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    FileTime::from_unix_time(seconds, nanos)
}

/// Owner (as root), mode and times of a file, through its open handle.
fn apply_file_metadata(ctx: &Context<'_>, file: &File, dest: &Path, node: &Node) {
    if ctx.is_root
        && let Err(e) = std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid))
    {
        ctx.warn(
            dest,
            format!("could not set the owner to {}:{}: {e}", node.uid, node.gid),
        );
    }
    if let Err(e) = file.set_permissions(Permissions::from_mode(node.mode & PERMISSION_BITS)) {
        ctx.warn(
            dest,
            format!(
                "could not set the mode to {:o}: {e}",
                node.mode & PERMISSION_BITS
            ),
        );
    }
    let mtime = mtime_of(node);
    if let Err(e) = filetime::set_file_handle_times(file, Some(mtime), Some(mtime)) {
        ctx.warn(dest, format!("could not set the modification time: {e}"));
    }
}

/// Owner (as root), mode (not for symbolic links) and times of the node at `path`, which this
/// restore created or checked. Failures are warnings.
pub(crate) fn apply_path_metadata(ctx: &Context<'_>, path: &Path, node: &Node, is_symlink: bool) {
    if ctx.is_root
        && let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
    {
        ctx.warn(
            path,
            format!("could not set the owner to {}:{}: {e}", node.uid, node.gid),
        );
    }
    if !is_symlink
        && let Err(e) =
            std::fs::set_permissions(path, Permissions::from_mode(node.mode & PERMISSION_BITS))
    {
        ctx.warn(
            path,
            format!(
                "could not set the mode to {:o}: {e}",
                node.mode & PERMISSION_BITS
            ),
        );
    }
    // utimensat without following links; `filetime::set_file_times` would open the path,
    // which blocks on a fifo.
    let mtime = mtime_of(node);
    if let Err(e) = filetime::set_symlink_file_times(path, mtime, mtime) {
        ctx.warn(path, format!("could not set the modification time: {e}"));
    }
}

/// Creates a hard link to a file restored in this run.
pub(crate) fn restore_hardlink(link: &LinkEntry) -> Result<()> {
    create_and_rename(&link.entry.dest, "create hard link", |temp| {
        std::fs::hard_link(&link.source, temp)
    })
}

/// Creates a fifo or device. Returns whether it was created (devices need root; without it,
/// a warning).
pub(crate) fn restore_special(ctx: &Context<'_>, entry: &Entry) -> Result<bool> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    let dest = &entry.dest;
    let node = &entry.node;
    let device_kind = match node.kind {
        NodeKind::Fifo => {
            create_and_rename(dest, "create fifo", |temp| {
                nix::unistd::mkfifo(temp, Mode::from_bits_truncate(0o600)).map_err(io::Error::from)
            })?;
            apply_path_metadata(ctx, dest, node, false);
            return Ok(true);
        }
        NodeKind::CharDevice => SFlag::S_IFCHR,
        NodeKind::BlockDevice => SFlag::S_IFBLK,
        other => {
            ctx.warn(
                dest,
                format!("a {} cannot be restored; skipped", other.label()),
            );
            return Ok(false);
        }
    };
    if !ctx.is_root {
        ctx.warn(
            dest,
            format!(
                "{} not restored: creating devices needs root",
                node.kind.label()
            ),
        );
        return Ok(false);
    }
    #[allow(irrefutable_let_patterns, clippy::useless_conversion)]
    // dev_t is u64 on Linux, narrower elsewhere.
    let Ok(rdev) = nix::sys::stat::dev_t::try_from(node.rdev) else {
        ctx.warn(
            dest,
            format!(
                "device number {} does not fit this system; skipped",
                node.rdev
            ),
        );
        return Ok(false);
    };
    let created = create_and_rename(dest, "create device", |temp| {
        mknod(temp, device_kind, Mode::from_bits_truncate(0o600), rdev).map_err(io::Error::from)
    });
    match created {
        Ok(()) => {
            apply_path_metadata(ctx, dest, node, false);
            Ok(true)
        }
        Err(e) => {
            ctx.warn(dest, format!("{} not restored: {e}", node.kind.label()));
            Ok(false)
        }
    }
}

/// Creates a symbolic link with the stored target bytes.
pub(crate) fn restore_symlink(ctx: &Context<'_>, entry: &Entry) -> Result<()> {
    let target = OsStr::from_bytes(&entry.node.link_target);
    create_and_rename(&entry.dest, "create symbolic link", |temp| {
        std::os::unix::fs::symlink(target, temp)
    })?;
    apply_path_metadata(ctx, &entry.dest, &entry.node, true);
    Ok(())
}
