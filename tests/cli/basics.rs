//! Commands that need no backup: version, help, init, passwords, global options.

use std::ffi::OsStr;
use std::process::Stdio;

use crate::util::{Env, PASSWORD, binary, code, describe, json, stderr, stdout};

#[test]
fn version_prints_the_name_and_version() {
    let out = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("respaldo {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_every_command_and_hides_the_test_only_flag() {
    let out = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let help = stdout(&out);
    for command in [
        "init",
        "backup",
        "snapshots",
        "restore",
        "ls",
        "diff",
        "dump",
        "stats",
    ] {
        assert!(
            help.contains(command),
            "--help does not mention {command}:\n{help}"
        );
    }
    assert!(help.contains("RESPALDO_PASSWORD"), "{help}");
    let out = std::process::Command::new(binary())
        .args(["init", "--help"])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("insecure"), "{}", describe(&out));
}

#[test]
fn init_json_names_the_repository() {
    let env = Env::empty();
    let out = env.ok(["init", "--json"]);
    let v = json(&out);
    assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");
    assert!(v["repository"].as_str().unwrap().ends_with("repo"), "{v}");
    assert_eq!(v["encrypted"], true, "{v}");
    assert!(env.repo.join("config").is_file());
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn init_human_output_names_the_location() {
    let env = Env::empty();
    let out = env.ok(["init"]);
    assert!(
        stdout(&out).contains("created respaldo repository"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains(&env.repo.display().to_string()),
        "{}",
        describe(&out)
    );
}

#[test]
fn init_without_encryption_needs_no_password() {
    let mut env = Env::empty();
    env.password = None;
    let out = env.ok(["init", "--no-encryption", "--json"]);
    assert_eq!(json(&out)["encrypted"], false);
    let snapshots = env.ok(["snapshots", "--json"]);
    assert_eq!(json(&snapshots), serde_json::json!([]));
}

#[test]
fn init_twice_refuses_to_overwrite() {
    let env = Env::new();
    let out = env.run(["init"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("already exists"),
        "{}",
        describe(&out)
    );
}

#[test]
fn init_without_a_password_and_without_a_terminal_exits_12() {
    let mut env = Env::empty();
    env.password = None;
    let out = env.run(["init"]);
    assert_eq!(code(&out), 12, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("respaldo: error: "), "{err}");
    assert!(err.contains("RESPALDO_PASSWORD"), "{err}");
    assert!(!env.repo.join("config").exists());
}

#[test]
fn password_file_opens_the_repository() {
    let mut env = Env::new();
    env.password = None;
    let file = env.path("password.txt");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let out = env.ok([
        OsStr::new("snapshots"),
        OsStr::new("--json"),
        OsStr::new("--password-file"),
        file.as_os_str(),
    ]);
    assert_eq!(json(&out), serde_json::json!([]));
    // The same through the environment.
    let out = env
        .command()
        .env("RESPALDO_PASSWORD_FILE", &file)
        .args(["snapshots", "--json", "--repo"])
        .arg(&env.repo)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
}

#[test]
fn repository_from_the_environment() {
    let env = Env::new();
    let out = env
        .command()
        .env("RESPALDO_REPOSITORY", &env.repo)
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out), serde_json::json!([]));
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let env = Env::new();
    let before = env
        .command()
        .arg("--repo")
        .arg(&env.repo)
        .args(["--json", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&before), 0, "{}", describe(&before));
    assert_eq!(json(&before), serde_json::json!([]));
    let after = env
        .command()
        .args(["snapshots", "--repo"])
        .arg(&env.repo)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(code(&after), 0, "{}", describe(&after));
    assert_eq!(json(&after), serde_json::json!([]));
}

#[test]
fn snapshots_of_an_empty_repository() {
    let env = Env::new();
    let out = env.ok(["snapshots"]);
    assert!(stdout(&out).contains("ID"), "{}", describe(&out));
    assert!(stdout(&out).contains("0 snapshots"), "{}", describe(&out));
    let quiet = env.ok(["snapshots", "--quiet"]);
    assert!(
        !stdout(&quiet).contains("0 snapshots"),
        "{}",
        describe(&quiet)
    );
}

#[test]
fn nothing_but_data_on_a_pipe() {
    let env = Env::new();
    let out = env
        .command()
        .args(["snapshots", "--json", "--repo"])
        .arg(&env.repo)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
    assert!(
        !out.stdout.contains(&0x1b),
        "escape codes on a pipe:\n{}",
        describe(&out)
    );
}
