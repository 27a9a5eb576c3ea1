//! `backup --sqlite` and `restore --force` on the binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::util::{Env, code, describe, json_lines, stderr, summary_line};

/// A database with a table `t(x)` holding 1..=rows.
fn create_database(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
        .unwrap();
    for x in 1..=rows {
        conn.execute("INSERT INTO t (x) VALUES (?1)", [x]).unwrap();
    }
}

/// `PRAGMA integrity_check` and `SUM(x)` of a database.
fn check_database(path: &Path) -> (String, i64) {
    let conn = Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let sum: i64 = conn
        .query_row("SELECT SUM(x) FROM t", [], |r| r.get(0))
        .unwrap();
    (check, sum)
}

fn restored(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").unwrap())
}

#[test]
fn backup_sqlite_round_trip_and_force() {
    let env = Env::unencrypted();
    let db = env.path("app.db");
    create_database(&db, 100);
    // A connection stays open: the latest rows are still in the WAL.
    let live = Connection::open(&db).unwrap();
    live.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO t (x) VALUES (1000);")
        .unwrap();

    let out = env.ok([
        "backup".as_ref(),
        "--json".as_ref(),
        "--sqlite".as_ref(),
        db.as_os_str(),
    ]);
    let summary = summary_line(&out);
    assert_eq!(summary["warnings"], 0, "{}", describe(&out));
    let leftovers: Vec<_> = std::fs::read_dir(env.cache.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        leftovers.is_empty(),
        "the private copy was removed: {leftovers:?}"
    );
    let snapshots = env.snapshots();
    assert_eq!(
        snapshots[0]["paths"][0].as_str(),
        Some(db.to_str().unwrap())
    );

    let target = env.path("target");
    let out = env.run([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let dest = restored(&target, &db);
    assert_eq!(check_database(&dest), ("ok".to_string(), 5050 + 1000));

    // Another process keeps the restored database open: refused, then replaced with --force.
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<>\"$0\"; echo ready; exec sleep 60")
        .arg(&dest)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let restore = |force: bool| {
        let mut args = vec![
            "restore".as_ref(),
            "latest".as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
        ];
        if force {
            args.push("--force".as_ref());
        }
        env.run(args)
    };
    let out = restore(false);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {}", holder.id())) && err.contains("--force"),
        "{err}"
    );
    let out = restore(true);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(check_database(&dest), ("ok".to_string(), 5050 + 1000));
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(live);
}

#[test]
fn backup_sqlite_of_a_file_that_is_not_a_database_warns_and_exits_3() {
    let env = Env::unencrypted();
    let text = env.path("notes.db");
    std::fs::write(&text, "plain text, not a database at all").unwrap();
    let out = env.run([
        "backup".as_ref(),
        "--json".as_ref(),
        "--sqlite".as_ref(),
        text.as_os_str(),
    ]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let lines = json_lines(&out);
    let warning = lines
        .iter()
        .find(|l| l["message_type"] == "warning")
        .unwrap_or_else(|| panic!("no warning:\n{}", describe(&out)));
    assert_eq!(warning["path"].as_str(), Some(text.to_str().unwrap()));
    let message = warning["message"].as_str().unwrap();
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(summary_line(&out)["warnings"], 1);

    // Without --json the warning goes to standard error.
    let out = env.run(["backup".as_ref(), "--sqlite".as_ref(), text.as_os_str()]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("notes.db"), "{}", describe(&out));
}

/// The statuses of the `operation` rows of the `BackupLog` table of `db`.
fn log_statuses(db: &Path, operation: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut statement = conn
        .prepare("SELECT status FROM BackupLog WHERE operation = ?1 ORDER BY id")
        .unwrap();
    statement
        .query_map([operation], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn restore_replaces_the_database_that_holds_the_backup_log() {
    let env = Env::unencrypted();
    let db = env.path("app.db");
    create_database(&db, 100);
    env.ok([
        "backup".as_ref(),
        "--sqlite".as_ref(),
        db.as_os_str(),
        "--log-db".as_ref(),
        db.as_os_str(),
    ]);
    let target = env.path("target");
    env.ok([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    let dest = restored(&target, &db);
    // The application goes on writing to the restored database.
    Connection::open(&dest)
        .unwrap()
        .execute("INSERT INTO t (x) VALUES (7)", [])
        .unwrap();
    assert_eq!(check_database(&dest).1, 5050 + 7);

    // Restoring it again, with the log in that very database: the log holds no connection
    // open, so restore does not find the database in use by this process.
    let out = env.run([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
        "--log-db".as_ref(),
        dest.as_os_str(),
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(check_database(&dest), ("ok".to_string(), 5050));
    // The restored database holds the snapshot's log (its backup still running when the copy
    // was taken) and the row of the restore that replaced it.
    assert_eq!(log_statuses(&dest, "backup"), ["running"]);
    assert_eq!(log_statuses(&dest, "restore"), ["success"]);
    // The original database's own log is untouched.
    assert_eq!(log_statuses(&db, "backup"), ["success"]);
}

#[test]
fn a_backup_removes_the_copies_a_killed_backup_left() {
    let env = Env::unencrypted();
    let db = env.path("app.db");
    create_database(&db, 10);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let tmp = env.cache.join("tmp");
    let abandoned = tmp.join(format!("sqlite-{gone_pid}-{host}-abc123"));
    let running = tmp.join(format!("sqlite-{}-{host}-def456", std::process::id()));
    let other_host = tmp.join(format!("sqlite-{gone_pid}-{host}x-ghi789"));
    // A host whose name starts with this one's and a `-`.
    let longer_host = tmp.join(format!("sqlite-{gone_pid}-{host}-2-jkl012"));
    for folder in [&abandoned, &running, &other_host, &longer_host] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("0.db"), b"copy").unwrap();
    }

    let out = env.run(["backup".as_ref(), "--sqlite".as_ref(), db.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        !abandoned.exists(),
        "the copy of a process that is gone is removed"
    );
    assert!(running.exists(), "a running process's copy is kept");
    assert!(other_host.exists(), "another host's copy is kept");
    assert!(longer_host.exists(), "another host's copy is kept");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert_eq!(left.len(), 3, "this backup removed its own copy: {left:?}");
}

#[test]
fn restoring_the_log_database_from_a_snapshot_without_the_log_table_keeps_the_row() {
    let env = Env::unencrypted();
    let db = env.path("app.db");
    create_database(&db, 10);
    // Backed up while the log lived elsewhere: the snapshot's copy has no BackupLog table.
    env.ok(["backup".as_ref(), "--sqlite".as_ref(), db.as_os_str()]);
    let target = env.path("target");
    let restore = |log_db: &Path| {
        env.run([
            "restore".as_ref(),
            "latest".as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
            "--log-db".as_ref(),
            log_db.as_os_str(),
        ])
    };
    let dest = restored(&target, &db);
    let out = restore(&env.path("log.db"));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    // The log in the restored database, which the next restore replaces with the table-less
    // copy again: the finished row still lands there.
    let out = restore(&dest);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(!stderr(&out).contains("warning"), "{}", describe(&out));
    assert_eq!(check_database(&dest), ("ok".to_string(), 55));
    assert_eq!(log_statuses(&dest, "restore"), ["success"]);
}
