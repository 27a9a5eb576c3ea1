//! [`ChunkStore`]: a repository's blobs, deduplicated, packed, sealed and indexed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chunker::{ChunkId, Chunker, ChunkerParams, IdHasher};

use crate::backend::{Backend, CONFIG_NAME, FileKind};
use crate::blob::{self, BlobKind, BlobLocation, Encoding};
use crate::config::{
    CHUNKER_ALGORITHM, ChunkerConfig, CompressionConfig, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL,
    EncryptionConfig, FORMAT_MAJOR, FORMAT_MINOR, RepoConfig,
};
use crate::error::{Error, Result};
use crate::group::{self, GROUP_MEMBER_MAX, GroupBuilder, GroupCache, SealedGroup};
use crate::index::Index;
use crate::index_file::{self, IndexedPack};
use crate::keys::{self, KdfParams, KeyInfo, KeyOrigin, MasterKey, Unwrapped};
use crate::lock_file::{self, LockInfo};
use crate::pack::{self, PackBuilder, PackEntry};
use crate::pack_cache::PackCache;
use crate::seal::Sealer;

/// Largest blob the store accepts (the chunker's maximum chunk is 16 MiB).
pub const MAX_BLOB_SIZE: usize = 64 * 1024 * 1024;

/// Written packs not yet listed in an index file; past this many, an index file is written
/// during `add`, so that an interrupted backup leaves reusable, indexed packs behind.
const PACKS_PER_INDEX_FILE: usize = 32;
/// Blobs in written packs past which an index file is written, even before
/// [`PACKS_PER_INDEX_FILE`] packs: the locations of blobs waiting for an index file are held in
/// memory (about 200 bytes each), so with small blobs (a pack of 16 MiB holds thousands) this
/// bounds that memory (about 13 MiB) whatever the backup's size.
const INDEX_FILE_DUE_ENTRIES: usize = 65_536;
/// Most blobs in one pack, and most blobs listed by one index file: keeps trailers and index
/// files far below the codec's size limit even when blobs are tiny.
const MAX_PACK_ENTRIES: usize = 100_000;
/// Most blobs one index file lists (`docs/format.md` section 9).
pub const MAX_INDEX_FILE_ENTRIES: usize = 1_000_000;

/// The associated data of a value kept beside the fast index under `key`: a value opens only
/// under the key it was kept under.
fn kept_value_context(key: &str) -> Vec<u8> {
    [b"RSPLKEPT ".as_slice(), key.as_bytes()].concat()
}

/// The kept value `sealed` (kept under `key`), opened: `None` when it does not open (damaged,
/// or sealed under another key), so that the caller derives it again.
fn open_kept_value(sealer: &Sealer, key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    sealer
        .open(sealed, &kept_value_context(key), "kept value", 0)
        .ok()
}

/// A snapshot file as [`ChunkStore::read_snapshot_files_except`] lists it: its name, then its
/// content or the error reading it gave, or `None` for a file the caller said it knew.
pub type ListedSnapshotFile = (String, Option<Result<Vec<u8>>>);

/// The values kept beside the fast index, inside one transaction
/// ([`ChunkStore::update_kept_values`]).
pub struct KeptValues<'t, 'i> {
    table: &'t mut crate::index::KeptTable<'i>,
    sealer: &'t Sealer,
}

impl KeptValues<'_, '_> {
    /// The value kept under `key`, opened, as [`KeptView::get`] gives it.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table
            .get(key)?
            .and_then(|sealed| open_kept_value(self.sealer, key, &sealed)))
    }

    /// Every key that starts with `prefix`, in order.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.table.keys_with_prefix(prefix)
    }

    /// Keeps `value`, sealed, under `key`, in place of any value kept there.
    pub fn insert(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let sealed = self.sealer.seal(value, &kept_value_context(key))?;
        self.table.insert(key, &sealed)
    }

    /// Drops the value kept under `key`, if any.
    pub fn remove(&mut self, key: &str) -> Result<()> {
        self.table.remove(key)
    }
}

impl std::fmt::Debug for KeptValues<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptValues").finish_non_exhaustive()
    }
}

/// The values kept beside the fast index as one read transaction saw them
/// ([`ChunkStore::kept_values`]).
pub struct KeptView<'i> {
    reader: crate::index::KeptReader<'i>,
    sealer: &'i Sealer,
}

impl KeptView<'_> {
    /// The value kept under `key`, opened: `None` when there is none, or when it no longer
    /// opens (damaged, or sealed under another key), so that the caller derives it again.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .reader
            .get(key)?
            .and_then(|sealed| open_kept_value(self.sealer, key, &sealed)))
    }

    /// The values kept under keys in `range`, in key order or reversed, each opened, handed
    /// to `visit` with its key until it returns `false`. A value that no longer opens is
    /// handed over as `None`. Errors are the fast index's own, and `visit`'s.
    pub fn scan(
        &self,
        range: (std::ops::Bound<&str>, std::ops::Bound<&str>),
        reverse: bool,
        mut visit: impl FnMut(&str, Option<Vec<u8>>) -> Result<bool>,
    ) -> Result<()> {
        self.reader.scan(range, reverse, |key, sealed| {
            visit(key, open_kept_value(self.sealer, key, sealed))
        })
    }

    /// The keys of the values kept under keys in `range`, in order, without opening the
    /// values.
    pub fn keys(
        &self,
        range: (std::ops::Bound<&str>, std::ops::Bound<&str>),
    ) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.reader.scan(range, false, |key, _| {
            keys.push(key.to_string());
            Ok(true)
        })?;
        Ok(keys)
    }
}

impl std::fmt::Debug for KeptView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptView").finish_non_exhaustive()
    }
}

/// Settings of a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Password of the first key; `None` creates an unencrypted repository.
    pub password: Option<String>,
    /// Chunk sizes and normalization (the seed is ignored when encrypted: it is derived from
    /// the master key).
    pub chunker: ChunkerParams,
    /// zstd level, 0 (off) to 22.
    pub zstd_level: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Argon2id cost of the first key.
    pub kdf: KdfParams,
    /// Who creates the first key file, and when.
    pub key_origin: KeyOrigin,
    /// Format major version of the repository, 1 to [`FORMAT_MAJOR`] (the default): 1 for a
    /// repository that older versions of respaldo must read.
    pub format_major: u16,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            password: None,
            chunker: ChunkerParams::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
            key_origin: KeyOrigin::default(),
            format_major: FORMAT_MAJOR,
        }
    }
}

/// Where a blob added in this session is, before its pack is listed in the index.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Reserved or in an open pack of this kind, not yet written.
    Open(BlobKind),
    /// In a written pack that no index file lists yet.
    Written(BlobLocation),
}

#[derive(Debug, Default)]
struct WriteState {
    data: Option<PackBuilder>,
    tree: Option<PackBuilder>,
    /// Tree blobs gathered for the next group (format 2).
    group: GroupBuilder,
    pending: HashMap<ChunkId, Pending>,
    unindexed: Vec<IndexedPack>,
    /// Blobs in unindexed packs.
    unindexed_entries: usize,
    /// Blobs whose pack could not be written since the last flush, and the first reason.
    /// Other threads were told those blobs were stored, so the next flush must fail.
    lost: Option<(usize, String)>,
}

impl WriteState {
    fn open_pack(&mut self, kind: BlobKind) -> &mut Option<PackBuilder> {
        match kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.tree,
        }
    }

    /// Records that blobs `ids` of a pack will never be stored, because of `reason`: the
    /// threads that added them were told they were, so the next flush must fail, and their
    /// reservations go, so that they can be added again.
    fn lose(&mut self, ids: &[ChunkId], reason: &Error) {
        // Counted once each: a group's members may be lost with their group and again with
        // the pack it was going to.
        let lost = ids
            .iter()
            .filter(|id| self.pending.remove(id).is_some())
            .count();
        if lost > 0 {
            let entry = self.lost.get_or_insert_with(|| (0, reason.to_string()));
            entry.0 += lost;
        }
    }
}

/// What [`ChunkStore::add_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOutcome {
    /// The blob's id.
    pub id: ChunkId,
    /// Whether the blob was new and stored (false: it was already known, nothing stored).
    pub stored: bool,
    /// Bytes the blob added to packs (sealed length), 0 when it was known.
    pub stored_bytes: u64,
}

/// Answers whether the repository has a list of blobs ([`ChunkStore::blob_checker`]).
pub struct BlobChecker<'a> {
    store: &'a ChunkStore,
    index: crate::index::IndexSnapshot,
}

impl std::fmt::Debug for BlobChecker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobChecker").finish_non_exhaustive()
    }
}

impl BlobChecker<'_> {
    /// Whether the repository has every one of `ids` (in the index as of this checker, or
    /// added in this session). A blob indexed after the checker was made counts as missing.
    pub fn contains_all(&self, ids: &[ChunkId]) -> Result<bool> {
        let unknown: Vec<ChunkId> = {
            let state = self.store.state();
            ids.iter()
                .filter(|id| !state.pending.contains_key(id))
                .copied()
                .collect()
        };
        self.index.contains_all(&unknown)
    }
}

/// Answers where blobs are, for many lookups in a row ([`ChunkStore::blob_locator`]): one
/// read transaction of the index for all of them, instead of one per
/// [`ChunkStore::locate`].
///
/// It sees the index as it was when the locator was made, plus the blobs added in this
/// session whose pack is written (as [`ChunkStore::locate`] does). A blob indexed by another
/// process after it was made is not seen: make a new locator to see it.
pub struct BlobLocator<'a> {
    store: &'a ChunkStore,
    index: crate::index::IndexSnapshot,
}

impl std::fmt::Debug for BlobLocator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobLocator").finish_non_exhaustive()
    }
}

impl BlobLocator<'_> {
    /// Where blob `id` is: in a written pack of this session, or in the index as of this
    /// locator. `None` when neither knows it (a blob that still sits in an open pack of this
    /// session is not located: [`ChunkStore::get_blob`] reads it).
    ///
    /// Errors: [`Error::IndexDb`] naming `index.redb` when the index cannot be read or an
    /// entry is damaged.
    pub fn locate(&self, id: &ChunkId) -> Result<Option<BlobLocation>> {
        if let Some(Pending::Written(location)) = self.store.state().pending.get(id) {
            return Ok(Some(*location));
        }
        self.index.lookup(id)
    }
}

/// What reading a whole pack found ([`ChunkStore::verify_pack`]).
#[derive(Debug)]
pub struct PackReport {
    /// Whether the pack's bytes hash to its name (false: some byte of it changed).
    pub name_matches: bool,
    /// The blobs its trailer lists, or why the trailer cannot be read.
    pub trailer: Result<Vec<PackEntry>>,
    /// Blobs expected in the pack that do not read back as their id, with why.
    pub damaged: Vec<(PackEntry, Error)>,
    /// Blobs expected in the pack that its (readable) trailer does not list as expected.
    pub trailer_mismatch: Vec<ChunkId>,
}

impl PackReport {
    /// Whether nothing is wrong with the pack.
    pub fn is_intact(&self) -> bool {
        self.name_matches
            && self.trailer.is_ok()
            && self.damaged.is_empty()
            && self.trailer_mismatch.is_empty()
    }
}

/// The blobs of one repository: deduplicated, compressed, sealed, packed and indexed.
///
/// Safe to use from many threads at once: compression and sealing run on the calling thread,
/// only appending to the open pack is serialized. Memory held by the store is bounded: two
/// open packs (one per [`BlobKind`]), which cost a write buffer on a backend that stages files
/// ([`Backend::stage`]) and at most the pack size plus one blob on one that does not; on the
/// latter and on object stores, one pack per thread being written; and the ids added since
/// the last index file (at most `PACKS_PER_INDEX_FILE` packs' worth).
#[derive(Debug)]
pub struct ChunkStore {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    sealer: Sealer,
    hasher: IdHasher,
    chunker: Chunker,
    master: Option<MasterKey>,
    /// Format major version of the repository (from the config header).
    format_major: u16,
    /// BLAKE3 of the config file, which every key file vouches for.
    config_hash: [u8; 32],
    /// Name of the key file that opened the repository.
    opened_key: Option<String>,
    index: Index,
    state: Mutex<WriteState>,
    /// Index files the last sync could not read, with why.
    unreadable_index_files: Mutex<Vec<(String, String)>>,
    /// Local copies of tree packs, for remote backends.
    tree_packs: Option<PackCache>,
    /// Groups of tree blobs read lately, decoded.
    groups: GroupCache,
}

impl ChunkStore {
    /// Creates a repository on `backend`: writes the config and, when encrypted, the first key
    /// file, then opens it with its fast index at `index_path`.
    ///
    /// Fails with [`Error::AlreadyInitialized`] if a config exists, and with
    /// [`Error::InvalidSetting`] or [`Error::Chunker`] for bad settings; nothing is written then.
    pub fn init(
        backend: Arc<dyn Backend>,
        options: &InitOptions,
        index_path: impl Into<PathBuf>,
    ) -> Result<Self> {
        if backend.exists(FileKind::Config, CONFIG_NAME)? {
            return Err(Error::AlreadyInitialized {
                location: backend.location(),
            });
        }
        let mut repository_id = [0u8; 32];
        getrandom::fill(&mut repository_id).map_err(|e| Error::Crypto {
            context: "drawing the repository id".to_string(),
            reason: e.to_string(),
        })?;
        let encrypted = options.password.is_some();
        let config = RepoConfig {
            format_minor: FORMAT_MINOR,
            repository_id,
            chunker: ChunkerConfig {
                algorithm: CHUNKER_ALGORITHM.to_string(),
                min_size: options.chunker.min_size,
                avg_size: options.chunker.avg_size,
                max_size: options.chunker.max_size,
                normalization: options.chunker.normalization,
                seed_from_key: encrypted,
                seed: if encrypted { 0 } else { options.chunker.seed },
            },
            compression: CompressionConfig {
                zstd_level: options.zstd_level,
            },
            encryption: if encrypted {
                EncryptionConfig::XChaCha20Poly1305Argon2id
            } else {
                EncryptionConfig::None
            },
            pack_size: options.pack_size,
        };
        config.validate()?;
        let config_bytes = config.to_bytes(options.format_major)?;
        let config_hash = *blake3::hash(&config_bytes).as_bytes();
        let master = match &options.password {
            Some(password) => {
                let master = MasterKey::generate()?;
                let key = keys::wrap(
                    &master,
                    repository_id,
                    config_hash,
                    password,
                    options.kdf,
                    &options.key_origin,
                )?;
                backend.write(FileKind::Key, &key.name, &key.bytes)?;
                Some((master, key.name))
            }
            None => None,
        };
        // The config goes last: a repository without one does not exist yet, so a crash
        // above leaves nothing that `open` would accept half-made.
        backend.write(FileKind::Config, CONFIG_NAME, &config_bytes)?;
        Self::assemble(
            backend,
            (options.format_major, config, config_hash),
            master,
            index_path.into(),
        )
    }

    /// Reads the config of the repository on `backend` without opening it (no password needed).
    ///
    /// Fails with [`Error::NoRepository`] if there is none, [`Error::UnsupportedVersion`] if it
    /// was written by a newer major format version.
    pub fn read_config(backend: &dyn Backend) -> Result<RepoConfig> {
        Ok(Self::read_config_file(backend)?.1)
    }

    /// The format major, config and config hash.
    fn read_config_file(backend: &dyn Backend) -> Result<(u16, RepoConfig, [u8; 32])> {
        match backend.read(FileKind::Config, CONFIG_NAME) {
            Ok(bytes) => {
                let (major, config) = RepoConfig::from_bytes(&bytes)?;
                Ok((major, config, *blake3::hash(&bytes).as_bytes()))
            }
            Err(e) if e.is_not_found() => Err(Error::NoRepository {
                location: backend.location(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Opens the repository on `backend`, unlocking it with `password` when it is encrypted,
    /// and brings the fast index at `index_path` up to date with the index files.
    ///
    /// Errors: [`Error::NoRepository`], [`Error::UnsupportedVersion`],
    /// [`Error::WrongPassword`] (no key file opens with the password), [`Error::NoKeys`],
    /// [`Error::Corrupt`] naming a damaged key file when no intact key opens.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: Option<&str>,
        index_path: impl Into<PathBuf>,
    ) -> Result<Self> {
        let config_file = Self::read_config_file(backend.as_ref())?;
        let (_, config, config_hash) = &config_file;
        let master = if config.is_encrypted() {
            let Some(password) = password else {
                return Err(Error::WrongPassword { tried: 0 });
            };
            Some(Self::unlock(
                backend.as_ref(),
                config,
                config_hash,
                password,
            )?)
        } else {
            // Flipping the config to "unencrypted" would make this program write plaintext
            // into an encrypted repository; key files betray such a config.
            if !backend.list(FileKind::Key)?.is_empty() {
                return Err(Error::corrupt(
                    CONFIG_NAME,
                    0,
                    "the config says the repository is not encrypted, but keys/ holds key \
                     files: the config was altered; restore it from a copy",
                ));
            }
            None
        };
        let mut store = Self::assemble(backend, config_file, master, index_path.into())?;
        let (_, entries) = store.sync_index_counting_entries()?;
        if entries >= COMPACT_AFTER_ENTRIES {
            // Only an optimization: another process using the same file makes it fail, and
            // the file then stays as large until the next large absorb.
            let _ = store.index.compact();
        }
        Ok(store)
    }

    fn unlock(
        backend: &dyn Backend,
        config: &RepoConfig,
        config_hash: &[u8; 32],
        password: &str,
    ) -> Result<(MasterKey, String)> {
        let names = backend.list(FileKind::Key)?;
        if names.is_empty() {
            return Err(Error::NoKeys {
                location: backend.location(),
            });
        }
        let mut first_damage = None;
        let mut tried = 0;
        for name in &names {
            let outcome = backend
                .read(FileKind::Key, name)
                .and_then(|bytes| keys::unwrap_key(name, &bytes, password));
            match outcome {
                Ok(Unwrapped::Opened(key)) => {
                    if key.repository_id != config.repository_id {
                        // A key left by an interrupted `init` of another repository here:
                        // it must not hide a key that belongs.
                        first_damage.get_or_insert(Error::ForeignKey {
                            name: name.clone(),
                            found: hex::encode(key.repository_id),
                            expected: config.repository_id_hex(),
                        });
                    } else if key.config_hash != *config_hash {
                        return Err(Error::corrupt(
                            CONFIG_NAME,
                            0,
                            format!(
                                "the config is not the one key file keys/{name} was made for: \
                                 it was altered; restore it from a copy"
                            ),
                        ));
                    } else {
                        return Ok((key.master, name.clone()));
                    }
                }
                Ok(Unwrapped::WrongPassword) => tried += 1,
                // A damaged key file must not hide an intact one that opens: try the rest.
                Err(e) => {
                    first_damage.get_or_insert(e);
                }
            }
        }
        match first_damage {
            Some(damage) => Err(damage),
            None => Err(Error::WrongPassword { tried }),
        }
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        (format_major, config, config_hash): (u16, RepoConfig, [u8; 32]),
        key: Option<(MasterKey, String)>,
        index_path: PathBuf,
    ) -> Result<Self> {
        let (master, opened_key) = key.unzip();
        let (sealer, hasher, seed) = match &master {
            Some(master) => (
                Sealer::encrypted(&master.data_key()),
                IdHasher::Keyed(master.id_key()),
                master.chunker_seed(),
            ),
            None => (Sealer::Plain, IdHasher::Plain, config.chunker.seed),
        };
        let chunker = Chunker::new(config.chunker_params(seed)?)?;
        let index = Index::open(&index_path, &config.repository_id)?;
        Ok(Self {
            backend,
            config,
            sealer,
            hasher,
            chunker,
            master,
            format_major,
            config_hash,
            opened_key,
            index,
            state: Mutex::new(WriteState::default()),
            unreadable_index_files: Mutex::new(Vec::new()),
            tree_packs: None,
            groups: GroupCache::default(),
        })
    }

    /// Keeps a local copy of every tree pack read, in `dir`, and reads trees from it: for
    /// repositories on remote stores, where each tree would otherwise cost a request. Blobs
    /// read from a copy are verified as any other; a copy that fails is dropped and the read
    /// goes to the backend.
    pub fn with_tree_pack_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tree_packs = Some(PackCache::new(dir.into()));
        self
    }

    /// Deletes pack `pack` from the repository (and its local copy, if any).
    ///
    /// Errors: as [`Backend::delete`].
    pub fn delete_pack(&self, pack: &str) -> Result<()> {
        self.backend.delete(FileKind::Pack, pack)?;
        if let Some(cache) = &self.tree_packs {
            cache.forget(pack);
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, WriteState> {
        // Every critical section leaves the state consistent before anything can panic, so a
        // poisoned lock holds valid data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The repository config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The chunker of this repository (seeded from the key when encrypted).
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// The id hasher of this repository (keyed when encrypted).
    pub fn hasher(&self) -> &IdHasher {
        &self.hasher
    }

    /// The id `data` has in this repository.
    pub fn blob_id(&self, data: &[u8]) -> ChunkId {
        self.hasher.hash(data)
    }

    /// Seals `plaintext` with the repository's key (or checksums it when unencrypted), bound
    /// to `context`; for the manifests and other files the upper layers write.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        self.sealer.seal(plaintext, context)
    }

    /// Opens what [`ChunkStore::seal`] sealed with the same `context`; damage or another
    /// context is [`Error::Corrupt`] naming `file`.
    pub fn open_sealed(&self, sealed: &[u8], context: &[u8], file: &str) -> Result<Vec<u8>> {
        self.sealer.open(sealed, context, file, 0)
    }

    /// Appends the stored form of a blob (compressed when that helps, then sealed) to `out`
    /// without storing it, and returns its encoding. For measuring compression and the cost
    /// of encoding (`analyze`, benchmarks).
    pub fn encode_blob(
        &self,
        kind: BlobKind,
        id: &ChunkId,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Encoding> {
        blob::encode_into(
            &self.sealer,
            self.format_major,
            self.config.compression.zstd_level,
            id,
            kind,
            data,
            out,
        )
    }

    /// Whether the repository has the blob (stored earlier, or added in this session). Like
    /// the deduplication of [`ChunkStore::add_blob`], it may miss a blob that another process
    /// indexed since this one last changed the index.
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        if self.state().pending.contains_key(id) {
            return Ok(true);
        }
        // A blob no longer pending was absorbed before it left `pending`, so the shared view,
        // whose generation is read after that, sees it.
        Ok(self.index.lookup_shared(id)?.0.is_some())
    }

    /// A checker answering, for many lists of blob ids in a row, whether the repository has
    /// all of them: for reusing the chunk lists of unchanged files from an earlier snapshot,
    /// which is safe only while their blobs are still there (a repair may have dropped damaged
    /// ones). It reads the index as it was when made (plus blobs added in this session);
    /// make a new one now and then to see blobs other processes indexed since.
    pub fn blob_checker(&self) -> Result<BlobChecker<'_>> {
        Ok(BlobChecker {
            store: self,
            index: self.index.snapshot()?,
        })
    }

    /// A locator answering, for many blobs in a row, where each is ([`BlobLocator`]): for
    /// restore, which plans every read before reading any pack. It reads the index as it was
    /// when made (plus the blobs of this session in written packs).
    ///
    /// Errors: [`Error::IndexDb`] naming `index.redb` when the index cannot be read.
    pub fn blob_locator(&self) -> Result<BlobLocator<'_>> {
        Ok(BlobLocator {
            store: self,
            index: self.index.snapshot()?,
        })
    }

    /// Adds a blob. A blob whose id is already known stores nothing.
    pub fn add_blob(&self, kind: BlobKind, data: &[u8]) -> Result<AddOutcome> {
        let id = self.hasher.hash(data);
        self.add_blob_with_id(kind, id, data)
    }

    /// Adds a blob whose id the caller computed with [`ChunkStore::blob_id`] (the backup
    /// pipeline hashes in parallel before it calls this). The id is verified on every read.
    pub fn add_blob_with_id(&self, kind: BlobKind, id: ChunkId, data: &[u8]) -> Result<AddOutcome> {
        let known = AddOutcome {
            id,
            stored: false,
            stored_bytes: 0,
        };
        if data.len() > MAX_BLOB_SIZE {
            return Err(Error::BlobTooLarge {
                size: data.len(),
                max: MAX_BLOB_SIZE,
            });
        }
        loop {
            let (found, generation) = self.index.lookup_shared(&id)?;
            if found.is_some() {
                return Ok(known);
            }
            let mut state = self.state();
            // Writing an index file absorbs its blobs, then takes them out of `pending` under
            // this lock: if that happened since the view was made, the blob may be in neither,
            // so look again in a new view.
            if self.index.generation() != generation {
                continue;
            }
            if state.pending.contains_key(&id) {
                return Ok(known);
            }
            // Reserve the id, so that a thread adding the same content concurrently stores
            // nothing.
            state.pending.insert(id, Pending::Open(kind));
            break;
        }
        let result = self.store_new_blob(kind, id, data);
        if result.is_err() {
            self.state().pending.remove(&id);
        }
        result
    }

    /// Whether tree blobs are gathered into groups: in format 2, when compression is on.
    fn groups_trees(&self) -> bool {
        self.format_major >= 2 && self.config.compression.zstd_level != 0
    }

    /// Stores a new blob whose id the caller reserved in `pending`: a small tree goes into the
    /// next group (format 2), anything else into a blob of its own.
    fn store_new_blob(&self, kind: BlobKind, id: ChunkId, data: &[u8]) -> Result<AddOutcome> {
        if kind == BlobKind::Tree && self.groups_trees() && data.len() <= GROUP_MEMBER_MAX {
            let full = {
                let mut state = self.state();
                state.group.push(id, data);
                (state.group.len() >= group::GROUP_TARGET).then(|| std::mem::take(&mut state.group))
            };
            if let Some(full) = full {
                self.store_group(full)?;
            }
            // The member's share of its group's sealed bytes is known only once the group is
            // sealed: its content length stands for it.
            return Ok(AddOutcome {
                id,
                stored: true,
                stored_bytes: data.len() as u64,
            });
        }
        self.store_apart(kind, id, data)
    }

    /// Stores a new blob, reserved in `pending`, as a blob of its own.
    fn store_apart(&self, kind: BlobKind, id: ChunkId, data: &[u8]) -> Result<AddOutcome> {
        thread_local! {
            static SEALED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SEALED.with_borrow_mut(|sealed| {
            sealed.clear();
            let encoding = blob::encode_into(
                &self.sealer,
                self.format_major,
                self.config.compression.zstd_level,
                &id,
                kind,
                data,
                sealed,
            )?;
            // `data.len()` <= MAX_BLOB_SIZE, which fits in a u32.
            let raw_length = data.len() as u32;
            self.append_to_pack(kind, sealed.len(), |open| {
                open.add(id, kind, encoding, raw_length, sealed)
            })?;
            Ok(AddOutcome {
                id,
                stored: true,
                stored_bytes: sealed.len() as u64,
            })
        })
    }

    /// Seals a group of tree blobs (their ids reserved in `pending`) into the open tree pack.
    /// On failure the members are lost: the threads that added them were told they were
    /// stored, so the next flush fails.
    fn store_group(&self, group: GroupBuilder) -> Result<()> {
        let ids = group.ids();
        let result = group
            .seal(
                &self.sealer,
                self.format_major,
                self.config.compression.zstd_level,
                BlobKind::Tree,
            )
            .and_then(|sealed| match sealed {
                SealedGroup::Together { sealed, members } => {
                    self.append_to_pack(BlobKind::Tree, sealed.len(), |open| {
                        open.add_group(&members, &sealed)
                    })
                }
                SealedGroup::Apart(members) => {
                    for (id, data) in members {
                        self.store_apart(BlobKind::Tree, id, &data)?;
                    }
                    Ok(())
                }
            });
        if let Err(e) = &result {
            // Only the members that reached no pack: an error may come after some (stored
            // apart) or all of them (an index file that could not be written) were stored.
            let mut state = self.state();
            let in_open_pack: HashSet<ChunkId> = state
                .tree
                .as_ref()
                .map(|open| open.entries().iter().map(|e| e.id).collect())
                .unwrap_or_default();
            let unstored: Vec<ChunkId> = ids
                .into_iter()
                .filter(|id| {
                    matches!(state.pending.get(id), Some(Pending::Open(_)))
                        && !in_open_pack.contains(id)
                })
                .collect();
            state.lose(&unstored, e);
        }
        result
    }

    /// Appends `len` sealed bytes (blobs whose ids the caller reserved in `pending`) to the
    /// open pack of `kind` with `add`, and writes the pack (and an index file) when full.
    fn append_to_pack(
        &self,
        kind: BlobKind,
        len: usize,
        add: impl FnOnce(&mut PackBuilder) -> Result<()>,
    ) -> Result<()> {
        let full = {
            let mut state = self.state();
            let pack_size = u64::from(self.config.pack_size);
            let open = match state.open_pack(kind) {
                Some(open) => open,
                slot @ None => slot.insert(self.start_pack(pack_size as usize + len)?),
            };
            if let Err(e) = add(open) {
                // A staged pack may hold part of the blob: none of it can be trusted now.
                let ids: Vec<ChunkId> = open.entries().iter().map(|e| e.id).collect();
                *state.open_pack(kind) = None;
                state.lose(&ids, &e);
                return Err(e);
            }
            if open.len() >= pack_size || open.entries().len() >= MAX_PACK_ENTRIES {
                state.open_pack(kind).take()
            } else {
                None
            }
        };
        if let Some(full) = full {
            self.write_pack(full)?;
            self.write_index_if_due(false)?;
        }
        Ok(())
    }

    /// Copies blob `entry` of pack `pack`, given as its sealed bytes (its group's, when
    /// grouped), into the packs this store is writing, after verifying it against its id: for
    /// prune, which rewrites the used blobs of packs it deletes. A blob of its own is copied
    /// bit for bit (a seal binds a blob to its id and kind, not to its pack); a member of a
    /// group joins the next group with the other members copied. It is stored even though the
    /// index knows the blob in `pack`; a blob already copied in this session is not copied
    /// again. Like [`ChunkStore::add_blob`], the copy is durable after the next
    /// [`ChunkStore::flush`].
    ///
    /// Errors: [`Error::Corrupt`] naming the pack when the blob is damaged (nothing is copied).
    pub fn repack_blob(&self, pack: &ChunkId, entry: &PackEntry, sealed: &[u8]) -> Result<()> {
        let location = entry.location(*pack);
        let content = self.read_located(&entry.id, &location, || Ok(sealed.to_vec()))?;
        {
            let mut state = self.state();
            if state.pending.contains_key(&entry.id) {
                return Ok(());
            }
            state.pending.insert(entry.id, Pending::Open(entry.kind));
        }
        let result = if entry.encoding == Encoding::Grouped {
            self.store_new_blob(entry.kind, entry.id, &content)
                .map(|_| ())
        } else {
            self.append_to_pack(entry.kind, sealed.len(), |open| {
                open.add(
                    entry.id,
                    entry.kind,
                    entry.encoding,
                    entry.raw_length,
                    sealed,
                )
            })
        };
        if result.is_err() {
            self.state().pending.remove(&entry.id);
        }
        result
    }

    /// A new, empty pack: staged in the backend when it can (an open pack then costs no
    /// memory), otherwise in memory with room for `capacity` bytes.
    fn start_pack(&self, capacity: usize) -> Result<PackBuilder> {
        let version = pack::listing_version(self.format_major);
        match self.backend.stage(FileKind::Pack)? {
            Some(file) => PackBuilder::staged(version, file),
            None => Ok(PackBuilder::new(version, capacity)),
        }
    }

    /// Seals and writes a pack; its blobs become readable and wait for an index file.
    fn write_pack(&self, builder: PackBuilder) -> Result<()> {
        let ids: Vec<ChunkId> = builder.entries().iter().map(|e| e.id).collect();
        let written = builder
            .finish(&self.sealer)
            .and_then(|pack| pack.store(self.backend.as_ref()));
        let mut state = self.state();
        match written {
            Ok((pack, size, entries)) => {
                for entry in &entries {
                    state
                        .pending
                        .insert(entry.id, Pending::Written(entry.location(pack)));
                }
                state.unindexed_entries += entries.len();
                state.unindexed.push(IndexedPack {
                    pack,
                    size,
                    blobs: entries,
                });
                Ok(())
            }
            Err(e) => {
                // The blobs of a pack that did not reach the backend are not stored.
                state.lose(&ids, &e);
                Err(e)
            }
        }
    }

    /// Writes an index file for the written packs, if there are any and either `always` is set
    /// or enough have gathered.
    fn write_index_if_due(&self, always: bool) -> Result<()> {
        let packs = {
            let mut state = self.state();
            let due = state.unindexed.len() >= PACKS_PER_INDEX_FILE
                || state.unindexed_entries >= INDEX_FILE_DUE_ENTRIES;
            if state.unindexed.is_empty() || !(always || due) {
                return Ok(());
            }
            state.unindexed_entries = 0;
            std::mem::take(&mut state.unindexed)
        };
        let version = pack::listing_version(self.format_major);
        let result = index_file::encode(&self.sealer, version, &packs).and_then(|(name, bytes)| {
            self.backend.write(FileKind::Index, &name, &bytes)?;
            self.index.absorb(&[&name], &packs)
        });
        let mut state = self.state();
        match result {
            Ok(()) => {
                for pack in &packs {
                    for entry in &pack.blobs {
                        state.pending.remove(&entry.id);
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Keep them for the next attempt: the packs are written and readable.
                state.unindexed_entries += packs.iter().map(|p| p.blobs.len()).sum::<usize>();
                state.unindexed.extend(packs);
                Err(e)
            }
        }
    }

    /// Makes every blob added before this call durable: seals and writes the open packs, then
    /// writes one index file listing every pack not yet listed, and records it in the fast
    /// index. Blobs added concurrently with the call may go to the next flush.
    ///
    /// `Ok` guarantees that every blob whose add returned `Ok` since the previous flush is
    /// stored. If any pack could not be written since then, this returns
    /// [`Error::BlobsLost`] (once): nothing that refers to those blobs may be written, and they
    /// must be added again.
    pub fn flush(&self) -> Result<()> {
        // Write every pack even if one fails, so that no blob is left stranded as "pending".
        let mut first_error = None;
        let group = std::mem::take(&mut self.state().group);
        if !group.is_empty()
            && let Err(e) = self.store_group(group)
        {
            first_error = Some(e);
        }
        let open: Vec<PackBuilder> = {
            let mut state = self.state();
            [state.data.take(), state.tree.take()]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect()
        };
        for pack in open {
            if let Err(e) = self.write_pack(pack) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.write_index_if_due(true) {
            first_error.get_or_insert(e);
        }
        if let Some((count, reason)) = self.state().lost.take() {
            return Err(Error::BlobsLost { count, reason });
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Where a blob is, if the repository has it in a written pack.
    pub fn locate(&self, id: &ChunkId) -> Result<Option<BlobLocation>> {
        if let Some(Pending::Written(location)) = self.state().pending.get(id) {
            return Ok(Some(*location));
        }
        // The shared view answers without a read transaction per blob (a tree walk asks once
        // per folder); it may predate another handle's latest change, so a miss asks the index
        // as it is now.
        match self.index.lookup_shared(id)?.0 {
            Some(location) => Ok(Some(location)),
            None => self.index.lookup(id),
        }
    }

    /// Returns a blob's content, verified against its id.
    ///
    /// Errors: [`Error::BlobNotFound`] when the repository does not have it;
    /// [`Error::Corrupt`] naming the pack and offset when the stored bytes are damaged.
    pub fn get_blob(&self, id: &ChunkId) -> Result<Vec<u8>> {
        match self.get_blob_once(id) {
            // The location came from an index view made before another process's prune
            // deleted the pack (after writing the blob into another one and rebuilding the
            // index): ask the index as it is now.
            Err(e) if e.is_not_found() => {
                self.index.changed();
                self.get_blob_once(id)
            }
            result => result,
        }
    }

    fn get_blob_once(&self, id: &ChunkId) -> Result<Vec<u8>> {
        if let Some(location) = self.locate(id)? {
            let pack = location.pack.to_hex();
            let from_backend = || {
                self.backend.read_range(
                    FileKind::Pack,
                    &pack,
                    location.offset,
                    u64::from(location.length),
                )
            };
            if location.kind == BlobKind::Tree
                && let Some(cache) = &self.tree_packs
            {
                let from_copy = || {
                    cache.read_range(
                        self.backend.as_ref(),
                        &pack,
                        location.offset,
                        u64::from(location.length),
                    )
                };
                match self.read_located(id, &location, from_copy) {
                    Ok(blob) => return Ok(blob),
                    // The local copy may be what is damaged: drop it, ask the store.
                    Err(_) => cache.forget(&pack),
                }
            }
            return self.read_located(id, &location, from_backend);
        }
        // A blob added in this session may still sit in the group being gathered or in an
        // open pack.
        let sealed = {
            let mut state = self.state();
            let kind = match state.pending.get(id) {
                Some(Pending::Open(kind)) => Some(*kind),
                _ => None,
            };
            if let Some(content) = state.group.get(id) {
                return Ok(content);
            }
            match kind.and_then(|kind| state.open_pack(kind).as_mut()) {
                Some(open) => match open.entries().iter().find(|e| e.id == *id).copied() {
                    Some(entry) => Some((entry, open.sealed_bytes(&entry)?)),
                    None => None,
                },
                None => None,
            }
        };
        if let Some((entry, sealed)) = sealed {
            // Not through the group cache: the pack has no name yet.
            let location = entry.location(ChunkId::from_bytes([0; 32]));
            return self.decode_blob(id, &location, &sealed);
        }
        Err(Error::BlobNotFound { id: *id })
    }

    /// Blob `id` at `location`, whose stored bytes `read` returns (a group's are read only
    /// when the group is not in the cache of decoded groups).
    fn read_located(
        &self,
        id: &ChunkId,
        location: &BlobLocation,
        read: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        if location.encoding == Encoding::Grouped {
            let group = self
                .groups
                .get_or_open(&self.sealer, self.format_major, location, read)?;
            return group::member(&self.hasher, id, location, &group);
        }
        self.decode_blob(id, location, &read()?)
    }

    /// Opens blob `id` from `sealed`, its stored bytes as read from its pack at `location`
    /// (from [`ChunkStore::locate`] or a [`BlobLocator`]): for readers that fetch many blobs
    /// of a pack with one ranged read and cut them out of it (restore). `sealed` must be
    /// exactly the `location.length` bytes at `location.offset` of `location.pack`.
    ///
    /// The returned content is guaranteed to be `location.raw_length` bytes that hash to `id`,
    /// as with [`ChunkStore::get_blob`]. Errors: [`Error::Corrupt`] naming the pack and offset
    /// when the bytes do not open (damaged, or not the blob's), do not decompress, or do not
    /// match the id.
    pub fn open_blob(
        &self,
        id: &ChunkId,
        location: &BlobLocation,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        self.decode_blob(id, location, sealed)
    }

    fn decode_blob(&self, id: &ChunkId, location: &BlobLocation, sealed: &[u8]) -> Result<Vec<u8>> {
        blob::decode(
            &self.sealer,
            self.format_major,
            &self.hasher,
            id,
            location,
            sealed,
        )
    }

    /// Brings the fast index up to date with every index file in the repository that it has
    /// not absorbed yet (those written by other processes, or before it was deleted). Returns
    /// how many index files were read. An index file that cannot be read is skipped and
    /// reported by [`ChunkStore::unreadable_index_files`].
    ///
    /// When an index file it absorbed is gone (prune or repair replaced it, and may have
    /// deleted packs it listed), the fast index is emptied and rebuilt from every index file,
    /// so that it never points into a deleted pack.
    pub fn sync_index(&self) -> Result<usize> {
        self.sync_index_counting_entries().map(|(files, _)| files)
    }

    /// [`ChunkStore::sync_index`], returning the index files read and the entries they held.
    fn sync_index_counting_entries(&self) -> Result<(usize, usize)> {
        // Taken before the listing: a file added after it changes the stamp, so a listing
        // recorded under this stamp is never newer than what the stamp vouches for.
        let stamp = self.backend.listing_stamp(FileKind::Index);
        let recorded = self.index.index_listing_stamp()?;
        if let Some(stamp) = &stamp
            && recorded.as_deref() == Some(stamp.as_bytes())
        {
            // No index file was added or deleted since a listing whose every file was
            // absorbed (and readable: a stamp is recorded only then, so nothing is left to
            // report). Another process sharing the fast index may still have rebuilt it
            // meanwhile (as a repair does): look with a new view, as after any sync.
            self.unreadable_index_files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            self.index.changed();
            return Ok((0, 0));
        }
        let mut absorbed = self.index.absorbed_index_files()?;
        let listed = self.backend.list(FileKind::Index)?;
        let listed_set: std::collections::HashSet<&str> =
            listed.iter().map(String::as_str).collect();
        if absorbed
            .iter()
            .any(|name| !listed_set.contains(name.as_str()))
        {
            self.index.clear()?;
            absorbed.clear();
        }
        let mut read = 0;
        let mut entries = 0;
        let mut unreadable = Vec::new();
        // Index files are absorbed several per transaction: on a large index each transaction
        // rewrites most of the B-tree's leaves, whatever its size.
        let mut batch = AbsorbBatch::default();
        for name in &listed {
            if absorbed.contains(name) {
                continue;
            }
            let bytes = self.backend.read(FileKind::Index, name)?;
            match index_file::decode(&self.sealer, name, &bytes) {
                Ok(packs) => {
                    let count = packs.iter().map(|p| p.blobs.len()).sum::<usize>();
                    entries += count;
                    batch.entries += count;
                    batch.packs.extend(packs);
                    batch.files.push(name.clone());
                    if batch.entries >= ABSORB_BATCH_ENTRIES {
                        batch.absorb_into(&self.index)?;
                    }
                }
                // One damaged index file must not lock the user out of the repository (and
                // out of `check` and `repair index`): its blobs are unknown until it is
                // repaired, which readers report as a missing blob.
                Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                    unreadable.push((name.clone(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            }
            read += 1;
        }
        batch.absorb_into(&self.index)?;
        // Another handle may have rebuilt or changed the index file since this one's shared
        // view was made (a prune, or a repair, by another process): look with a new one.
        self.index.changed();
        // The next sync need not list `index/` again until a file is added or deleted there.
        // Not when a file could not be read: it is reported on every sync until repaired.
        // Recording it is only a shortcut for the next sync: a failure to must not fail
        // this one.
        if let Some(stamp) = stamp
            && unreadable.is_empty()
            && recorded.as_deref() != Some(stamp.as_bytes())
        {
            let _ = self
                .index
                .set_index_listing_stamp(stamp.as_bytes(), &listed);
        }
        *self
            .unreadable_index_files
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = unreadable;
        Ok((read, entries))
    }

    /// The index files the last [`ChunkStore::sync_index`] could not read (damaged, or of a
    /// newer version), each with why: the blobs they list are unknown to this store.
    pub fn unreadable_index_files(&self) -> Vec<(String, String)> {
        self.unreadable_index_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds the fast index from the index files alone (fast). Returns how many were read.
    pub fn rebuild_index(&self) -> Result<usize> {
        self.index.clear()?;
        self.sync_index()
    }

    /// Rebuilds the fast index from the trailers of every pack (slow: reads the end of every
    /// pack; needed when index files are lost). Returns how many packs were read.
    pub fn rebuild_index_from_packs(&self) -> Result<usize> {
        self.index.clear()?;
        let names = self.backend.list(FileKind::Pack)?;
        for chunk in names.chunks(256) {
            let mut packs = Vec::with_capacity(chunk.len());
            for name in chunk {
                let pack: ChunkId = name.parse().map_err(|_| {
                    Error::corrupt(
                        FileKind::Pack.display_path(name),
                        0,
                        "pack name is not a 64-digit hex id",
                    )
                })?;
                packs.push(IndexedPack {
                    pack,
                    size: self.backend.size(FileKind::Pack, name)?,
                    blobs: pack::read_pack_trailer(self.backend.as_ref(), &self.sealer, name)?,
                });
            }
            self.index.absorb(&[], &packs)?;
        }
        Ok(names.len())
    }

    /// The blobs listed in the trailer of pack `pack`, checked.
    pub fn pack_entries(&self, pack: &ChunkId) -> Result<Vec<PackEntry>> {
        pack::read_pack_trailer(self.backend.as_ref(), &self.sealer, &pack.to_hex())
    }

    /// Every pack listed by every index file, read from the backend (for check and prune).
    pub fn read_index_files(&self) -> Result<Vec<(String, Vec<IndexedPack>)>> {
        let mut files = Vec::new();
        for name in self.backend.list(FileKind::Index)? {
            let packs = self.read_index_file(&name)?;
            files.push((name, packs));
        }
        Ok(files)
    }

    /// The packs listed by index file `name`, checked; damage is [`Error::Corrupt`] naming
    /// `index/NAME`.
    pub fn read_index_file(&self, name: &str) -> Result<Vec<IndexedPack>> {
        let bytes = self.backend.read(FileKind::Index, name)?;
        index_file::decode(&self.sealer, name, &bytes)
    }

    /// Writes an index file listing `packs` and returns its name, without recording it in
    /// the fast index (for prune and repair, which rebuild the fast index when done).
    pub fn write_index_file(&self, packs: &[IndexedPack]) -> Result<String> {
        let version = pack::listing_version(self.format_major);
        let (name, bytes) = index_file::encode(&self.sealer, version, packs)?;
        self.backend.write(FileKind::Index, &name, &bytes)?;
        Ok(name)
    }

    /// Every snapshot file of the repository: its name and its content, or the error reading
    /// it gave (`NotFound` when it was deleted after the listing), in the order the backend
    /// lists them.
    ///
    /// Snapshot files never change (each is named by the BLAKE3 hash of its content), so a
    /// copy kept beside the fast index serves every file read before: only new files are read
    /// from the backend, several at a time on a remote one. A copy is kept only of content
    /// that matches its name, and dropped once its file is gone from the listing.
    pub fn read_snapshot_files(&self) -> Result<Vec<(String, Result<Vec<u8>>)>> {
        Ok(self
            .read_snapshot_files_except(|_| false)?
            .into_iter()
            .map(|(name, bytes)| {
                // Nothing is known, so every file was read: `None` cannot come back.
                let bytes = bytes.unwrap_or_else(|| {
                    Err(Error::NotFound {
                        kind: "snapshot",
                        name: name.clone(),
                    })
                });
                (name, bytes)
            })
            .collect())
    }

    /// Like [`ChunkStore::read_snapshot_files`], but the files `known` selects (by name) are
    /// listed without being read: their content is `None`. For a caller that keeps what it
    /// needs of the files it read before ([`ChunkStore::update_kept_values`]).
    pub fn read_snapshot_files_except(
        &self,
        known: impl Fn(&str) -> bool,
    ) -> Result<Vec<ListedSnapshotFile>> {
        let names = self.backend.list(FileKind::Snapshot)?;
        let (copies, stale) = self.index.cached_snapshot_files(&names, &known)?;
        let missing: Vec<usize> = (0..names.len())
            .filter(|&i| copies[i].is_none() && !known(&names[i]))
            .collect();
        let mut read: Vec<Result<Vec<u8>>> = Vec::with_capacity(missing.len());
        // Remote reads wait on the network, not on a core: run them 8 at a time.
        let threads = if self.backend.is_remote() { 8 } else { 1 };
        if threads == 1 || missing.len() < 2 {
            read.extend(
                missing
                    .iter()
                    .map(|&i| self.backend.read(FileKind::Snapshot, &names[i])),
            );
        } else {
            let per_thread = missing.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let workers: Vec<_> = missing
                    .chunks(per_thread)
                    .map(|part| {
                        scope.spawn(|| {
                            part.iter()
                                .map(|&i| self.backend.read(FileKind::Snapshot, &names[i]))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for worker in workers {
                    match worker.join() {
                        Ok(part) => read.extend(part),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
            });
        }
        let keep: HashSet<&str> = names.iter().map(String::as_str).collect();
        let add: Vec<(&str, &[u8])> = missing
            .iter()
            .zip(&read)
            .filter_map(|(&i, bytes)| {
                let bytes = bytes.as_ref().ok()?;
                (blake3::hash(bytes).to_hex().as_str() == names[i])
                    .then(|| (names[i].as_str(), bytes.as_slice()))
            })
            .collect();
        if !add.is_empty() || stale {
            self.index.update_snapshot_files(&add, &keep)?;
        }
        let mut read = read.into_iter();
        Ok(names
            .into_iter()
            .zip(copies)
            .map(|(name, copy)| match copy {
                Some(bytes) => (name, Some(Ok(bytes))),
                None if known(&name) => (name, None),
                None => {
                    // One read per missing file, in order: never short.
                    let bytes = read.next().unwrap_or_else(|| {
                        Err(Error::NotFound {
                            kind: "snapshot",
                            name: name.clone(),
                        })
                    });
                    (name, Some(bytes))
                }
            })
            .collect())
    }

    /// The values kept beside the fast index ([`ChunkStore::update_kept_values`]) as they
    /// are now: every read through the view sees the same state, whatever other processes
    /// keep meanwhile. Errors are the fast index's own.
    pub fn kept_values(&self) -> Result<KeptView<'_>> {
        Ok(KeptView {
            reader: self.index.kept_reader()?,
            sealer: &self.sealer,
        })
    }

    /// Runs `change` on the values kept beside the fast index, in one transaction: what it
    /// reads through [`KeptValues`] is what its writes replace, whatever other processes
    /// change meanwhile, and nothing is written when it fails.
    ///
    /// Kept values are for what a caller derived from the repository and would rather not
    /// derive again, such as decoded snapshot manifests. They are sealed with the
    /// repository's key, open only under the key they were kept under, are never part of the
    /// repository, and are lost with the fast index or when it is used for another
    /// repository. In an unencrypted repository the seal is a checksum: it catches damage,
    /// not a deliberate change by whoever can write the cache.
    pub fn update_kept_values<T>(
        &self,
        change: impl FnOnce(&mut KeptValues<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.index.update_kept_values(|table| {
            change(&mut KeptValues {
                table,
                sealer: &self.sealer,
            })
        })
    }

    /// The stamp of the repository's files of `kind` as they are now, when the backend can
    /// tell one ([`Backend::listing_stamp`]): the same stamp later means the same files.
    pub fn listing_stamp(&self, kind: FileKind) -> Option<crate::ListingStamp> {
        self.backend.listing_stamp(kind)
    }

    /// The whole content of pack `pack`.
    pub fn read_pack(&self, pack: &ChunkId) -> Result<Vec<u8>> {
        self.backend.read(FileKind::Pack, &pack.to_hex())
    }

    /// Reads pack `pack` whole and verifies it: its name, its trailer, and every blob of
    /// `expected` (the blobs the index lists in it) against its id. Damage is reported in the
    /// [`PackReport`]; an error means the pack could not be read at all (for example
    /// [`Error::NotFound`]).
    pub fn verify_pack(&self, pack: &ChunkId, expected: &[PackEntry]) -> Result<PackReport> {
        let bytes = self.read_pack(pack)?;
        Ok(self.verify_pack_bytes(pack, &bytes, expected))
    }

    /// [`ChunkStore::verify_pack`] over a pack already read.
    pub fn verify_pack_bytes(
        &self,
        pack: &ChunkId,
        bytes: &[u8],
        expected: &[PackEntry],
    ) -> PackReport {
        let name = pack.to_hex();
        let name_matches = blake3::hash(bytes).as_bytes() == pack.as_bytes();
        let trailer = pack::trailer_from_bytes(&self.sealer, &name, bytes);
        let mut damaged = Vec::new();
        // The last group opened: the members of a group are listed one after another, and
        // opening it for each would cost a decompression of the whole group per member.
        let mut last_group: Option<(u64, u32, Vec<u8>)> = None;
        for entry in expected {
            let location = entry.location(*pack);
            let result = match entry.sealed_in(bytes) {
                Some(sealed) if entry.encoding == Encoding::Grouped => {
                    let opened = match last_group.take() {
                        Some((offset, length, group))
                            if (offset, length) == (entry.offset, entry.length) =>
                        {
                            Ok(group)
                        }
                        _ => group::open(&self.sealer, self.format_major, &location, sealed),
                    };
                    opened.and_then(|group| {
                        let member = group::member(&self.hasher, &entry.id, &location, &group);
                        last_group = Some((entry.offset, entry.length, group));
                        member
                    })
                }
                Some(sealed) => self.decode_blob(&entry.id, &location, sealed),
                None => Err(Error::ShortRead {
                    kind: FileKind::Pack.label(),
                    name: name.clone(),
                    offset: entry.offset,
                    len: u64::from(entry.length),
                    size: bytes.len() as u64,
                }),
            };
            if let Err(e) = result {
                damaged.push((*entry, e));
            }
        }
        let trailer_mismatch = match &trailer {
            Ok(listed) => {
                let listed: HashMap<ChunkId, &PackEntry> =
                    listed.iter().map(|e| (e.id, e)).collect();
                expected
                    .iter()
                    .filter(|e| listed.get(&e.id).is_none_or(|l| *l != *e))
                    .map(|e| e.id)
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        PackReport {
            name_matches,
            trailer,
            damaged,
            trailer_mismatch,
        }
    }

    /// The repository's format major version (from its config's header).
    pub fn format_major(&self) -> u16 {
        self.format_major
    }

    /// The name of the key file that opened this repository (`None` when unencrypted).
    pub fn opened_key(&self) -> Option<&str> {
        self.opened_key.as_deref()
    }

    /// Number of blobs in the fast index.
    pub fn indexed_blob_count(&self) -> Result<u64> {
        self.index.len()
    }

    /// A new, unused lock file name (64 random hex digits).
    pub fn new_lock_name(&self) -> Result<String> {
        lock_file::random_name()
    }

    /// Writes (or rewrites, when refreshing) lock file `name`, sealed with the repository key.
    pub fn write_lock(&self, name: &str, info: &LockInfo) -> Result<()> {
        let bytes = lock_file::encode(&self.sealer, info)?;
        self.backend.write(FileKind::Lock, name, &bytes)
    }

    /// Reads lock file `name`: [`Error::NotFound`] when it is gone, [`Error::Corrupt`] naming
    /// it when it is damaged or was sealed with another key.
    pub fn read_lock(&self, name: &str) -> Result<LockInfo> {
        let bytes = self.backend.read(FileKind::Lock, name)?;
        lock_file::decode(&self.sealer, name, &bytes)
    }

    /// Every lock file, each with what it says or why it cannot be read. A lock removed while
    /// listing is left out.
    pub fn list_locks(&self) -> Result<Vec<(String, Result<LockInfo>)>> {
        let mut locks = Vec::new();
        for name in self.backend.list(FileKind::Lock)? {
            match self.read_lock(&name) {
                Err(e) if e.is_not_found() => {}
                other => locks.push((name, other)),
            }
        }
        Ok(locks)
    }

    /// Deletes lock file `name` (idempotent).
    pub fn remove_lock(&self, name: &str) -> Result<()> {
        self.backend.delete(FileKind::Lock, name)
    }

    /// Adds a key file that opens this repository with `password`; returns its name.
    pub fn add_key(&self, password: &str, kdf: KdfParams, origin: &KeyOrigin) -> Result<String> {
        let Some(master) = &self.master else {
            return Err(Error::InvalidSetting {
                name: "key",
                value: "add".to_string(),
                expected: "an encrypted repository (this one is not encrypted: it has no keys)"
                    .to_string(),
            });
        };
        let key = keys::wrap(
            master,
            self.config.repository_id,
            self.config_hash,
            password,
            kdf,
            origin,
        )?;
        self.backend.write(FileKind::Key, &key.name, &key.bytes)?;
        Ok(key.name)
    }

    /// The key files of the repository with who made them and when.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        self.backend
            .list(FileKind::Key)?
            .into_iter()
            .map(|name| self.key_info(&name))
            .collect()
    }

    /// The public part of key file `name`, checked against its name and checksum; damage is
    /// [`Error::Corrupt`] naming `keys/NAME`.
    pub fn key_info(&self, name: &str) -> Result<KeyInfo> {
        let bytes = self.backend.read(FileKind::Key, name)?;
        keys::info(name, &bytes)
    }

    /// Removes key file `name`; removing the last key is refused, since nothing could open the
    /// repository afterwards.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        let names = self.backend.list(FileKind::Key)?;
        if !names.iter().any(|n| n == name) {
            return Err(Error::NotFound {
                kind: FileKind::Key.label(),
                name: name.to_string(),
            });
        }
        if names.len() == 1 {
            return Err(Error::InvalidSetting {
                name: "key",
                value: name.to_string(),
                expected: "another key to remain: the last key cannot be removed, add one first"
                    .to_string(),
            });
        }
        self.backend.delete(FileKind::Key, name)
    }
}

/// How many blob entries [`ChunkStore::sync_index`] gathers from index files before it
/// absorbs them in one transaction: about 15 MiB of decoded entries held at once, for half
/// the time of one transaction per file on an index of 10M entries (`docs/benchmarks.md`).
const ABSORB_BATCH_ENTRIES: usize = 262_144;

/// Opening a store that absorbs at least this many entries (a new cache of a large
/// repository, or the index files a prune rewrote) compacts `index.redb` afterwards: it
/// would otherwise stay 2 to 2.6 times the size of its entries (`docs/benchmarks.md`,
/// "Compacting the index").
const COMPACT_AFTER_ENTRIES: usize = 1_000_000;

/// Index files read by [`ChunkStore::sync_index`] and not absorbed yet.
#[derive(Default)]
struct AbsorbBatch {
    files: Vec<String>,
    packs: Vec<IndexedPack>,
    entries: usize,
}

impl AbsorbBatch {
    /// Absorbs the gathered files in one transaction, and empties the batch.
    fn absorb_into(&mut self, index: &Index) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let files: Vec<&str> = self.files.iter().map(String::as_str).collect();
        index.absorb(&files, &self.packs)?;
        *self = Self::default();
        Ok(())
    }
}
