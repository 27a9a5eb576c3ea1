//! Bad input: wrong or missing passwords, missing repositories, bad arguments.

use crate::util::{Env, code, describe, stderr};

#[test]
fn missing_repository_exits_10() {
    let env = Env::empty();
    let out = env.run(["snapshots"]);
    assert_eq!(code(&out), 10, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("respaldo: error: "), "{err}");
    assert!(
        err.contains("init"),
        "the message should say how to create one: {err}"
    );
}

#[test]
fn wrong_password_exits_12() {
    let mut env = Env::new();
    env.password = Some("not the password".to_string());
    let out = env.run(["snapshots"]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    assert!(
        stderr(&out).contains("wrong password"),
        "{}",
        describe(&out)
    );
}

#[test]
fn missing_password_without_a_terminal_exits_12() {
    let mut env = Env::new();
    env.password = None;
    let out = env.run(["snapshots"]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("RESPALDO_PASSWORD"),
        "should say how to give one: {err}"
    );
    assert!(
        err.contains("--password-file"),
        "should say how to give one: {err}"
    );
}

#[test]
fn no_repository_given_says_how_to_give_one() {
    let env = Env::empty();
    let out = env.command().arg("snapshots").output().unwrap();
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("--repo"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("RESPALDO_REPOSITORY"),
        "{}",
        describe(&out)
    );
}

#[test]
fn missing_cache_location_says_to_set_the_variable() {
    let env = Env::new();
    let out = env
        .command()
        .env_remove("RESPALDO_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .args(["snapshots", "--repo"])
        .arg(&env.repo)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("RESPALDO_CACHE_DIR"),
        "{}",
        describe(&out)
    );
}

#[test]
fn unknown_snapshot_is_an_error() {
    let env = Env::new();
    let out = env.run(["ls", "abcdef12"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("abcdef12"), "{}", describe(&out));
    let out = env.run(["restore", "latest", "--target", "restore"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("no snapshot"), "{}", describe(&out));
}

#[test]
fn invalid_arguments_exit_2() {
    let env = Env::new();
    for args in [
        &["restore", "latest"][..],                         // no --target
        &["restore", "--at", "yesterday", "--target", "t"], // unreadable time
        &[
            "restore",
            "latest",
            "--at",
            "2026-01-01 00:00",
            "--target",
            "t",
        ],
        &["ls", "not/an/id"],
        &["backup"], // no path
        &["backup", "--stdin", "x"],
        &["backup", "--stdin-filename", "x", "."], // a name without --stdin
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 2, "respaldo {args:?}:\n{}", describe(&out));
    }
}

#[test]
fn a_locked_repository_exits_11_until_unlocked() {
    let env = Env::new();
    let source = env.path("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a"), b"data").unwrap();
    // A lock file nobody can read: it blocks everything until removed by hand.
    let locks = env.repo.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::write(locks.join("a".repeat(64)), b"garbage").unwrap();

    let out = env.run([std::ffi::OsStr::new("backup"), source.as_os_str()]);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("locked"), "{err}");
    assert!(err.contains("unlock --remove-all"), "{err}");

    let out = env.ok(["unlock"]);
    assert!(
        crate::util::stdout(&out).contains("no stale lock"),
        "{}",
        describe(&out)
    );
    env.ok(["unlock", "--remove-all"]);
    env.ok([std::ffi::OsStr::new("backup"), source.as_os_str()]);
    assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 0);
}
