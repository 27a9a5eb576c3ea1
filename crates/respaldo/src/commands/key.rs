//! `key list`, `key add`, `key remove`, `key passwd`: the key files of an encrypted repository.
//!
//! Each key file under `keys/` wraps the one master key under one password (`docs/format.md`,
//! section 5), so adding or removing a password rewrites one small file and re-encrypts
//! nothing. Keys are named by the 64 hex digits of their file's BLAKE3; every method that takes
//! a key name also takes a unique prefix of it.
//!
//! Locks: `key add` takes a shared lock (it only adds a file); `key remove` and `key passwd`
//! take an exclusive one, as restic does, so that two removals running at once cannot leave
//! the repository without any key. Listing takes none.

use chunk_store::{FileKind, KdfParams, KeyOrigin};

use crate::error::{Error, Result};
use crate::lock::LockKind;
use crate::repository::{Repository, hostname, now_unix_seconds, username};

/// One key file of the repository, as `key list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Name of the key file under `keys/` (64 hex digits).
    pub name: String,
    /// Whether this is the key that opened this session (the password given).
    pub current: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_seconds: i64,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
    /// Its Argon2id parameters.
    pub kdf: KdfParams,
}

/// The message of every key operation on an unencrypted repository.
const NOT_ENCRYPTED: &str = "the repository is not encrypted: it has no keys";

/// The first 8 hex digits of a key name, as `key list` shows it.
fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

impl Repository {
    fn require_encrypted(&self) -> Result<()> {
        if self.store().config().is_encrypted() {
            Ok(())
        } else {
            Err(Error::invalid(NOT_ENCRYPTED))
        }
    }

    /// Every key file of the repository, in name order, with who created it, when, and
    /// whether it opened this session.
    ///
    /// Errors: the repository is not encrypted; a damaged key file ([`chunk_store::Error`]
    /// `Corrupt` naming `keys/NAME`); storage errors.
    pub fn keys(&self) -> Result<Vec<KeyEntry>> {
        self.require_encrypted()?;
        let store = self.store();
        let current = store.opened_key();
        let mut names = store.backend().list(FileKind::Key)?;
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let info = match store.key_info(&name) {
                Ok(info) => info,
                // Removed by another process since the listing.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            entries.push(KeyEntry {
                current: current == Some(name.as_str()),
                name,
                created_unix_seconds: info.created_unix_seconds,
                hostname: info.hostname,
                username: info.username,
                kdf: info.kdf,
            });
        }
        Ok(entries)
    }

    /// The full name of the key file that `id` names: a full name or a unique prefix (hex
    /// digits, any case).
    ///
    /// Errors: the repository is not encrypted; `id` is not hex, matches no key, or matches
    /// several (the message lists them).
    pub fn resolve_key(&self, id: &str) -> Result<String> {
        self.require_encrypted()?;
        let prefix = id.trim().to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!(
                "{id:?} is not a key id: expected hex digits (a key name or a unique prefix of \
                 it, as `key list` shows)"
            )));
        }
        let mut matches: Vec<String> = self
            .store()
            .backend()
            .list(FileKind::Key)?
            .into_iter()
            .filter(|name| name.starts_with(&prefix))
            .collect();
        matches.sort();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(Error::invalid(format!(
                "no key matches {prefix:?}: `key list` shows the keys of the repository"
            ))),
            n => Err(Error::invalid(format!(
                "{prefix:?} is ambiguous: {n} keys start with it ({}); give more digits",
                matches
                    .iter()
                    .map(|m| FileKind::Key.display_path(m))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Adds a key file that opens the repository with `password`, derived with `kdf` and
    /// recorded as made by this host and user now. Returns its name. The password is not
    /// checked against the other keys: two keys may share one.
    ///
    /// Errors: the repository is not encrypted; an empty password; [`Error::Locked`] when an
    /// exclusive lock (prune, repair) is held; storage errors.
    pub fn add_key(&self, password: &str, kdf: KdfParams) -> Result<String> {
        self.require_encrypted()?;
        if password.is_empty() {
            return Err(Error::invalid(
                "an empty password protects nothing: choose another one; no key was added",
            ));
        }
        let lock = self.lock(LockKind::Shared, "key add")?;
        let name = self.add_key_file(password, kdf)?;
        drop(lock);
        Ok(name)
    }

    fn add_key_file(&self, password: &str, kdf: KdfParams) -> Result<String> {
        let origin = KeyOrigin {
            hostname: hostname(),
            username: username(),
            created_unix_seconds: now_unix_seconds(),
        };
        Ok(self.store().add_key(password, kdf, &origin)?)
    }

    /// Removes the key `id` names (a full name or a unique prefix); returns its full name.
    ///
    /// Refused: the only key (nothing could open the repository afterwards), and the key that
    /// opened this session (open the repository with another key's password to remove it, as
    /// restic requires; `key passwd` replaces it).
    ///
    /// Errors: those of [`Repository::resolve_key`]; the refusals above; [`Error::Locked`]
    /// when any other lock is held; storage errors.
    pub fn remove_key(&self, id: &str) -> Result<String> {
        let name = self.resolve_key(id)?;
        let lock = self.lock(LockKind::Exclusive, "key remove")?;
        let keys = self.store().backend().list(FileKind::Key)?;
        let file = FileKind::Key.display_path(&name);
        if keys.len() <= 1 {
            return Err(Error::invalid(format!(
                "refusing to remove {file}: it is the only key, and without it nothing opens \
                 the repository; add another with `respaldo key add` first"
            )));
        }
        if self.store().opened_key() == Some(name.as_str()) {
            return Err(Error::invalid(format!(
                "refusing to remove {file}: it is the key that opened this session; open the \
                 repository with another key's password to remove it, or replace its password \
                 with `respaldo key passwd`"
            )));
        }
        lock.ensure_held()?;
        self.store().remove_key(&name)?;
        drop(lock);
        Ok(name)
    }

    /// Replaces the password of this session: adds a key file for `new_password` (derived
    /// with `kdf`), then removes the key that opened this session. Returns the new key's
    /// name. The session stays usable (the master key does not change), but
    /// `store().opened_key()` names the removed key afterwards.
    ///
    /// Errors: the repository is not encrypted; an empty password; [`Error::Locked`] when any
    /// other lock is held (nothing was changed); [`Error::PasswordChangeIncomplete`] when the
    /// new key was added but the old one could not be removed (both passwords open the
    /// repository then); storage errors.
    pub fn change_password(&self, new_password: &str, kdf: KdfParams) -> Result<String> {
        self.require_encrypted()?;
        if new_password.is_empty() {
            return Err(Error::invalid(
                "an empty password protects nothing: choose another one; the password was not \
                 changed",
            ));
        }
        let Some(old) = self.store().opened_key().map(str::to_string) else {
            return Err(Error::invalid(NOT_ENCRYPTED));
        };
        let lock = self.lock(LockKind::Exclusive, "key passwd")?;
        let added = self.add_key_file(new_password, kdf)?;
        let removed = lock
            .ensure_held()
            .and_then(|()| Ok(self.store().remove_key(&old)?));
        drop(lock);
        match removed {
            Ok(()) => Ok(added),
            Err(e) => Err(Error::PasswordChangeIncomplete {
                old_short: short(&old).to_string(),
                added,
                old,
                reason: e.to_string(),
            }),
        }
    }
}
