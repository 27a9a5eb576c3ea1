//! `analyze` (no repository, no password) and `init --chunker`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::tree;
use crate::util::{Env, can_read_unreadable, code, describe, json, stderr, stdout};

/// `len` pseudo-random bytes (xorshift) from `seed`.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// `respaldo analyze ARGS...` without `--repo`, a password or a repository.
fn analyze<I, S>(env: &Env, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = env.command();
    cmd.env_remove("RESPALDO_PASSWORD")
        .arg("analyze")
        .args(args);
    cmd.output().unwrap()
}

/// `analyze --json ARGS...`, asserting exit 0; the document.
fn analyze_json(env: &Env, args: &[&OsStr]) -> Value {
    let mut all: Vec<&OsStr> = vec![OsStr::new("--json")];
    all.extend_from_slice(args);
    let out = analyze(env, &all);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    json(&out)
}

/// The report of the spec named `spec`.
fn spec<'a>(doc: &'a Value, spec: &str) -> &'a Value {
    doc["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spec"] == spec)
        .unwrap_or_else(|| panic!("no spec {spec} in {doc}"))
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_second_version_that_changes_little_adds_little() {
    let env = Env::empty();
    let (v1, v2) = (env.path("v1"), env.path("v2"));
    for v in [&v1, &v2] {
        std::fs::create_dir_all(v.join("data")).unwrap();
    }
    let big = noise(3 << 20, 1);
    let log: Vec<u8> = b"2026-01-01 event=login user=alice\n".repeat(20_000);
    std::fs::write(v1.join("data/big.bin"), &big).unwrap();
    std::fs::write(v1.join("log.txt"), &log).unwrap();
    let mut big2 = big.clone();
    big2[2 << 20..(2 << 20) + 64].fill(0xee);
    std::fs::write(v2.join("data/big.bin"), &big2).unwrap();
    std::fs::write(v2.join("log.txt"), &log).unwrap();

    let doc = analyze_json(
        &env,
        &[
            v1.as_os_str(),
            v2.as_os_str(),
            OsStr::new("--chunker"),
            OsStr::new("fastcdc:16K,64K,256K"),
        ],
    );
    let s = spec(&doc, "fastcdc:16K,64K,256K");
    let total = 2 * (big.len() + log.len()) as u64;
    assert_eq!(doc["files"], 4, "{doc}");
    assert_eq!(doc["bytes"].as_u64(), Some(total), "{doc}");
    assert_eq!(s["logical_bytes"].as_u64(), Some(total), "{doc}");
    assert!(number(&s["dedup_ratio"]) > 1.8, "{s}");
    assert!(s["unique_chunks"].as_u64() < s["chunks"].as_u64(), "{s}");
    // The repeated log compresses, so the zstd size is below the unique size.
    assert!(
        s["compressed_bytes"].as_u64() < s["unique_bytes"].as_u64(),
        "{s}"
    );
    assert!(number(&s["zstd_ratio"]) > 1.0, "{s}");
    assert_eq!(
        s["index_bytes"].as_u64(),
        Some(s["unique_chunks"].as_u64().unwrap() * respaldo::INDEX_BYTES_PER_CHUNK),
        "{s}"
    );
    assert!(number(&s["throughput_mb_s"]) > 0.0, "{s}");
    let histogram: u64 = s["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(Some(histogram), s["chunks"].as_u64(), "{s}");

    let versions = doc["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["path"], v1.to_string_lossy().as_ref());
    let first = versions[0]["added"][0]["bytes"].as_u64().unwrap();
    let second = versions[1]["added"][0]["bytes"].as_u64().unwrap();
    assert_eq!(Some(first), versions[0]["bytes"].as_u64(), "{doc}");
    assert!(second > 0, "the changed bytes are new: {doc}");
    assert!(
        second * 10 < versions[1]["bytes"].as_u64().unwrap(),
        "v2 added {second} bytes: {doc}"
    );
    assert_eq!(Some(first + second), s["unique_bytes"].as_u64(), "{doc}");

    // Nothing was written: no repository, no cache.
    assert!(!env.repo.exists() && !env.cache.exists());
}

#[test]
fn fixed_size_chunks_dedup_a_shifted_file_worse_than_fastcdc() {
    let env = Env::empty();
    let data = noise(2 << 20, 7);
    let mut shifted = b"one new line at the top\n".to_vec();
    shifted.extend_from_slice(&data);
    let (a, b) = (env.path("a.bin"), env.path("b.bin"));
    std::fs::write(&a, &data).unwrap();
    std::fs::write(&b, &shifted).unwrap();
    let doc = analyze_json(
        &env,
        &[
            a.as_os_str(),
            b.as_os_str(),
            OsStr::new("--chunker=fastcdc:4K,16K,64K"),
            OsStr::new("--chunker=fixed:16K"),
        ],
    );
    let cdc = number(&spec(&doc, "fastcdc:4K,16K,64K")["dedup_ratio"]);
    let fixed = number(&spec(&doc, "fixed:16K")["dedup_ratio"]);
    assert!(cdc > 1.8, "fastcdc dedup {cdc}: {doc}");
    assert!(fixed < 1.1, "fixed dedup {fixed}: {doc}");
    let added = &doc["versions"][1]["added"];
    assert!(added[0]["bytes"].as_u64() < Some(100_000), "{doc}");
    assert!(added[1]["bytes"].as_u64() > Some(2_000_000), "{doc}");
}

#[test]
fn page_specs_follow_a_sqlite_database_page_size() {
    let env = Env::empty();
    let db = env.path("app.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 8192; CREATE TABLE t(x); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT randomblob(300) FROM n;",
        )
        .unwrap();
    }
    let size = std::fs::metadata(&db).unwrap().len();
    assert_eq!(size % 8192, 0);
    let doc = analyze_json(
        &env,
        &[db.as_os_str(), OsStr::new("--chunker=pages-fixed:1")],
    );
    let s = spec(&doc, "pages-fixed:1");
    assert_eq!(s["chunks"].as_u64(), Some(size / 8192), "{doc}");
    assert_eq!(s["kind"], "pages-fixed");
}

#[test]
fn human_output_has_the_spec_table_histograms_and_versions() {
    let env = Env::empty();
    let file = env.path("file.bin");
    std::fs::write(&file, noise(300_000, 3)).unwrap();
    let out = analyze(
        &env,
        [
            file.as_os_str(),
            file.as_os_str(),
            OsStr::new("--chunker"),
            OsStr::new("fixed:4K"),
            OsStr::new("--chunker"),
            OsStr::new("pages:1,4,16"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    for needle in [
        "Analyzed 2 version(s): 2 file(s)",
        "Spec",
        "Dedup",
        "zstd",
        "MB/s",
        "Chunk sizes, fixed:4K:",
        "Chunk sizes, pages:1,4,16:",
        "Added by each version",
        " 0.0% ",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    // Twice the same file: dedup 2.00 for both specs.
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("fixed:4K ") || l.starts_with("pages:1,4,16 "))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().all(|r| r.contains(" 2.00 ")), "{text}");
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn bad_specs_are_usage_errors_that_show_a_valid_example() {
    let env = Env::empty();
    let file = env.path("f");
    std::fs::write(&file, b"data").unwrap();
    for (spec, says) in [
        ("fastcdc:5000,16K,64K", "power of two"),
        ("fastcdc:1M,256K,4M", "min_size < avg_size < max_size"),
        ("pages:4,2,16", "min_pages <= avg_pages <= max_pages"),
        ("rabin:1,2,3", "unknown chunker kind `rabin`"),
        ("fixed", "fixed:4K"),
    ] {
        let out = analyze(
            &env,
            [file.as_os_str(), OsStr::new("--chunker"), OsStr::new(spec)],
        );
        assert_eq!(code(&out), 2, "{spec}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{spec}: {err}");
        assert!(err.contains(spec), "{spec}: {err}");
        assert!(err.contains("fastcdc:256K,1M,4M"), "{spec}: {err}");
        assert!(out.stdout.is_empty(), "{}", describe(&out));
    }
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let env = Env::empty();
    let there = env.path("there");
    std::fs::write(&there, b"data").unwrap();
    let missing = env.path("missing");
    let out = analyze(&env, [there.as_os_str(), missing.as_os_str()]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

#[test]
fn an_unreadable_file_is_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::empty();
    let dir = env.path("dir");
    std::fs::create_dir(&dir).unwrap();
    let bad = if can_read_unreadable(&dir) {
        // Root reads a mode-000 file; /proc/self/mem opens, but reading its start fails.
        let mem = Path::new("/proc/self/mem");
        if !mem.exists() {
            return;
        }
        mem.to_path_buf()
    } else {
        let secret = dir.join("secret.txt");
        std::fs::write(&secret, b"hidden").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        secret
    };
    std::fs::write(dir.join("ok.txt"), b"readable").unwrap();
    let out = analyze(
        &env,
        [OsStr::new("--json"), dir.as_os_str(), bad.as_os_str()],
    );
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let doc = json(&out);
    assert_eq!(doc["files"], 1, "{doc}");
    assert_eq!(doc["bytes"], 8, "{doc}");
    assert_eq!(doc["warnings"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(
        doc["warnings"][0]["path"],
        bad.to_string_lossy().as_ref(),
        "{doc}"
    );

    // The text output warns on standard error, naming the path.
    let out = analyze(&env, [dir.as_os_str(), bad.as_os_str()]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("warning: {}", bad.display())),
        "{}",
        describe(&out)
    );
}

#[test]
fn help_explains_the_specs_and_the_index_figure() {
    let out = std::process::Command::new(crate::util::binary())
        .args(["analyze", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let help = stdout(&out);
    for needle in [
        "fastcdc:MIN,AVG,MAX",
        "fixed:SIZE",
        "pages:MIN,AVG,MAX",
        "4096-byte pages",
    ] {
        assert!(help.contains(needle), "no {needle:?} in:\n{help}");
    }
    let figure = format!("x {} bytes", respaldo::INDEX_BYTES_PER_CHUNK);
    assert!(help.contains(&figure), "no {figure:?} in:\n{help}");
}

/// `init --chunker` stores the parameters: the repository cuts exactly where `analyze` says
/// (unencrypted, so the gear table is not seeded), and restores byte for byte.
#[test]
fn init_chunker_is_stored_and_used_by_backups() {
    let mut env = Env::empty();
    env.password = None;
    let out = env.ok([
        "init",
        "--no-encryption",
        "--json",
        "--chunker",
        "fastcdc:16K,64K,256K",
    ]);
    let init = json(&out);
    assert_eq!(init["chunker"]["spec"], "fastcdc:16K,64K,256K", "{init}");
    assert_eq!(init["chunker"]["min_size"], 16384, "{init}");
    assert_eq!(init["chunker"]["avg_size"], 65536, "{init}");
    assert_eq!(init["chunker"]["max_size"], 262_144, "{init}");

    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let file = src.join("data.bin");
    std::fs::write(&file, noise(3 << 20, 11)).unwrap();
    env.backup(&[&src]);
    let stats = json(&env.ok(["stats", "--json"]));

    let doc = analyze_json(
        &env,
        &[
            file.as_os_str(),
            OsStr::new("--chunker=fastcdc:16K,64K,256K"),
        ],
    );
    let predicted = spec(&doc, "fastcdc:16K,64K,256K")["unique_chunks"]
        .as_u64()
        .unwrap();
    assert!(predicted > 20, "{doc}");
    assert_eq!(stats["unique_chunks"].as_u64(), Some(predicted), "{stats}");

    let target = env.path("restore");
    env.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    let restored = tree::restored(&target, &file);
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        std::fs::read(&file).unwrap()
    );

    // Encrypted: the same parameters are stored (the gear table is seeded from the key).
    let encrypted = Env::empty();
    let out = encrypted.ok(["init", "--json", "--chunker", "fastcdc:1K,4K,16K,2"]);
    assert_eq!(json(&out)["chunker"]["spec"], "fastcdc:1K,4K,16K,2");
}

#[test]
fn init_refuses_chunkers_a_repository_cannot_store() {
    let env = Env::empty();
    for (spec, says) in [
        ("fixed:4K", "FastCDC only"),
        ("pages:1,4,16", "FastCDC only"),
        ("fastcdc:1K,2K", "MIN,AVG,MAX"),
    ] {
        let out = env.run(["init", "--chunker", spec]);
        assert_eq!(code(&out), 2, "{spec}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains(says) && err.contains("fastcdc:256K,1M,4M"),
            "{spec}: {err}"
        );
        assert!(
            !Path::new(&env.repo).exists(),
            "{spec}: a repository was created"
        );
    }
}
