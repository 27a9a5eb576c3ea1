//! [`Repository`]: an opened repository and the entry point of every command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chunk_store::{Backend, ChunkStore, KdfParams, KeyOrigin, LocalBackend, Location};
use chunker::ChunkerParams;
use snapshot_index::{Catalog, SnapshotEntry, SnapshotFilter};

use crate::error::{Error, Result};

/// Settings of a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Password of the first key; `None` for an unencrypted repository.
    pub password: Option<String>,
    /// Chunking parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub zstd_level: i32,
    /// Argon2id cost of the first key.
    pub kdf: KdfParams,
    /// Repository format major version, 1 to [`chunk_store::FORMAT_MAJOR`] (the default).
    pub format_major: u16,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            password: None,
            chunker: ChunkerParams::default(),
            zstd_level: chunk_store::DEFAULT_ZSTD_LEVEL,
            kdf: KdfParams::default(),
            format_major: chunk_store::FORMAT_MAJOR,
        }
    }
}

/// How a command names a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSpec {
    /// The newest snapshot (among those passing the filter).
    Latest,
    /// A full id or a unique prefix.
    Id(String),
    /// The newest snapshot taken at or before this time (nanoseconds since the Unix epoch).
    At(i64),
}

/// An open repository.
#[derive(Debug)]
pub struct Repository {
    store: Arc<ChunkStore>,
    location: String,
    cache_dir: PathBuf,
    lock_wait: Duration,
    no_lock: bool,
    lock_refresh_every: Duration,
    /// Event sinks and the job name (`events.rs`).
    pub(crate) events: crate::events::Events,
}

/// The folder for local caches: `RESPALDO_CACHE_DIR`, else `$XDG_CACHE_HOME/respaldo`, else
/// `$HOME/.cache/respaldo`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("RESPALDO_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("respaldo")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("respaldo")))
}

fn index_path(cache_dir: &Path, repository_id: &str) -> PathBuf {
    cache_dir.join(repository_id).join("index.redb")
}

/// Host name of this machine, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Name of the user running this process.
pub fn username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

pub(crate) fn now_unix_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Repository {
    /// Creates a repository in the local folder `location` (created if missing; it must not
    /// hold a repository already). The fast index lives under `cache_dir`.
    pub fn init(location: &Path, options: &InitOptions, cache_dir: &Path) -> Result<Self> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(location));
        Self::init_with_backend(backend, options, cache_dir)
    }

    /// Creates a repository at `location`: a local folder (created if missing) or an S3
    /// bucket and prefix (which must hold no repository yet).
    pub fn init_at(location: &Location, options: &InitOptions, cache_dir: &Path) -> Result<Self> {
        Self::init_with_backend(location.open()?, options, cache_dir)
    }

    /// Creates a repository on any backend.
    pub fn init_with_backend(
        backend: Arc<dyn Backend>,
        options: &InitOptions,
        cache_dir: &Path,
    ) -> Result<Self> {
        // The index path depends on the repository id, known only once the config exists:
        // create with a temporary index, then reopen at the final place.
        let store_options = chunk_store::InitOptions {
            password: options.password.clone(),
            chunker: options.chunker,
            zstd_level: options.zstd_level,
            kdf: options.kdf,
            format_major: options.format_major,
            key_origin: KeyOrigin {
                hostname: hostname(),
                username: username(),
                created_unix_seconds: now_unix_seconds(),
            },
            ..chunk_store::InitOptions::default()
        };
        std::fs::create_dir_all(cache_dir).map_err(Error::io("create cache folder", cache_dir))?;
        let staging = tempfile::Builder::new()
            .prefix("init-")
            .tempdir_in(cache_dir)
            .map_err(Error::io("create a folder in", cache_dir))?;
        let store = ChunkStore::init(
            backend.clone(),
            &store_options,
            staging.path().join("index.redb"),
        )?;
        drop(store);
        let repository = Self::open_with_backend(backend, options.password.as_deref(), cache_dir)?;
        Ok(repository)
    }

    /// Opens the repository in the local folder `location`.
    ///
    /// Errors: no repository there (`is_no_repository`), a wrong password
    /// (`is_wrong_password`), a newer format, damage.
    pub fn open(location: &Path, password: Option<&str>, cache_dir: &Path) -> Result<Self> {
        Self::open_with_backend(Arc::new(LocalBackend::new(location)), password, cache_dir)
    }

    /// Opens the repository at `location` (a local folder or an S3 bucket and prefix). The
    /// fast index of a remote repository lives under `cache_dir` only, and is brought up to
    /// date with the index files other hosts wrote.
    ///
    /// Errors: as [`Repository::open`], and an unreachable store or refused credentials
    /// (`chunk_store::Error::Remote`, naming the object and the HTTP status).
    pub fn open_at(location: &Location, password: Option<&str>, cache_dir: &Path) -> Result<Self> {
        Self::open_with_backend(location.open()?, password, cache_dir)
    }

    /// Opens a repository on any backend.
    pub fn open_with_backend(
        backend: Arc<dyn Backend>,
        password: Option<&str>,
        cache_dir: &Path,
    ) -> Result<Self> {
        let location = backend.location();
        let config = ChunkStore::read_config(backend.as_ref())?;
        let id = config.repository_id_hex();
        let remote = backend.is_remote();
        let mut store = ChunkStore::open(backend, password, index_path(cache_dir, &id))?;
        if remote {
            // Trees are read one request each otherwise (one per folder of a snapshot).
            store = store.with_tree_pack_cache(cache_dir.join(&id).join("tree-packs"));
        }
        let store = Arc::new(store);
        Ok(Self {
            store,
            location,
            cache_dir: cache_dir.to_path_buf(),
            lock_wait: Duration::ZERO,
            no_lock: false,
            lock_refresh_every: crate::lock::REFRESH_EVERY,
            events: Default::default(),
        })
    }

    /// The local cache folder it was opened with (the index, and temporary copies of SQLite
    /// databases during a backup, live under it).
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The chunk store underneath.
    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// The chunk store, shared (for threads that outlive a borrow, such as a lock refresher).
    pub(crate) fn shared_store(&self) -> Arc<ChunkStore> {
        self.store.clone()
    }

    /// How long taking a lock waits for conflicting locks to go before it fails with
    /// [`Error::Locked`] (default: not at all).
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

    /// See [`Repository::set_lock_wait`].
    pub fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// Lets operations that only read (restore, check) run without a lock, so that a
    /// repository on read-only storage can be read. Nothing then keeps a prune from deleting
    /// what they read: use it only when no prune can run. Operations that write still lock.
    pub fn set_no_lock(&mut self, no_lock: bool) {
        self.no_lock = no_lock;
    }

    /// How often a held lock is rewritten: [`crate::REFRESH_EVERY`]. Only tests change it
    /// (to see a refresh happen); other processes judge staleness by the protocol's constants.
    #[doc(hidden)]
    pub fn set_lock_refresh_every(&mut self, every: Duration) {
        self.lock_refresh_every = every;
    }

    pub(crate) fn lock_refresh_every(&self) -> Duration {
        self.lock_refresh_every
    }

    /// See [`Repository::set_no_lock`].
    pub fn no_lock(&self) -> bool {
        self.no_lock
    }

    /// Where the repository lives.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Every snapshot.
    pub fn catalog(&self) -> Result<Catalog> {
        Ok(Catalog::load(&self.store)?)
    }

    /// The snapshot `spec` names among those passing `filter`.
    pub fn resolve_snapshot(
        &self,
        spec: &SnapshotSpec,
        filter: &SnapshotFilter,
    ) -> Result<SnapshotEntry> {
        // Neither a full id nor, while the kept catalog is current, `latest`, a prefix or a
        // time needs the whole catalog: `restore latest` costs about the same with 10 or
        // 10,000 snapshots.
        match spec {
            SnapshotSpec::Latest => Ok(Catalog::find(&self.store, "latest", filter)?),
            SnapshotSpec::Id(id) => Ok(Catalog::find(&self.store, id, filter)?),
            SnapshotSpec::At(time_ns) => Catalog::find_newest(&self.store, filter, Some(*time_ns))?
                .ok_or_else(|| {
                    snapshot_index::Error::NoSnapshot {
                        spec: format!("taken at or before {}", format_time_ns(*time_ns)),
                    }
                    .into()
                }),
        }
    }
}

/// A time in RFC 3339 (UTC).
pub fn format_time_ns(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(time_ns))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{time_ns} ns"))
}

impl From<&str> for SnapshotSpec {
    fn from(s: &str) -> Self {
        if s == "latest" {
            SnapshotSpec::Latest
        } else {
            SnapshotSpec::Id(s.to_string())
        }
    }
}
