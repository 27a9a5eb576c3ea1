//! The command line as clap sees it: raw flags, and the parsers that turn snapshot names and
//! times into engine values.
//!
//! Nothing here touches a repository. Each command module turns its arguments into the
//! engine's option structs; [`Global`] becomes a [`crate::output::Ui`] in one place.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};
use respaldo::SnapshotSpec;

const ENVIRONMENT_HELP: &str = "\
Environment:
  RESPALDO_REPOSITORY     repository location (instead of --repo)
  RESPALDO_PASSWORD       repository password
  RESPALDO_PASSWORD_FILE  file holding the password (instead of --password-file)
  RESPALDO_CACHE_DIR      folder for the local index cache (default: ~/.cache/respaldo)
  RESPALDO_LOG_DB         backup log database (default: ~/.local/state/respaldo/log.db)
  RESPALDO_CONFIG         config file of run, jobs and service (instead of --config)

Exit codes: 0 success, 1 error, 2 invalid arguments, 3 backup saved but some sources could not
be read, 10 no repository at the location, 11 repository locked, 12 wrong or missing password.";

/// A content-addressed, deduplicating backup store.
#[derive(Debug, Parser)]
#[command(name = "respaldo", version, propagate_version = true, after_help = ENVIRONMENT_HELP)]
pub struct Args {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, ClapArgs)]
pub struct Global {
    /// Repository location: a local folder, or `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` or
    /// `s3:BUCKET[/PREFIX]` (AWS) for an S3 bucket (see docs/object-storage.md).
    #[arg(
        long,
        short = 'r',
        global = true,
        help_heading = "Global options",
        env = "RESPALDO_REPOSITORY",
        value_name = "PATH"
    )]
    pub repo: Option<PathBuf>,
    /// Read the repository password from FILE (first line).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "RESPALDO_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Print JSON instead of text (JSON lines for backup and restore).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print nothing but errors and the data asked for.
    #[arg(
        long,
        short = 'q',
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// When the repository is locked, keep trying for DURATION (`30s`, `5m`, `1h`) before
    /// failing.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub retry_lock: Option<std::time::Duration>,
    /// Read without taking a lock (restore, check), e.g. from read-only storage. Nothing then
    /// stops a prune from deleting what is being read: only when no prune can run.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_lock: bool,
    /// The SQLite database of the backup log, where backup, restore, forget, prune and check
    /// each record a row [default: ~/.local/state/respaldo/log.db].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "RESPALDO_LOG_DB",
        value_name = "PATH"
    )]
    pub log_db: Option<PathBuf>,
    /// Do not write the backup log.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_log: bool,
    /// The JSON config file of `run`, `jobs` and `service`
    /// [default: ~/.config/respaldo/config.json].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "RESPALDO_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print more detail (each warning, each file); repeat for more.
    #[arg(long, short = 'v', global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and folders (or standard input) into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// Restore a snapshot, whole or in part, into a folder.
    Restore(RestoreArgs),
    /// List the files of a snapshot.
    Ls(LsArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Write one file of a snapshot to standard output.
    Dump(DumpArgs),
    /// Show sizes, deduplication and compression of a snapshot or of the repository.
    Stats(StatsArgs),
    /// Remove snapshots by a retention policy (--keep-*) or by id; the data stays until prune.
    Forget(crate::commands::forget::ForgetArgs),
    /// Remove stale locks (left by processes that are gone).
    Unlock(UnlockArgs),
    /// Manage the passwords (key files) of an encrypted repository: list, add, remove, passwd.
    Key(crate::commands::key::KeyArgs),
    /// Check that every snapshot can be restored; `--read-data` also verifies every blob.
    Check(crate::commands::check::CheckArgs),
    /// Copy snapshots from another repository (--from-repo) into this one.
    Copy(CopyArgs),
    /// Delete data no snapshot needs any more (after `forget`).
    Prune(crate::commands::prune::PruneArgs),
    /// Rebuild the index from the packs, or write snapshots without lost files.
    Repair(crate::commands::repair::RepairArgs),
    /// Show the backup log: one row per backup, restore, forget, prune and check.
    Log(crate::commands::log::LogArgs),
    /// Run a job of the config now: backup, then its retention (forget), then prune if set.
    Run(crate::commands::jobs::RunArgs),
    /// List the jobs of the config with their next run.
    Jobs,
    /// Run the scheduled jobs of the config when due, in the foreground, until SIGTERM or
    /// SIGINT.
    Service,
    /// Measure how files (or versions of a tree) deduplicate and compress under chunker
    /// settings, without a repository.
    Analyze(crate::commands::analyze::AnalyzeArgs),
}

/// `unlock`.
#[derive(Debug, ClapArgs)]
pub struct UnlockArgs {
    /// Remove every lock, also those of running processes and unreadable ones. Only when no
    /// other respaldo process uses the repository.
    #[arg(long)]
    pub remove_all: bool,
}

/// `init`.
#[derive(Debug, ClapArgs)]
pub struct InitArgs {
    /// Store everything unencrypted (no password; chunk ids reveal content hashes).
    #[arg(long, conflicts_with_all = ["kdf_memory", "kdf_passes"])]
    pub no_encryption: bool,
    /// How to cut data into chunks: fastcdc:MIN,AVG,MAX (sizes with an optional K or M
    /// suffix, powers of two), such as fastcdc:128K,512K,2M, the default. Fixed for the life of
    /// the repository: measure first with `respaldo analyze`.
    #[arg(long, value_name = "SPEC", value_parser = parse_repository_chunker)]
    pub chunker: Option<respaldo::ChunkerParams>,
    /// Repository format: 2, the default, stores small folder listings together, which makes
    /// frequent snapshots of many folders smaller; 1 for a repository that versions of
    /// respaldo from before format 2 must read.
    #[arg(long, value_name = "N", default_value_t = respaldo::FORMAT_MAJOR,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(respaldo::FORMAT_MAJOR)))]
    pub format_version: u16,
    /// The cost of deriving the key from the password.
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// Parses `init --chunker`: a chunker spec of the FastCDC kind, the only one a repository
/// stores.
fn parse_repository_chunker(text: &str) -> Result<respaldo::ChunkerParams, String> {
    let spec = text
        .parse::<respaldo::ChunkingSpec>()
        .map_err(|e| e.to_string())?;
    spec.fastcdc_params().ok_or_else(|| {
        format!(
            "a repository chunks with FastCDC only, so `{spec}` ({} chunking) cannot be \
             used: give fastcdc:MIN,AVG,MAX such as fastcdc:256K,1M,4M (`respaldo analyze` \
             measures {} chunking for comparison)",
            spec.kind(),
            spec.kind()
        )
    })
}

/// The cost of deriving a key from a new password (`init`, `key add`, `key passwd`): every
/// command that opens the repository with that password pays it once.
#[derive(Debug, ClapArgs)]
pub struct KdfArgs {
    /// Memory the key derivation (Argon2id) takes for this password, with a K, M or G suffix
    /// (a plain number is MiB): 8M to 4G, default 64M. More memory makes guessing the
    /// password costlier; every command that opens the repository needs that much memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_kdf_memory)]
    pub kdf_memory: Option<u32>,
    /// Passes the key derivation makes over its memory: 1 to 64, default 3. Its time grows
    /// with memory times passes (about 0.1 s at the defaults).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub kdf_passes: Option<u32>,
    /// Test only: derive the key with the cheapest Argon2id parameters, so that the password
    /// protects nothing. Never use it for real data. `--kdf-memory` and `--kdf-passes` win
    /// over it.
    #[arg(
        long,
        hide = true,
        env = "RESPALDO_INSECURE_KDF_FOR_TESTS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure_kdf: bool,
}

impl KdfArgs {
    /// The Argon2id cost asked for: the defaults (or the test-only cheapest ones) for
    /// whatever was not given.
    pub fn params(&self) -> respaldo::KdfParams {
        let base = if self.insecure_kdf && self.kdf_memory.is_none() && self.kdf_passes.is_none() {
            respaldo::KdfParams::insecure_fast()
        } else {
            respaldo::KdfParams::default()
        };
        respaldo::KdfParams {
            memory_kib: self.kdf_memory.unwrap_or(base.memory_kib),
            iterations: self.kdf_passes.unwrap_or(base.iterations),
            ..base
        }
    }
}

/// Smallest memory `--kdf-memory` accepts, in KiB (below it Argon2id protects little).
const KDF_MEMORY_MIN_KIB: u64 = 8 * 1024;
/// Largest memory `--kdf-memory` accepts, in KiB: what a key file may ask for.
const KDF_MEMORY_MAX_KIB: u64 = respaldo::MAX_KDF.memory_kib as u64;

/// Parses `--kdf-memory`: digits with an optional K, M or G suffix (MiB without one), into KiB.
fn parse_kdf_memory(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits);
    let bad = || {
        format!("{text:?} is not a size: write a number with a K, M or G suffix, such as 64M or 1G")
    };
    if number.is_empty() {
        return Err(bad());
    }
    let out_of_range = || format!("{text:?} is out of range: give 8M to 4G");
    // Digits only: a number too long for u64 is out of range, not malformed.
    let number: u64 = number.parse().map_err(|_| out_of_range())?;
    let kib_per_unit: u64 = match suffix.to_ascii_lowercase().as_str() {
        "k" | "kib" => 1,
        "" | "m" | "mib" => 1024,
        "g" | "gib" => 1024 * 1024,
        _ => return Err(bad()),
    };
    let kib = number.saturating_mul(kib_per_unit);
    if !(KDF_MEMORY_MIN_KIB..=KDF_MEMORY_MAX_KIB).contains(&kib) {
        return Err(out_of_range());
    }
    u32::try_from(kib).map_err(|_| out_of_range())
}

/// `backup`.
#[derive(Debug, ClapArgs)]
pub struct BackupArgs {
    /// Files and folders to back up.
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["stdin", "sqlite"],
        conflicts_with_all = ["stdin", "stdin_filename"]
    )]
    pub paths: Vec<PathBuf>,
    /// Back up the live SQLite database DB consistently while other processes write to it
    /// (repeatable). DB may lie inside a PATH: its copy replaces the live file there, and its
    /// -wal, -shm and -journal files are left out.
    #[arg(long = "sqlite", value_name = "DB", conflicts_with_all = ["stdin", "stdin_filename"])]
    pub sqlite: Vec<PathBuf>,
    /// Add a tag to the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Leave out paths matching GLOB, gitignore syntax (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line (repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Leave out folders that contain a file named NAME (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Do not cross file system boundaries.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Compare with this snapshot instead of the newest one of the same host and paths.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Back up standard input as one file.
    #[arg(long)]
    pub stdin: bool,
    /// Name of the file that holds standard input in the snapshot [default: stdin].
    #[arg(long, value_name = "NAME", requires = "stdin")]
    pub stdin_filename: Option<String>,
}

/// Snapshot filters shared by commands that list snapshots.
#[derive(Debug, ClapArgs)]
pub struct FilterArgs {
    /// Only snapshots of HOST (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots carrying TAG (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that include PATH (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `snapshots`.
#[derive(Debug, ClapArgs)]
pub struct SnapshotsArgs {
    /// Which snapshots to list.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `copy`.
#[derive(Debug, ClapArgs)]
#[command(after_help = crate::commands::copy::AFTER_HELP)]
pub struct CopyArgs {
    /// Snapshots of the source to copy: ids, unique id prefixes or `latest` (default: every
    /// snapshot passing the filters).
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub snapshots: Vec<SnapshotSpec>,
    /// The repository to copy from: a folder or an `s3:` location, as --repo (the destination).
    #[arg(long, env = "RESPALDO_FROM_REPOSITORY", value_name = "LOCATION")]
    pub from_repo: PathBuf,
    /// Read the source repository's password from FILE (first line); else
    /// RESPALDO_FROM_PASSWORD, else a prompt on a terminal.
    #[arg(long, env = "RESPALDO_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Which snapshots of the source to copy.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only list what would be copied and what skipped; read no data, write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `restore`.
#[derive(Debug, ClapArgs)]
pub struct RestoreArgs {
    /// Snapshot to restore: an id, a unique id prefix, or `latest`.
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot, required_unless_present = "at")]
    pub snapshot: Option<SnapshotSpec>,
    /// Restore the newest snapshot taken at or before TIME (RFC 3339, or
    /// `YYYY-MM-DD HH:MM[:SS]` in local time).
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "snapshot")]
    pub at: Option<i64>,
    /// Folder to restore into (created if missing).
    #[arg(long, short = 't', value_name = "DIR")]
    pub target: PathBuf,
    /// Restore only paths matching P, with everything below them (repeatable).
    #[arg(long = "include", value_name = "P")]
    pub includes: Vec<String>,
    /// Leave out paths matching P, with everything below them (repeatable).
    #[arg(long = "exclude", value_name = "P")]
    pub excludes: Vec<String>,
    /// Read every restored file back and compare it with the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// Replace SQLite databases even when another process has them open (restore refuses
    /// otherwise). Risky: that process keeps using the old, replaced database, and whatever it
    /// writes afterwards is lost; restart it after the restore.
    #[arg(long)]
    pub force: bool,
}

/// `ls`.
#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// Snapshot: an id, a unique id prefix, or `latest`.
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub snapshot: SnapshotSpec,
    /// List only below this path of the snapshot.
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
}

/// `diff`.
#[derive(Debug, ClapArgs)]
pub struct DiffArgs {
    /// The older snapshot.
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub from: SnapshotSpec,
    /// The newer snapshot.
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub to: SnapshotSpec,
}

/// `dump`.
#[derive(Debug, ClapArgs)]
pub struct DumpArgs {
    /// Snapshot: an id, a unique id prefix, or `latest`.
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub snapshot: SnapshotSpec,
    /// Path of the file in the snapshot.
    #[arg(value_name = "FILE")]
    pub file: String,
}

/// `stats`.
#[derive(Debug, ClapArgs)]
pub struct StatsArgs {
    /// Snapshot: an id, a unique id prefix, or `latest` (default: every snapshot).
    #[arg(value_name = "SNAPSHOT", value_parser = parse_snapshot)]
    pub snapshot: Option<SnapshotSpec>,
}

/// A snapshot name: `latest`, or an id or unique id prefix.
pub fn parse_snapshot(s: &str) -> Result<SnapshotSpec, String> {
    if s == "latest" {
        return Ok(SnapshotSpec::Latest);
    }
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "expected `latest`, a snapshot id or a unique id prefix (hex digits)".to_string(),
        );
    }
    Ok(SnapshotSpec::Id(s.to_ascii_lowercase()))
}

/// A duration such as `30s`, `5m`, `1h30m` or `48h` (the engine's parser, shared with the
/// config file).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    respaldo::parse_duration(s)
}

/// A point in time as nanoseconds since the Unix epoch: RFC 3339 with an offset
/// (`2026-11-20T13:00:00+01:00`), or a civil time in the system time zone
/// (`2026-11-20 13:00`, `2026-11-20 13:00:30`, `2026-11-20T13:00`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let timestamp = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else {
        let civil: jiff::civil::DateTime = s.parse().map_err(|_| {
            format!(
                "cannot read {s:?} as a time: use RFC 3339 (2026-11-20T13:00:00+01:00) or \
                 `YYYY-MM-DD HH:MM[:SS]` in local time"
            )
        })?;
        jiff::tz::TimeZone::system()
            .to_timestamp(civil)
            .map_err(|e| format!("{s:?} is not a valid local time: {e}"))?
    };
    i64::try_from(timestamp.as_nanosecond())
        .map_err(|_| format!("{s:?} is out of the supported range of times"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_memory_sizes() {
        assert_eq!(parse_kdf_memory("8m"), Ok(8 * 1024));
        assert_eq!(parse_kdf_memory(" 64M "), Ok(64 * 1024));
        assert_eq!(parse_kdf_memory("64"), Ok(64 * 1024));
        assert_eq!(parse_kdf_memory("9216K"), Ok(9 * 1024));
        assert_eq!(parse_kdf_memory("4G"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_kdf_memory("1GiB"), Ok(1024 * 1024));
        for out_of_range in [
            "0",
            "7M",
            "8191K",
            "4194305K",
            "5G",
            "99999999999999999999M",
        ] {
            let err = parse_kdf_memory(out_of_range).expect_err(out_of_range);
            assert!(err.contains("out of range"), "{out_of_range}: {err}");
        }
        for malformed in ["", "M", "64 M", "lots", "-8M", "8T", "1.5G"] {
            let err = parse_kdf_memory(malformed).expect_err(malformed);
            assert!(err.contains("not a size"), "{malformed}: {err}");
        }
    }

    #[test]
    fn kdf_params_fill_in_the_defaults() {
        let args = |memory, passes, insecure| KdfArgs {
            kdf_memory: memory,
            kdf_passes: passes,
            insecure_kdf: insecure,
        };
        let default = respaldo::KdfParams::default();
        assert_eq!(args(None, None, false).params(), default);
        assert_eq!(
            args(None, None, true).params(),
            respaldo::KdfParams::insecure_fast()
        );
        // Given options win over the test-only cheapest cost, and the rest is the default.
        let passes_only = args(None, Some(5), true).params();
        assert_eq!(
            (passes_only.memory_kib, passes_only.iterations),
            (default.memory_kib, 5)
        );
        let memory_only = args(Some(16 * 1024), None, false).params();
        assert_eq!(
            (memory_only.memory_kib, memory_only.iterations),
            (16 * 1024, default.iterations)
        );
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(parse_snapshot("latest"), Ok(SnapshotSpec::Latest));
        assert_eq!(
            parse_snapshot("AB12"),
            Ok(SnapshotSpec::Id("ab12".to_string()))
        );
        assert!(parse_snapshot("").is_err());
        assert!(parse_snapshot("lat").is_err());
        assert!(parse_snapshot("../x").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Ok(1_000_000_000));
        let tz = jiff::tz::TimeZone::system();
        let expect = |dt: jiff::civil::DateTime| {
            i64::try_from(
                tz.to_timestamp(dt)
                    .map(|t| t.as_nanosecond())
                    .unwrap_or_default(),
            )
            .unwrap_or_default()
        };
        let minute = jiff::civil::date(2026, 11, 20).at(13, 0, 0, 0);
        assert_eq!(parse_time("2026-11-20 13:00"), Ok(expect(minute)));
        assert_eq!(parse_time("2026-11-20T13:00"), Ok(expect(minute)));
        let second = jiff::civil::date(2026, 11, 20).at(13, 0, 30, 0);
        assert_eq!(parse_time("2026-11-20 13:00:30"), Ok(expect(second)));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01 00:00").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
