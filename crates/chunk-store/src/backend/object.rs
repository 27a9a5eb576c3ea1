//! A repository in an object store (S3 and S3-compatible clusters), through `opendal`.
//!
//! Layout under the repository's prefix: `config`, `keys/NAME`, `packs/NAME`, `index/NAME`,
//! `snapshots/NAME`, `locks/NAME`. An object store has no folders to keep small, so packs are
//! not fanned out as on a local disk. One PUT makes an object visible whole, which is the
//! atomicity [`Backend::write`] asks for; objects larger than the part size go up as one
//! multipart upload, which is also visible only once completed.
//!
//! opendal is asynchronous; this backend owns one tokio runtime and blocks the calling thread
//! on it, so the rest of the store stays synchronous and may call it from many threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

use super::spool::Spool;
use super::{Backend, CONFIG_NAME, FileKind, StagedFile, check_range, validate_name};
use crate::error::{Error, Result, io_err};

/// Objects up to this size go up in one PUT; larger ones as a multipart upload of parts this
/// large. Packs (16 MiB by default) stay single PUTs: one request each.
pub const DEFAULT_PART_SIZE: usize = 32 << 20;

/// A pack being filled for an object store: in a temporary file, uploaded whole when
/// committed.
#[derive(Debug)]
struct ObjectStaged {
    backend: ObjectBackend,
    kind: FileKind,
    spool: Spool,
}

impl StagedFile for ObjectStaged {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.spool.append(data)
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.spool.read_at(offset, len)
    }

    fn commit(mut self: Box<Self>, name: &str) -> Result<()> {
        let data = self.spool.read_all()?;
        // The temporary file closes (and disappears) before the upload: one copy at a time.
        let (backend, kind) = (self.backend.clone(), self.kind);
        drop(self);
        backend.upload(kind, name, data)
    }
}

/// How the backend talks to the store: time limits and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Longest wait for one request, its transfer included, before it is abandoned and, if
    /// retries remain, tried again. The default lets a 16 MiB pack go up at 1.1 Mbit/s.
    /// A fixed limit rather than one on idle connections, since that is what the store
    /// client offers; slower links need a larger value.
    pub timeout: Duration,
    /// How many times a failed request that may succeed later (a timeout, a refused
    /// connection, HTTP 429 or 5xx) is tried again, with exponential backoff and jitter.
    pub retries: usize,
    /// Objects larger than this are uploaded in parts of this size (at least 5 MiB, S3's
    /// smallest part).
    pub part_size: usize,
}

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            retries: 5,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// Requests sent to the object store since the backend was made, by kind (a retried request
/// counts once per attempt the backend asked for, not per retry).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    /// Uploads (PUT, or one multipart upload).
    pub put: u64,
    /// Downloads, whole or ranged (GET).
    pub get: u64,
    /// Size and existence checks (HEAD).
    pub head: u64,
    /// Listings (each may be several pages).
    pub list: u64,
    /// Deletions.
    pub delete: u64,
}

#[derive(Debug, Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The backend's own runtime. Shut down in the background when the last clone goes, so that
/// dropping a backend inside some other async runtime does not panic.
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A [`Backend`] over an object store.
#[derive(Debug, Clone)]
pub struct ObjectBackend {
    operator: Operator,
    runtime: Arc<Runtime>,
    location: String,
    part_size: usize,
    counters: Arc<Counters>,
}

impl ObjectBackend {
    /// A backend over `operator` (already rooted at the repository's prefix), with retries
    /// and time limits from `policy`. `location` names the repository in messages.
    ///
    /// Errors: [`Error::RemoteSetup`] when the runtime cannot be started.
    pub fn new(operator: Operator, location: String, policy: RequestPolicy) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("respaldo-object-store")
            .enable_all()
            .build()
            .map_err(|e| Error::RemoteSetup {
                location: location.clone(),
                reason: format!("cannot start the network runtime: {e}"),
            })?;
        // Timeouts inside retries, so that a request that timed out is tried again.
        let operator = operator
            .layer(
                TimeoutLayer::new()
                    .with_timeout(policy.timeout)
                    .with_io_timeout(policy.timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(policy.retries)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_jitter(),
            );
        Ok(Self {
            operator,
            runtime: Arc::new(Runtime(Some(runtime))),
            location,
            part_size: policy.part_size.max(5 << 20),
            counters: Arc::default(),
        })
    }

    /// Stores `data` as the file `name` of `kind` (see [`Backend::write`]), without copying it.
    fn upload(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let object = Self::object(kind, name)?;
        Counters::bump(&self.counters.put);
        let body = opendal::Buffer::from(data);
        let (operator, part_size) = (self.operator.clone(), self.part_size);
        self.block_on(async move {
            let mut writer = operator
                .writer_with(&object)
                .chunk(part_size)
                .concurrent(2)
                .await?;
            let written = match writer.write(body).await {
                Ok(()) => writer.close().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if written.is_err() {
                // A multipart upload left open keeps its parts (and their cost) on the
                // store until aborted.
                let _ = writer.abort().await;
            }
            written
        })
        .map(|_| ())
        .map_err(self.remote_error("upload", kind, name))
    }

    /// The requests sent so far.
    pub fn request_counts(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            put: c.put.load(Ordering::Relaxed),
            get: c.get.load(Ordering::Relaxed),
            head: c.head.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
        }
    }

    fn object(kind: FileKind, name: &str) -> Result<String> {
        validate_name(name)?;
        Ok(kind.display_path(name))
    }

    /// Runs `future` on the backend's runtime and waits for it. The future runs on the
    /// runtime's threads, not the caller's, so that a caller inside another async runtime
    /// may call the (blocking) backend without tokio refusing to nest runtimes.
    fn block_on<T, F>(&self, future: F) -> std::result::Result<T, opendal::Error>
    where
        F: std::future::Future<Output = std::result::Result<T, opendal::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.runtime.0.as_ref().ok_or_else(|| {
            opendal::Error::new(ErrorKind::Unexpected, "the network runtime is shut down")
        })?;
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = send.send(future.await);
        });
        receive.recv().unwrap_or_else(|_| {
            Err(opendal::Error::new(
                ErrorKind::Unexpected,
                "the network runtime stopped a request",
            ))
        })
    }

    fn remote_error(
        &self,
        op: &'static str,
        kind: FileKind,
        name: &str,
    ) -> impl FnOnce(opendal::Error) -> Error {
        let object = format!("{} in {}", kind.display_path(name), self.location);
        let name = name.to_string();
        let location = self.location.clone();
        move |e| match e.kind() {
            ErrorKind::NotFound => Error::NotFound {
                kind: kind.label(),
                name,
            },
            _ => remote(op, object, &location, &e),
        }
    }
}

/// A [`Error::Remote`] from an opendal error, with the HTTP status when the server answered.
fn remote(op: &'static str, object: String, location: &str, e: &opendal::Error) -> Error {
    let text = e.to_string();
    let status = http_status(&text);
    if status.is_none() && text.contains("signing credential") {
        // Nothing was sent: no key was found to sign the request with.
        return Error::RemoteSetup {
            location: location.to_string(),
            reason: "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     or name a profile of ~/.aws/credentials with AWS_PROFILE"
                .to_string(),
        };
    }
    let mut reason = match status {
        Some(_) => s3_error_text(e.message()),
        None => {
            // No answer: the cause is in the source chain (connection refused, timed out).
            let mut cause = e.message().to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            if cause.is_empty() { text } else { cause }
        }
    };
    const LONGEST: usize = 400;
    if reason.len() > LONGEST {
        let mut cut = LONGEST;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    Error::Remote {
        op,
        object,
        status,
        reason,
    }
}

/// `CODE: message` from the S3 error body opendal quotes (`S3Error { code: "AccessDenied",
/// message: "...", ... }`); the text as it is when it is not one.
fn s3_error_text(text: &str) -> String {
    let field = |name: &str| {
        let start = text.find(&format!("{name}: \""))? + name.len() + 3;
        let end = text[start..].find("\", ")?;
        Some(&text[start..start + end])
    };
    match (field("code"), field("message")) {
        (Some(code), Some(message)) if !code.is_empty() => format!("{code}: {message}"),
        _ => text.to_string(),
    }
}

/// The HTTP status of the response an opendal error carries (`status: 403` in its context).
fn http_status(text: &str) -> Option<u16> {
    let at = text.find("status: ")? + "status: ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

impl Backend for ObjectBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        self.upload(kind, name, data.to_vec())
    }

    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn StagedFile>>> {
        // An object goes up whole: it is gathered in an unnamed temporary file (removed when
        // closed, even after a crash), so that a pack being filled costs no memory.
        let dir = std::env::temp_dir();
        let file = tempfile::tempfile_in(&dir)
            .map_err(io_err("create a temporary file for a pack in", &dir))?;
        Ok(Some(Box::new(ObjectStaged {
            backend: self.clone(),
            kind,
            spool: Spool::new(file, dir),
        })))
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let object = Self::object(kind, name)?;
        Counters::bump(&self.counters.get);
        let operator = self.operator.clone();
        self.block_on(async move { operator.read(&object).await })
            .map(|buffer| buffer.to_vec())
            .map_err(self.remote_error("download", kind, name))
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let object = Self::object(kind, name)?;
        let end = offset.checked_add(len);
        if len == 0 || end.is_none() {
            // Nothing to fetch (or no such range): the size alone decides.
            let size = self.size(kind, name)?;
            check_range(kind, name, offset, len, size)?;
            return Ok(Vec::new());
        }
        let end = end.unwrap_or(u64::MAX);
        Counters::bump(&self.counters.get);
        let operator = self.operator.clone();
        let fetched =
            self.block_on(async move { operator.read_with(&object).range(offset..end).await });
        let data = match fetched {
            Ok(buffer) => buffer.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(self.remote_error("download", kind, name)(e));
            }
            Err(e) => {
                // A range past the end fails in several ways (HTTP 416, or a body shorter
                // than asked for): the object's size tells them from real failures.
                let size = self.size(kind, name)?;
                check_range(kind, name, offset, len, size)?;
                return Err(self.remote_error("download", kind, name)(e));
            }
        };
        if data.len() as u64 == len {
            return Ok(data);
        }
        // The store answered with less than asked: the range runs past the end, or the
        // answer was cut short.
        let size = self.size(kind, name)?;
        check_range(kind, name, offset, len, size)?;
        Err(Error::Remote {
            op: "download",
            object: format!("{} in {}", kind.display_path(name), self.location),
            status: None,
            reason: format!(
                "the server sent {} of the {len} bytes asked for at offset {offset}",
                data.len()
            ),
        })
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        let object = Self::object(kind, name)?;
        Counters::bump(&self.counters.head);
        let operator = self.operator.clone();
        self.block_on(async move { operator.stat(&object).await })
            .map(|meta| meta.content_length())
            .map_err(self.remote_error("look up", kind, name))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        if kind == FileKind::Config {
            return Ok(if self.exists(kind, CONFIG_NAME)? {
                vec![CONFIG_NAME.to_string()]
            } else {
                Vec::new()
            });
        }
        let prefix = format!("{}/", kind.dir());
        Counters::bump(&self.counters.list);
        let operator = self.operator.clone();
        let listed = prefix.clone();
        // Not recursive: files in deeper folders (a local layout's `packs/ab/NAME` copied
        // as is) are not this repository's files and would not read back by name.
        let entries = self
            .block_on(async move { operator.list(&listed).await })
            .map_err(|e| {
                remote(
                    "list",
                    format!("{prefix} in {}", self.location),
                    &self.location,
                    &e,
                )
            })?;
        let mut names: Vec<String> = entries
            .iter()
            .filter(|entry| entry.metadata().is_file())
            .filter_map(|entry| {
                let name = entry.path().rsplit('/').next()?;
                // Dot-names are reserved for files in progress, as on a local disk.
                (validate_name(name).is_ok()).then(|| name.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        let object = Self::object(kind, name)?;
        Counters::bump(&self.counters.delete);
        let operator = self.operator.clone();
        match self.block_on(async move { operator.delete(&object).await }) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.remote_error("delete", kind, name)(e)),
        }
    }

    fn exists(&self, kind: FileKind, name: &str) -> Result<bool> {
        match self.size(kind, name) {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::http_status;

    #[test]
    fn finds_the_status_of_a_response() {
        let text = "PermissionDenied (persistent) at read, context: { response: Parts { \
                    status: 403, version: HTTP/1.1 } } => AccessDenied";
        assert_eq!(http_status(text), Some(403));
        assert_eq!(
            http_status("Unexpected (temporary) at read => connection refused"),
            None
        );
        assert_eq!(http_status("status: 42"), None);
    }

    #[test]
    fn quotes_the_code_and_message_of_an_s3_error() {
        let text = r#"S3Error { code: "NoSuchBucket", message: "Bucket not found: b", resource: "/b/config", request_id: "" }"#;
        assert_eq!(
            super::s3_error_text(text),
            "NoSuchBucket: Bucket not found: b"
        );
        assert_eq!(super::s3_error_text("plain text"), "plain text");
    }
}
