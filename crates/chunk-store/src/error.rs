//! The one error type of the chunk store.

use std::path::PathBuf;

use chunker::ChunkId;

/// Everything that can go wrong in the chunk store. Every variant names the file, blob or
/// setting it is about, so that a message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a local path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A repository file does not exist.
    #[error(
        "{kind} file {name:?} not found in the repository; it may have been deleted, or the repository path is wrong"
    )]
    NotFound {
        /// Kind of file (`pack`, `index`, ...).
        kind: &'static str,
        /// Name of the file.
        name: String,
    },
    /// A ranged read asked for bytes beyond the end of a file.
    #[error(
        "{kind} file {name:?} is {size} bytes long; cannot read {len} bytes at offset {offset}: the file is truncated or the index is wrong (run `check`)"
    )]
    ShortRead {
        /// Kind of file.
        kind: &'static str,
        /// Name of the file.
        name: String,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Actual file size.
        size: u64,
    },
    /// A file name handed to a backend is not a plain, safe name.
    #[error(
        "invalid repository file name {name:?}: names must be non-empty and made of ASCII letters, digits, '-', '_' and '.', without a leading dot"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A file or blob failed an integrity check or could not be decoded.
    #[error(
        "{file} is damaged at offset {offset}: {reason}. Run `check --read-data` to see what it affects"
    )]
    Corrupt {
        /// The file (e.g. `packs/ab12…`) or object that is damaged.
        file: String,
        /// Byte offset in the file where the damage was detected.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file was written by a newer format version than this program understands.
    #[error(
        "{file} uses format version {found}, but this version of respaldo reads at most version {supported}: upgrade respaldo to read this repository"
    )]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// Version found in the file.
        found: u16,
        /// Highest version this build understands.
        supported: u16,
    },
    /// No key file could be opened with the password given.
    #[error("wrong password: none of the {tried} key file(s) in keys/ opens with it")]
    WrongPassword {
        /// How many key files were tried.
        tried: usize,
    },
    /// The repository has no usable key file.
    #[error(
        "the repository at {location} is encrypted but keys/ holds no key file: it cannot be opened"
    )]
    NoKeys {
        /// Where the repository lives.
        location: String,
    },
    /// There is no repository at the location.
    #[error("no repository at {location}: the config file is missing (run `init` to create one)")]
    NoRepository {
        /// Where the repository was looked for.
        location: String,
    },
    /// `init` was called where a repository already exists.
    #[error("a repository already exists at {location}; refusing to overwrite it")]
    AlreadyInitialized {
        /// Where the repository lives.
        location: String,
    },
    /// A key file belongs to a different repository than the config.
    #[error(
        "key file keys/{name} belongs to another repository (id {found}), not to this one ({expected})"
    )]
    ForeignKey {
        /// Key file name.
        name: String,
        /// Repository id inside the key.
        found: String,
        /// Repository id in the config.
        expected: String,
    },
    /// A blob is not in the index.
    #[error(
        "blob {id} is not in the index: it was never stored, or the index is incomplete (run `repair index`)"
    )]
    BlobNotFound {
        /// The missing blob.
        id: ChunkId,
    },
    /// Packs could not be written since the last flush; blobs reported stored are missing.
    #[error(
        "{count} blob(s) added since the last flush could not be stored ({reason}); nothing that refers to them was committed: fix the cause and run the backup again"
    )]
    BlobsLost {
        /// How many blobs were lost.
        count: usize,
        /// The first failure.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name} = {value}: {expected}")]
    InvalidSetting {
        /// Name of the setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// A blob is larger than a pack may hold.
    #[error("blob of {size} bytes is larger than the maximum blob size of {max} bytes")]
    BlobTooLarge {
        /// Size of the blob.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The chunker parameters in the config are invalid.
    #[error("repository config: {0}")]
    Chunker(#[from] chunker::Error),
    /// The local index database failed.
    #[error(
        "index database {path}: {reason}. It holds only rebuildable data: delete it and it is rebuilt on the next open"
    )]
    IndexDb {
        /// Path of the `index.redb` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A request to an object store failed (after its retries).
    #[error("could not {op} {object}: {}{reason}. {}", status_text(*.status), remote_hint(*.status))]
    Remote {
        /// What was being done ("upload", "download", "list", ...).
        op: &'static str,
        /// The object (`packs/ab12… in s3:…`) or prefix it was done to.
        object: String,
        /// The HTTP status of the server's answer; `None` when no answer came.
        status: Option<u16>,
        /// What the server or the network said.
        reason: String,
    },
    /// The client for a remote store could not be set up (nothing was sent yet).
    #[error("cannot reach the repository at {location}: {reason}")]
    RemoteSetup {
        /// The repository location.
        location: String,
        /// What is missing or wrong, and what to set.
        reason: String,
    },
    /// A repository location could not be understood.
    #[error("invalid repository location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong, and the forms that are accepted.
        reason: String,
    },
    /// Key derivation or encryption failed for a reason other than a wrong password.
    #[error("cryptography failure in {context}: {reason}")]
    Crypto {
        /// What was being done.
        context: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result with the chunk store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn status_text(status: Option<u16>) -> String {
    match status {
        Some(status) => format!("HTTP {status}: "),
        None => "no answer from the server: ".to_string(),
    }
}

/// What the user can do about a failed object-store request, by HTTP status.
fn remote_hint(status: Option<u16>) -> &'static str {
    match status {
        None => {
            "Check that the endpoint is right and the server is up and reachable, then try again \
             (RESPALDO_S3_TIMEOUT and RESPALDO_S3_RETRIES set how long respaldo waits)"
        }
        Some(401 | 403) => {
            "Check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) and \
             that the key may read and write the bucket"
        }
        Some(404) => "Check the bucket name in the repository location",
        Some(429 | 500..=599) => "The server is overloaded or failing: try again later",
        Some(_) => "Check the repository location and the server's configuration",
    }
}

/// Turns an I/O error of `op` on `path` into an [`Error::Io`] that names both.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Error {
    /// A [`Error::Corrupt`] for `file` at `offset`.
    pub(crate) fn corrupt(file: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether this error means a file is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
