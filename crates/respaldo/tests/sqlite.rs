//! Live SQLite databases: consistent backups under a concurrent writer, and safe restores
//! (integrity check, stale WAL files, databases in use).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use respaldo::{
    BackupOptions, BackupOutcome, Error, NoProgress, Node, Repository, RestoreOptions,
    SnapshotEntry,
};
use rusqlite::Connection;
use snapshot_index::{FLAG_SQLITE, Tree, lookup_path};

/// Accounts in the test databases; each starts with `START_BALANCE`.
const ACCOUNTS: i64 = 500;
const START_BALANCE: i64 = 1_000;
/// The sum of all balances, which every committed transaction keeps.
const TOTAL: i64 = ACCOUNTS * START_BALANCE;
/// Filler rows of 4 KiB: enough pages (about 10 MiB) that a rollback-mode copy takes
/// several steps, and writers restart it.
const FILLER_ROWS: i64 = 2_500;
/// The longest a writer may wait for a commit while a backup runs (generous: a loaded
/// machine, not a speed test).
const MAX_COMMIT_LATENCY: Duration = Duration::from_secs(2);

struct Fixture {
    dir: tempfile::TempDir,
    repo: Repository,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::repository(dir.path());
        Self { dir, repo }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn backup(&self, paths: &[&Path], databases: &[&Path]) -> BackupOutcome {
        let options = BackupOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            sqlite: databases.iter().map(|p| p.to_path_buf()).collect(),
            ..BackupOptions::default()
        };
        self.repo.backup(&options, &NoProgress).unwrap()
    }

    fn entry(&self, outcome: &BackupOutcome) -> SnapshotEntry {
        SnapshotEntry {
            id: outcome.snapshot_id,
            snapshot: outcome.snapshot.clone(),
        }
    }

    fn restore(&self, outcome: &BackupOutcome, target: &Path, force: bool) -> respaldo::Result<()> {
        let options = RestoreOptions {
            target: target.to_path_buf(),
            force,
            ..RestoreOptions::default()
        };
        self.repo
            .restore(&self.entry(outcome), &options, &NoProgress)
            .map(drop)
    }

    fn node(&self, outcome: &BackupOutcome, path: &Path) -> Option<Node> {
        let components: Vec<&[u8]> = components(path);
        lookup_path(self.repo.store(), &outcome.snapshot.tree, &components).unwrap()
    }
}

fn components(path: &Path) -> Vec<&[u8]> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.as_bytes()),
            _ => None,
        })
        .collect()
}

/// Where `path` lands when restored into `target`.
fn restored(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").unwrap())
}

/// A bank database at `path`: `account(id, balance)` summing to `TOTAL`, and filler rows.
fn create_bank(path: &Path, journal_mode: &str, filler_rows: i64) {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
    conn.execute_batch(
        "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for id in 1..=ACCOUNTS {
        conn.execute(
            "INSERT INTO account (id, balance) VALUES (?1, ?2)",
            (id, START_BALANCE),
        )
        .unwrap();
    }
    for id in 1..=filler_rows {
        conn.execute(
            "INSERT INTO filler (id, data) VALUES (?1, ?2)",
            (id, common::pseudo_random(4000, id as u64)),
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// `PRAGMA integrity_check`, the sum of balances and the number of accounts.
fn check_bank(path: &Path) -> (String, i64, i64) {
    let conn = Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let (sum, count) = conn
        .query_row("SELECT SUM(balance), COUNT(*) FROM account", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    (check, sum, count)
}

fn journal_mode(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// A thread committing transfers between random accounts until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    handle: JoinHandle<Duration>,
}

impl Writer {
    fn start(db: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let db = db.to_path_buf();
        let (stop_flag, counter) = (stop.clone(), commits.clone());
        let handle = std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(60)).unwrap();
            conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut longest = Duration::ZERO;
            while !stop_flag.load(Ordering::SeqCst) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let from = (state % ACCOUNTS as u64) as i64 + 1;
                let to = ((state >> 20) % ACCOUNTS as u64) as i64 + 1;
                let amount = ((state >> 40) % 100) as i64 + 1;
                let started = Instant::now();
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     UPDATE account SET balance = balance - {amount} WHERE id = {from};
                     UPDATE account SET balance = balance + {amount} WHERE id = {to};
                     COMMIT;"
                ))
                .unwrap();
                longest = longest.max(started.elapsed());
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            longest
        });
        Self {
            stop,
            commits,
            handle,
        }
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Waits until `n` more transactions have committed.
    fn wait_for_commits(&self, n: u64) {
        let goal = self.commits() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.commits() < goal {
            assert!(Instant::now() < deadline, "the writer stopped committing");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the writer; returns its longest commit.
    fn stop(self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// A backup taken while a writer keeps committing restores to a database that passes its
/// integrity check and keeps the invariant, and the writer was never held back for long.
fn backup_under_concurrent_writer(journal: &str) {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("srv")).unwrap();
    let db = f.path("srv/bank.db");
    create_bank(&db, journal, FILLER_ROWS);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();

    let writer = Writer::start(&db);
    writer.wait_for_commits(20);
    let before = writer.commits();
    let started = Instant::now();
    let outcome = f.backup(&[], &[&db]);
    let took = started.elapsed();
    let during = writer.commits() - before;
    writer.wait_for_commits(20);
    let longest = writer.stop();
    eprintln!(
        "{journal}: backup took {took:?}; the writer committed {during} transactions meanwhile, \
         its longest commit took {longest:?}"
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert!(
        longest < MAX_COMMIT_LATENCY,
        "the backup blocked the writer for {longest:?}"
    );
    assert_eq!(
        outcome.snapshot.paths,
        vec![db.to_string_lossy().into_owned()]
    );
    let node = f
        .node(&outcome, &db)
        .expect("the database is in the snapshot");
    assert_ne!(
        node.flags & FLAG_SQLITE,
        0,
        "the node is flagged as a database"
    );
    assert_eq!(node.mode & 0o7777, 0o640, "the live file's mode is kept");

    let target = f.path("target");
    f.restore(&outcome, &target, false).unwrap();
    let copy = restored(&target, &db);
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        node.mtime_ns,
        "the integrity check left the restored time alone"
    );
    assert_eq!(check_bank(&copy), ("ok".to_string(), TOTAL, ACCOUNTS));
    assert_eq!(journal_mode(&copy), journal, "the journal mode is kept");
    // The live database kept its invariant too.
    assert_eq!(check_bank(&db), ("ok".to_string(), TOTAL, ACCOUNTS));
}

#[test]
fn wal_database_is_copied_consistently_under_a_concurrent_writer() {
    backup_under_concurrent_writer("wal");
}

#[test]
fn rollback_journal_database_is_copied_consistently_under_a_concurrent_writer() {
    backup_under_concurrent_writer("delete");
}

#[test]
fn database_inside_a_backed_up_folder_replaces_the_live_file_and_its_wal() {
    let f = Fixture::new();
    let app = f.path("srv/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("notes.txt"), b"not a database").unwrap();
    let db = app.join("app.db");
    create_bank(&db, "wal", 10);
    // An open connection keeps its last transactions in the WAL, not yet in the file.
    let live = Connection::open(&db).unwrap();
    live.execute_batch(
        "PRAGMA wal_autocheckpoint = 0;
         UPDATE account SET balance = balance - 7 WHERE id = 1;
         UPDATE account SET balance = balance + 7 WHERE id = 2;
         CREATE TABLE late (x);
         INSERT INTO late VALUES (42);",
    )
    .unwrap();
    assert!(std::fs::metadata(app.join("app.db-wal")).unwrap().len() > 0);
    assert!(app.join("app.db-shm").exists());

    let outcome = f.backup(&[&app], &[&db]);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let tree = f.node(&outcome, &app).unwrap().subtree.unwrap();
    let tree = Tree::load(f.repo.store(), &tree).unwrap();
    let names: Vec<String> = tree.nodes().iter().map(|n| n.name_lossy()).collect();
    assert_eq!(
        names,
        ["app.db", "notes.txt"],
        "no -wal or -shm in the snapshot"
    );
    assert_ne!(tree.nodes()[0].flags & FLAG_SQLITE, 0);
    assert_eq!(tree.nodes()[1].flags & FLAG_SQLITE, 0);

    let target = f.path("target");
    f.restore(&outcome, &target, false).unwrap();
    let restored_app = restored(&target, &app);
    assert_eq!(
        common::list_all(&restored_app),
        ["app.db", "notes.txt"],
        "nothing but the database and the file"
    );
    let copy = restored_app.join("app.db");
    assert_eq!(check_bank(&copy), ("ok".to_string(), TOTAL, ACCOUNTS));
    let conn = Connection::open(&copy).unwrap();
    let late: i64 = conn
        .query_row("SELECT x FROM late", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        late, 42,
        "the transactions still in the WAL are in the copy"
    );
    drop(live);
}

#[test]
fn restore_over_a_database_with_a_stale_wal_gives_the_snapshot_content() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("srv")).unwrap();
    let db = f.path("srv/app.db");
    create_bank(&db, "wal", 10);
    let outcome = f.backup(&[], &[&db]);

    // The old database at the destination: other tables, with transactions left in a WAL
    // that no process holds any more (as after a crash).
    let target = f.path("target");
    let dest = restored(&target, &db);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let scratch = f.path("old.db");
    let old = Connection::open(&scratch).unwrap();
    old.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE old_stuff (x);",
    )
    .unwrap();
    old.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for i in 0..200 {
        old.execute("INSERT INTO old_stuff VALUES (?1)", [i])
            .unwrap();
    }
    std::fs::copy(&scratch, &dest).unwrap();
    std::fs::copy(f.path("old.db-wal"), dest.with_file_name("app.db-wal")).unwrap();
    drop(old);
    assert!(
        std::fs::metadata(dest.with_file_name("app.db-wal"))
            .unwrap()
            .len()
            > 0
    );

    f.restore(&outcome, &target, false).unwrap();
    assert_eq!(check_bank(&dest), ("ok".to_string(), TOTAL, ACCOUNTS));
    let conn = Connection::open(&dest).unwrap();
    let old_tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'old_stuff'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        old_tables, 0,
        "the old WAL was not replayed into the new database"
    );
}

/// A child process holding `path` open for reading and writing; returns once it has.
fn hold_open(path: &Path) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec 3<>\"$0\"; echo ready; exec sleep 60")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn restore_refuses_a_database_in_use_unless_forced() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("srv")).unwrap();
    let db = f.path("srv/app.db");
    create_bank(&db, "wal", 10);
    let outcome = f.backup(&[], &[&db]);
    let target = f.path("target");
    f.restore(&outcome, &target, false).unwrap();
    let dest = restored(&target, &db);

    // A connection in the middle of a write transaction.
    let holder = Connection::open(&dest).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; UPDATE account SET balance = 0 WHERE id = 1;")
        .unwrap();
    let err = f.restore(&outcome, &target, false).unwrap_err();
    assert!(matches!(err, Error::DatabaseInUse { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&dest.display().to_string()), "{message}");
    assert!(message.contains("--force"), "{message}");
    f.restore(&outcome, &target, true).unwrap();
    assert_eq!(check_bank(&dest), ("ok".to_string(), TOTAL, ACCOUNTS));
    let _ = holder.execute_batch("ROLLBACK");
    drop(holder);

    // Another process holding the file open for writing.
    let mut child = hold_open(&dest);
    let err = f.restore(&outcome, &target, false).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("another process (pid {}", child.id())),
        "{message}"
    );
    assert!(message.contains("stop it, or pass --force"), "{message}");
    child.kill().unwrap();
    child.wait().unwrap();
    f.restore(&outcome, &target, false).unwrap();
    assert_eq!(check_bank(&dest), ("ok".to_string(), TOTAL, ACCOUNTS));
}

#[test]
fn restore_refuses_a_database_whose_lock_another_connection_holds() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("srv")).unwrap();
    let db = f.path("srv/app.db");
    create_bank(&db, "delete", 10);
    let outcome = f.backup(&[], &[&db]);
    let target = f.path("target");
    f.restore(&outcome, &target, false).unwrap();
    let dest = restored(&target, &db);

    // A read-only connection (no descriptor open for writing) in the middle of a read
    // transaction: only SQLite's lock tells that the database is in use.
    let reader =
        Connection::open_with_flags(&dest, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let accounts: i64 = reader
        .query_row("SELECT COUNT(*) FROM account", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accounts, ACCOUNTS);
    let err = f.restore(&outcome, &target, false).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("another connection, which holds its lock"),
        "{message}"
    );
    reader.execute_batch("COMMIT").unwrap();
    f.restore(&outcome, &target, false).unwrap();
    assert_eq!(check_bank(&dest), ("ok".to_string(), TOTAL, ACCOUNTS));
}

/// A snapshot holding one file flagged as a database at `/home/app.db`, with `content`.
fn snapshot_with_database(f: &Fixture, content: &[u8]) -> SnapshotEntry {
    let mut node = common::file(&f.repo, "app.db", &[content]);
    node.flags |= FLAG_SQLITE;
    let home = common::dir(&f.repo, "home", vec![node]);
    common::snapshot(&f.repo, vec![home], common::MTIME_NS)
}

/// Restoring `entry` over an existing database fails its integrity check and leaves the old
/// database untouched, with no temporary file left behind.
fn assert_refused_as_corrupt(f: &Fixture, entry: &SnapshotEntry) -> String {
    let target = f.path("target");
    let dest = target.join("home/app.db");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    create_bank(&dest, "delete", 0);
    let before = std::fs::read(&dest).unwrap();
    let options = RestoreOptions {
        target: target.clone(),
        ..RestoreOptions::default()
    };
    let err = f.repo.restore(entry, &options, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::DatabaseCorrupt { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&dest.display().to_string()), "{message}");
    assert!(message.contains("integrity check"), "{message}");
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        before,
        "the old database is untouched"
    );
    assert_eq!(common::list_all(&target.join("home")), ["app.db"]);
    message
}

#[test]
fn a_database_that_is_not_one_fails_the_integrity_check_at_restore() {
    let f = Fixture::new();
    let entry = snapshot_with_database(&f, &common::pseudo_random(20_000, 7));
    let message = assert_refused_as_corrupt(&f, &entry);
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn a_database_with_damaged_pages_fails_the_integrity_check_at_restore() {
    let f = Fixture::new();
    let source = f.path("good.db");
    create_bank(&source, "delete", 50);
    let mut bytes = std::fs::read(&source).unwrap();
    assert!(bytes.len() > 40 * 4096);
    // Overwrite a few pages in the middle (the header and schema stay readable).
    for b in &mut bytes[8 * 4096..12 * 4096] {
        *b = 0x5a;
    }
    let entry = snapshot_with_database(&f, &bytes);
    assert_refused_as_corrupt(&f, &entry);
}

#[test]
fn a_source_that_is_not_a_database_is_a_warning() {
    let f = Fixture::new();
    let text = f.path("notes.db");
    std::fs::write(
        &text,
        "this is not a database, just text that is long enough",
    )
    .unwrap();
    let good = f.path("good.db");
    create_bank(&good, "wal", 0);
    let outcome = f.backup(&[], &[&text, &good]);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    let warning = &outcome.warnings[0];
    assert_eq!(warning.path, text);
    assert!(
        warning.message.contains("not a database"),
        "{}",
        warning.message
    );
    assert!(f.node(&outcome, &text).is_none());
    assert!(f.node(&outcome, &good).is_some());
}

/// Backs up the bank at `db` (as a plain file, or with `--sqlite`), changes one balance and
/// backs it up again: one chunk per page, so the second backup adds a few pages only.
fn backed_up_per_page(filler_rows: i64, as_database: bool) {
    let f = Fixture::new();
    let db = f.path("bank.db");
    create_bank(&db, "delete", filler_rows);
    let backup = |f: &Fixture| {
        if as_database {
            f.backup(&[], &[&db])
        } else {
            f.backup(&[&db], &[])
        }
    };
    let first = backup(&f);
    let size = std::fs::metadata(&db).unwrap().len();
    let node = f.node(&first, &db).unwrap();
    assert_eq!(size % 4096, 0);
    assert_eq!(node.content.len() as u64, size / 4096, "one chunk per page");

    let conn = Connection::open(&db).unwrap();
    conn.execute("UPDATE account SET balance = balance + 1 WHERE id = 1", [])
        .unwrap();
    drop(conn);
    let second = backup(&f);
    let added = second.snapshot.summary.bytes_added;
    // The changed account page, the header page, and the snapshot's trees: far below one
    // FastCDC chunk of the repository (128 KiB at least with the default sizes).
    assert!(added < 64 * 1024, "added {added} bytes for one changed row");

    let target = f.path("target");
    f.restore(&second, &target, false).unwrap();
    let dest = restored(&target, &db);
    if as_database {
        // The online backup's copy holds the same rows, not the same bytes.
        assert_eq!(check_bank(&dest), ("ok".to_string(), TOTAL + 1, ACCOUNTS));
    } else {
        let same = std::fs::read(&dest).unwrap() == std::fs::read(&db).unwrap();
        assert!(
            same,
            "the restored file is the backed-up one, byte for byte"
        );
    }
}

#[test]
fn a_small_database_file_is_cut_one_chunk_per_page() {
    // About 2 MiB: read whole into memory.
    backed_up_per_page(500, false);
}

#[test]
fn a_large_live_database_is_cut_one_chunk_per_page() {
    // About 10 MiB: streamed.
    backed_up_per_page(FILLER_ROWS, true);
}

#[test]
fn a_database_from_standard_input_is_cut_as_the_same_file_is() {
    let f = Fixture::new();
    let db = f.path("bank.db");
    create_bank(&db, "delete", 500);
    let from_file = f.backup(&[&db], &[]);
    let file_chunks = f.node(&from_file, &db).unwrap().content;
    let bytes = std::fs::read(&db).unwrap();
    let from_stdin = f
        .repo
        .backup_stdin(
            &BackupOptions::default(),
            "bank.db",
            &mut bytes.as_slice(),
            &NoProgress,
        )
        .unwrap();
    let stdin_chunks = f.node(&from_stdin, Path::new("/bank.db")).unwrap().content;
    assert_eq!(stdin_chunks, file_chunks);
    // Every chunk was known: only the new tree was stored.
    let added = from_stdin.snapshot.summary.bytes_added;
    assert!(added < 4096, "added {added} bytes");
}

#[test]
fn a_database_with_small_pages_is_cut_into_chunks_of_several_pages() {
    let f = Fixture::new();
    let db = f.path("small-pages.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 512; CREATE TABLE t (x BLOB); \
         INSERT INTO t VALUES (zeroblob(100000));",
    )
    .unwrap();
    drop(conn);
    let size = std::fs::metadata(&db).unwrap().len();
    assert_eq!(
        &std::fs::read(&db).unwrap()[16..18],
        &[2, 0],
        "512-byte pages"
    );
    let outcome = f.backup(&[&db], &[]);
    let chunks = f.node(&outcome, &db).unwrap().content.len() as u64;
    assert_eq!(chunks, size.div_ceil(4096), "chunks of 4 KiB: 8 pages each");
}
