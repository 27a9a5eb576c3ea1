//! One run of a job at a time: a job takes an advisory lock on a file of its own before it
//! starts, so that a second run of the same job (a second service, or cron beside the service)
//! fails at once with a clear error instead of racing the first one into the repository locks
//! of forget and prune.
//!
//! The lock is the operating system's (`flock`) on `JOBS_FOLDER/job-NAME-HASH.lock` under the
//! job's cache folder, where the hash covers the repository (canonical path) and the job's
//! name: jobs of the same name on different repositories do not exclude each other, and runs
//! exclude each other when they use the same cache folder (the same user and environment, or
//! the job's own `cache_dir`). The kernel releases the lock when
//! the process exits, however it exits, so a killed run leaves no stale lock. The file itself
//! is never removed (removing a lock file another process has open would let two processes
//! lock two different files); it holds the holder's pid, host and start time, for the message
//! of the one that finds it locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Job;
use crate::error::{Error, Result};

/// The folder, under the cache folder, that holds the job lock files.
const JOBS_FOLDER: &str = "jobs";

/// How often a run waiting for the lock ([`JobLock::acquire`] with a wait) tries again.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// How long a run waits, whatever its own wait, for a lock that this process seems to hold:
/// a run that just ended here released it, but another thread starting a program (a hook)
/// forks a child that shares every open file, this lock's too, until the program starts and
/// the file closes (close-on-exec); under load that moment can last a while.
const OWN_RELEASE_GRACE: Duration = Duration::from_secs(2);
/// How often a run retries within [`OWN_RELEASE_GRACE`].
const OWN_RETRY_EVERY: Duration = Duration::from_millis(10);

/// The lock on one job, held until dropped.
#[derive(Debug)]
pub(crate) struct JobLock {
    _file: File,
}

impl JobLock {
    /// Takes the lock of `job` in `cache_dir`, waiting up to `wait` for a run that holds it.
    ///
    /// Errors: [`Error::JobRunning`] when another run holds it after `wait`;
    /// [`Error::Io`] when the lock file cannot be created or locked.
    pub(crate) fn acquire(cache_dir: &Path, job: &Job, wait: Duration) -> Result<JobLock> {
        let folder = cache_dir.join(JOBS_FOLDER);
        std::fs::create_dir_all(&folder)
            .map_err(Error::io("create the job lock folder", &folder))?;
        let path = folder.join(file_name(job));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("open the job lock", &path))?;
        // No deadline when `wait` is too long to add to now: wait for as long as it takes.
        let started = Instant::now();
        let deadline = started.checked_add(wait);
        let own = format!("pid {} ", std::process::id());
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock)
                    if deadline.is_none_or(|deadline| Instant::now() < deadline) =>
                {
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(TryLockError::WouldBlock)
                    if started.elapsed() < OWN_RELEASE_GRACE
                        && holder(&mut file).starts_with(&own) =>
                {
                    std::thread::sleep(OWN_RETRY_EVERY);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::JobRunning {
                        job: job.name.clone(),
                        holder: holder(&mut file),
                        lock: path,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("lock the job lock", &path)(e));
                }
            }
        }
        // Only the holder writes: who holds it, for the message of a run that finds it locked.
        let who = format!(
            "pid {} on {} since {:.0}\n",
            std::process::id(),
            crate::repository::hostname(),
            jiff::Timestamp::now()
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(who.as_bytes()));
        written.map_err(Error::io("write the job lock", &path))?;
        Ok(JobLock { _file: file })
    }
}

/// `job-NAME-HASH.lock`: the name (its safe characters) for people, the hash of the repository
/// and the full name for uniqueness.
fn file_name(job: &Job) -> String {
    // The same repository however the config spells it (a symbolic link, `..`).
    let mut key = match &job.repository {
        chunk_store::Location::Local(path) => std::fs::canonicalize(path)
            .unwrap_or(path.clone())
            .as_os_str()
            .as_bytes()
            .to_vec(),
        remote => remote.to_string().into_bytes(),
    };
    key.push(0);
    key.extend_from_slice(job.name.as_bytes());
    let hash = chunker::IdHasher::Plain.hash(&key);
    let readable: String = job
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    format!("job-{readable}-{}.lock", &hash.to_hex()[..16])
}

/// What the lock file says of its holder (best effort: it may be mid-write).
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(256).read_to_string(&mut text));
    match read.map(|_| text.trim().to_string()) {
        Ok(who) if !who.is_empty() => who,
        _ => "another process".to_string(),
    }
}
