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
