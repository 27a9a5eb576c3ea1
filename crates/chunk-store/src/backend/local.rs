//! A repository in a local directory.
//!
//! Layout: `config`, `keys/NAME`, `packs/XX/NAME` (XX: the first two characters of the name,
//! so that no directory grows past a few thousand entries), `index/NAME`, `snapshots/NAME`,
//! `locks/NAME`. A file is written under a dot-name in its final folder, synced, renamed into
//! place, and then the folder is synced, so that after a crash it is either whole or absent.
//! Dot-names are never listed; files are created 0600 and folders 0700 on Unix.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::spool::Spool;
use super::{Backend, CONFIG_NAME, FileKind, ListingStamp, StagedFile, check_range, validate_name};
use crate::error::{Error, Result, io_err};

/// Reads up to this long skip the size check before reading (see `read_range`).
const UNCHECKED_READ_MAX: u64 = 64 * 1024 * 1024;

/// How long a folder must have gone unchanged before its stamp is trusted
/// ([`Backend::listing_stamp`]): a folder's modification time is only as fine as the file
/// system's clock tick (up to 2 s on some), so a file added in the same tick as the stamp was
/// read would leave it unchanged.
const LISTING_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Packs kept open for ranged reads (see [`OpenPacks`]).
const OPEN_PACKS: usize = 16;

/// The packs read from last, kept open: walking a snapshot's trees reads a few hundred bytes
/// at a time from the same few tree packs, and opening and closing the pack for each read
/// cost a fifth of `ls` (benchmarks.md, "Reading trees"). A pack's content never changes
/// (its name is its hash), so a handle stays valid; one deleted or written over through this
/// backend is dropped from here. One deleted by another process stays readable through a kept
/// handle until it is dropped from here: reads return its (verified) content instead of
/// `NotFound`.
#[derive(Debug, Default)]
struct OpenPacks(Mutex<VecDeque<(String, Arc<File>)>>);

impl OpenPacks {
    fn get(&self, name: &str) -> Option<Arc<File>> {
        let mut packs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = packs.iter().position(|(n, _)| n == name)?;
        // Most recently used first.
        let entry = packs.remove(at)?;
        let file = Arc::clone(&entry.1);
        packs.push_front(entry);
        Some(file)
    }

    fn put(&self, name: &str, file: Arc<File>) {
        let mut packs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if packs.iter().any(|(n, _)| n == name) {
            return;
        }
        packs.push_front((name.to_string(), file));
        packs.truncate(OPEN_PACKS);
    }

    fn forget(&self, name: &str) {
        let mut packs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        packs.retain(|(n, _)| n != name);
    }
}

/// A [`Backend`] over a local directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    open_packs: Arc<OpenPacks>,
}

impl LocalBackend {
    /// A backend rooted at `root`. Nothing is created or checked until files are written.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            open_packs: Arc::default(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, kind: FileKind, name: &str) -> PathBuf {
        match kind {
            FileKind::Config => self.root.clone(),
            FileKind::Pack => {
                let fanout = name.get(..2).unwrap_or(name);
                self.root.join(kind.dir()).join(fanout)
            }
            _ => self.root.join(kind.dir()),
        }
    }

    fn path_of(&self, kind: FileKind, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.dir_of(kind, name).join(name))
    }

    /// File `name` of `kind` opened for ranged reads: a pack from [`OpenPacks`] (and kept
    /// there), any other file opened anew.
    fn open_for_ranges(&self, kind: FileKind, name: &str) -> Result<(Arc<File>, PathBuf)> {
        if kind == FileKind::Pack
            && let Some(file) = self.open_packs.get(name)
        {
            return Ok((file, self.path_of(kind, name)?));
        }
        let (file, path) = self.open(kind, name)?;
        let file = Arc::new(file);
        if kind == FileKind::Pack {
            self.open_packs.put(name, Arc::clone(&file));
        }
        Ok((file, path))
    }

    fn not_found(kind: FileKind, name: &str) -> Error {
        Error::NotFound {
            kind: kind.label(),
            name: name.to_string(),
        }
    }

    fn open(&self, kind: FileKind, name: &str) -> Result<(File, PathBuf)> {
        let path = self.path_of(kind, name)?;
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Self::not_found(kind, name)),
            Err(e) => Err(io_err("open", &path)(e)),
        }
    }
}

/// Creates `dir` and its missing parents (0700), syncing each parent that gained an entry so
/// that the new folders survive a crash along with the files about to be written in them.
fn create_dir_all(dir: &Path) -> Result<()> {
    // The parent of a bare relative name ("repo") is "": the current folder, which exists.
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        // Another writer created it first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io_err("create directory", dir)(e)),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

fn create_private_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    // Readable too: a staged file is read back while it is written (blobs of an open pack).
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(io_err("create", path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Syncing the directory makes the rename itself durable; without it a crash may lose a
    // file that was already reported written.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    // A failing OS random source only weakens uniqueness of a temporary name, and create_new
    // still refuses to reuse an existing one.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path_of(kind, name)?;
        let dir = self.dir_of(kind, name);
        create_dir_all(&dir)?;
        let tmp = dir.join(format!(".tmp-{name}-{}", random_suffix()));
        let written = (|| {
            let mut file = create_private_file(&tmp)?;
            file.write_all(data).map_err(io_err("write", &tmp))?;
            file.sync_all().map_err(io_err("sync", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))
        })();
        if kind == FileKind::Pack {
            // A file written over the name replaces the one a kept handle reads.
            self.open_packs.forget(name);
        }
        if let Err(e) = written {
            // Leave nothing half-written behind (disk full, permission error).
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&dir)
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let (mut file, path) = self.open(kind, name)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err("read", &path))?;
        Ok(data)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (file, path) = self.open_for_ranges(kind, name)?;
        let file_size =
            || -> Result<u64> { Ok(file.metadata().map_err(io_err("stat", &path))?.len()) };
        // A long read is checked against the file's size before its buffer is allocated, so
        // that a damaged length cannot make this allocate gigabytes; so are the odd ones an
        // empty buffer would not catch (empty, or past any file). Any other (every blob and
        // tree) costs no extra system call, and learns the size only when it comes up short.
        if len == 0
            || len > UNCHECKED_READ_MAX
            || offset
                .checked_add(len)
                .is_none_or(|end| end > i64::MAX as u64)
        {
            check_range(kind, name, offset, len, file_size()?)?;
        }
        let short = |size| Error::ShortRead {
            kind: kind.label(),
            name: name.to_string(),
            offset,
            len,
            size,
        };
        let Ok(wanted) = usize::try_from(len) else {
            return Err(short(file_size()?));
        };
        let mut data = vec![0u8; wanted];
        let mut filled = 0;
        while filled < wanted {
            match file.read_at(&mut data[filled..], offset + filled as u64) {
                Ok(0) => return Err(short(file_size()?)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", &path)(e)),
            }
        }
        Ok(data)
    }

    fn read_ahead(&self, kind: FileKind, name: &str, offset: u64, len: u64) {
        if let Ok((file, _)) = self.open_for_ranges(kind, name) {
            let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let _ = nix::fcntl::posix_fadvise(
                file.as_ref(),
                to_i64(offset),
                to_i64(len),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        let path = self.path_of(kind, name)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Self::not_found(kind, name)),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        let mut names = Vec::new();
        match kind {
            FileKind::Config => {
                if self.exists(kind, CONFIG_NAME)? {
                    names.push(CONFIG_NAME.to_string());
                }
            }
            FileKind::Pack => {
                for fanout in read_dir_names(&self.root.join(kind.dir()))? {
                    names.extend(read_dir_names(&self.root.join(kind.dir()).join(fanout))?);
                }
            }
            _ => names = read_dir_names(&self.root.join(kind.dir()))?,
        }
        names.sort();
        Ok(names)
    }

    /// The folder's device, inode, modification and change times, once its modification
    /// time is [`LISTING_SETTLE`] old by this machine's clock: every file written, renamed
    /// into place or deleted in it sets its modification time to the present, which is then
    /// later than the stamp's. Packs live in fan-out folders and get no stamp.
    fn listing_stamp(&self, kind: FileKind) -> Option<ListingStamp> {
        use std::os::unix::fs::MetadataExt;
        if matches!(kind, FileKind::Config | FileKind::Pack) {
            return None;
        }
        let dir = self.root.join(kind.dir());
        if !on_local_file_system(&dir) {
            return None;
        }
        let meta = fs::metadata(&dir).ok()?;
        let modified = meta.modified().ok()?;
        let age = std::time::SystemTime::now().duration_since(modified).ok()?;
        if age < LISTING_SETTLE {
            return None;
        }
        let mut bytes = Vec::with_capacity(48);
        for field in [
            meta.dev(),
            meta.ino(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        Some(ListingStamp::from_bytes(bytes))
    }

    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn StagedFile>>> {
        // In the kind's own folder, so that committing is a rename within one file system
        // (a pack then moves down into its fan-out folder).
        let dir = self.root.join(kind.dir());
        create_dir_all(&dir)?;
        let tmp = dir.join(format!(".tmp-staged-{}", random_suffix()));
        let file = create_private_file(&tmp)?;
        Ok(Some(Box::new(LocalStaged {
            backend: self.clone(),
            kind,
            spool: Spool::new(file, tmp),
            committed: false,
        })))
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = self.path_of(kind, name)?;
        let removed = fs::remove_file(&path);
        if kind == FileKind::Pack {
            // After the removal: a read that opened the pack before it may have kept its handle
            // since.
            self.open_packs.forget(name);
        }
        match removed {
            Ok(()) => sync_dir(&self.dir_of(kind, name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &path)(e)),
        }
    }

    fn exists(&self, kind: FileKind, name: &str) -> Result<bool> {
        let path = self.path_of(kind, name)?;
        path.try_exists().map_err(io_err("stat", &path))
    }
}

/// Whether `dir` is on a file system of this machine's kernel whose folder times change with
/// every entry added or removed, whoever changes it: not a network or FUSE mount, where
/// another machine's change may reach this one's view of the folder's times late (NFS caches
/// them for up to a minute) and a server's clock sets them.
#[cfg(target_os = "linux")]
fn on_local_file_system(dir: &Path) -> bool {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT2_SUPER_MAGIC, EXT3_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC,
        OVERLAYFS_SUPER_MAGIC, REISERFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC, statfs,
    };
    /// ZFS on Linux, which the libc crate does not name.
    const ZFS_SUPER_MAGIC: i64 = 0x2fc1_2fc1;
    /// bcachefs, which the libc crate does not name.
    const BCACHEFS_SUPER_MAGIC: i64 = 0xca45_1a4e;
    let Ok(fs) = statfs(dir) else {
        return false;
    };
    let kind = fs.filesystem_type();
    // The type's width differs between targets (`i64` on x86-64 glibc).
    #[allow(clippy::unnecessary_cast)]
    let magic = kind.0 as i64;
    [
        EXT4_SUPER_MAGIC,
        EXT3_SUPER_MAGIC,
        EXT2_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        TMPFS_MAGIC,
        F2FS_SUPER_MAGIC,
        REISERFS_SUPER_MAGIC,
        OVERLAYFS_SUPER_MAGIC,
    ]
    .contains(&kind)
        || [ZFS_SUPER_MAGIC, BCACHEFS_SUPER_MAGIC].contains(&magic)
}

/// Elsewhere the kind of file system is not told apart: no stamps, every command lists.
#[cfg(not(target_os = "linux"))]
fn on_local_file_system(_dir: &Path) -> bool {
    false
}

/// Names in a directory, skipping dot-names (files in progress); a missing directory is empty.
/// A file staged under a dot-name in its kind's folder (see [`Backend::stage`]).
#[derive(Debug)]
struct LocalStaged {
    backend: LocalBackend,
    kind: FileKind,
    /// Its content, under the dot-name it has until committed.
    spool: Spool,
    /// Renamed into place: nothing for `Drop` to remove.
    committed: bool,
}

impl StagedFile for LocalStaged {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.spool.append(data)
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.spool.read_at(offset, len)
    }

    fn commit(mut self: Box<Self>, name: &str) -> Result<()> {
        let path = self.backend.path_of(self.kind, name)?;
        let dir = self.backend.dir_of(self.kind, name);
        self.spool.sync()?;
        create_dir_all(&dir)?;
        fs::rename(self.spool.path(), &path).map_err(io_err("rename into place", &path))?;
        if self.kind == FileKind::Pack {
            // A file committed over the name replaces the one a kept handle reads.
            self.backend.open_packs.forget(name);
        }
        self.committed = true;
        sync_dir(&dir)
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if !self.committed {
            // Abandoned or failed: leave nothing half-written behind.
            let _ = fs::remove_file(self.spool.path());
        }
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        if let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}
