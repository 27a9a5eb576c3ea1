//! The JSON configuration: named jobs (repository, password source, sources, excludes, tags,
//! schedule and time zone, retention, prune, hooks, backup log), read by [`Config::load`].
//!
//! `docs/service.md` documents every field. Parsing is strict: an unknown field, a value of
//! the wrong type, a cron expression, time zone, duration or share that cannot be read, an
//! unknown event name in `hooks`, or a job with nothing to back up is an [`Error::Config`]
//! naming the file, the field (`jobs.nightly.schedule`) and, where the JSON parser knows it,
//! the line and column, with what is expected instead.
//!
//! Relative paths are taken relative to the folder of the config file, and a leading `~/`
//! stands for the home folder, so that a config means the same whatever folder the service
//! is started from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chunk_store::Location;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use snapshot_index::{GroupBy, RetentionPolicy};

use crate::error::{Error, Result};
use crate::events::{EventKind, Operation};
use crate::hooks::{DEFAULT_HOOK_TIMEOUT, HookCommand};

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "RESPALDO_CONFIG";

/// The default share of unused bytes above which prune repacks a pack (`max_unused`).
pub const DEFAULT_MAX_UNUSED: f64 = 0.10;

/// The config file to read when none is named: `RESPALDO_CONFIG`, else
/// `$XDG_CONFIG_HOME/respaldo/config.json`, else `$HOME/.config/respaldo/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(CONFIG_ENV).or_else(|| {
        var("XDG_CONFIG_HOME")
            .map(|p| p.join("respaldo"))
            .or_else(|| var("HOME").map(|p| p.join(".config").join("respaldo")))
            .map(|dir| dir.join("config.json"))
    })
}

/// A parsed and checked configuration file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The file it was read from (relative paths in it were resolved against its folder).
    pub path: PathBuf,
    /// The backup log database of every job that names none (`log_db`).
    pub log_db: Option<PathBuf>,
    /// The jobs, by name.
    pub jobs: BTreeMap<String, Job>,
}

/// Where a job's repository password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of this file (`password_file`).
    File(PathBuf),
    /// This environment variable (`password_env`).
    Env(String),
    /// `RESPALDO_PASSWORD` if it is set; otherwise none (an unencrypted repository).
    Default,
}

/// The retention policy of a job: what `forget` keeps after each backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The `keep_*` rules.
    pub policy: RetentionPolicy,
    /// How the job's snapshots are grouped before the rules apply (`group_by`).
    pub group_by: GroupBy,
}

/// One job of the config; see `docs/service.md` for each field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job {
    /// Its name (the key in `jobs`).
    pub name: String,
    /// The repository: a local folder (relative to the config file's folder) or an
    /// `s3:` location.
    pub repository: Location,
    /// Where the password comes from.
    pub password: PasswordSource,
    /// Files and folders to back up.
    pub sources: Vec<PathBuf>,
    /// Live SQLite databases to copy consistently.
    pub sqlite: Vec<PathBuf>,
    /// Exclude patterns (gitignore syntax).
    pub exclude: Vec<String>,
    /// Skip folders holding a file of one of these names.
    pub exclude_if_present: Vec<String>,
    /// Do not cross file system boundaries.
    pub one_file_system: bool,
    /// Tags of the snapshots.
    pub tags: Vec<String>,
    /// Host name recorded (default: this machine's).
    pub host: Option<String>,
    /// When the service runs it; `None`: only when asked (`respaldo run JOB`).
    pub schedule: Option<Schedule>,
    /// The time zone name given (`timezone`); `None`: the system's.
    pub timezone: Option<String>,
    /// The time zone of the schedule and of the retention's days, weeks, months and years.
    pub time_zone: TimeZone,
    /// What forget keeps after each backup; `None`: no forget.
    pub retention: Option<Retention>,
    /// Whether to prune after forget.
    pub prune: bool,
    /// Prune repacks a pack when more than this share of it is unused; `None`: never.
    pub max_unused: Option<f64>,
    /// Hook commands by event.
    pub hooks: BTreeMap<EventKind, Vec<HookCommand>>,
    /// How long a hook may run before it is killed.
    pub hook_timeout: Duration,
    /// The backup log database of this job (overrides the top-level `log_db`).
    pub log_db: Option<PathBuf>,
    /// The folder of the local index cache (default: [`crate::default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
}

impl Job {
    /// The name of the job's time zone: the one configured, else the system's IANA name
    /// (`"system"` when it has none).
    pub fn time_zone_name(&self) -> String {
        self.timezone.clone().unwrap_or_else(|| {
            self.time_zone
                .iana_name()
                .map_or_else(|| "system".to_string(), str::to_string)
        })
    }

    /// Everything the job backs up: sources, then SQLite databases.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.sources.iter().chain(&self.sqlite).cloned().collect()
    }
}

/// The next time `job` is due strictly after `after`, in the job's time zone; `None` when it
/// has no schedule (or the schedule matches no later time).
pub fn next_run(job: &Job, after: Timestamp) -> Option<Timestamp> {
    job.schedule.as_ref()?.next_after(after, &job.time_zone)
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read it: {e}"),
            position: None,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`, the content of the config file `path` (named in errors;
    /// relative paths in the config are resolved against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let fail = |field: String, message: String| Error::Config {
            file: path.to_path_buf(),
            field,
            message,
            position: None,
        };
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| serde_error(path, &e.path().to_string(), e.inner()))?;
        deserializer.end().map_err(|e| serde_error(path, "", &e))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &Path| resolve_path(&base, p);

        let mut jobs = BTreeMap::new();
        for (name, raw) in raw.jobs {
            let at = |field: &str| {
                if field.is_empty() {
                    format!("jobs.{name}")
                } else {
                    format!("jobs.{name}.{field}")
                }
            };
            if name.trim().is_empty() {
                return Err(fail(
                    "jobs".to_string(),
                    "a job has an empty name: name each job (for example \"nightly\")".into(),
                ));
            }
            if raw.repository.as_os_str().is_empty() {
                return Err(fail(
                    at("repository"),
                    "is empty: expected the repository's folder".to_string(),
                ));
            }
            let repository = match Location::parse(raw.repository.as_os_str()) {
                Ok(Location::Local(path)) => Location::Local(resolve(&path)),
                Ok(remote) => remote,
                Err(e) => return Err(fail(at("repository"), e.to_string())),
            };
            if raw.sources.is_empty() && raw.sqlite.is_empty() {
                return Err(fail(
                    at(""),
                    "nothing to back up: expected at least one path in \"sources\" or one \
                     database in \"sqlite\""
                        .to_string(),
                ));
            }
            for (field, list) in [("sources", &raw.sources), ("sqlite", &raw.sqlite)] {
                if let Some(i) = list.iter().position(|p| p.as_os_str().is_empty()) {
                    return Err(fail(
                        format!("{}[{i}]", at(field)),
                        "is empty: expected a path".to_string(),
                    ));
                }
            }
            let password = match (raw.password_file, raw.password_env) {
                (Some(_), Some(_)) => {
                    return Err(fail(
                        at(""),
                        "both \"password_file\" and \"password_env\" are given: expected at \
                         most one of them"
                            .to_string(),
                    ));
                }
                (Some(file), None) => PasswordSource::File(resolve(&file)),
                (None, Some(var)) if var.is_empty() || var.contains('=') => {
                    return Err(fail(
                        at("password_env"),
                        format!("{var:?} is not an environment variable name"),
                    ));
                }
                (None, Some(var)) => PasswordSource::Env(var),
                (None, None) => PasswordSource::Default,
            };
            let retention = match raw.retention {
                None => None,
                Some(r) => {
                    let retention = r.into_retention();
                    if retention.policy.is_empty() {
                        return Err(fail(
                            at("retention"),
                            "has no keep_* rule, so it would keep everything: expected at \
                             least one rule (for example {\"keep_daily\": 7}), or no \
                             \"retention\" at all"
                                .to_string(),
                        ));
                    }
                    Some(retention)
                }
            };
            let mut hooks = BTreeMap::new();
            for (event, commands) in raw.hooks {
                // A job backs up, forgets and prunes: a hook on any other event never runs.
                if !matches!(
                    event.operation(),
                    Operation::Backup | Operation::Forget | Operation::Prune
                ) {
                    return Err(fail(
                        at(&format!("hooks.{}", event.as_str())),
                        "a job never emits this event (it backs up, forgets and prunes): \
                         expected a backup, forget or prune event"
                            .to_string(),
                    ));
                }
                let commands: Vec<HookCommand> = commands.into_iter().map(|c| c.0).collect();
                hooks.insert(event, commands);
            }
            if let Some(timeout) = &raw.hook_timeout
                && !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&timeout.0)
            {
                return Err(fail(
                    at("hook_timeout"),
                    "is out of range: expected from 1s to 24h".to_string(),
                ));
            }
            let (timezone, time_zone) = match raw.timezone {
                Some(zone) => (Some(zone.name), zone.zone),
                None => (None, TimeZone::system()),
            };
            let job = Job {
                name: name.clone(),
                repository,
                password,
                sources: raw.sources.iter().map(|p| resolve(p)).collect(),
                sqlite: raw.sqlite.iter().map(|p| resolve(p)).collect(),
                exclude: raw.exclude,
                exclude_if_present: raw.exclude_if_present,
                one_file_system: raw.one_file_system,
                tags: raw.tags,
                host: raw.host.filter(|h| !h.is_empty()),
                schedule: raw.schedule,
                timezone,
                time_zone,
                retention,
                prune: raw.prune,
                max_unused: raw.max_unused.map_or(Some(DEFAULT_MAX_UNUSED), |s| s.0),
                hooks,
                hook_timeout: raw.hook_timeout.map_or(DEFAULT_HOOK_TIMEOUT, |d| d.0),
                log_db: raw.log_db.as_deref().map(resolve),
                cache_dir: raw.cache_dir.as_deref().map(resolve),
            };
            jobs.insert(name, job);
        }
        Ok(Self {
            path: path.to_path_buf(),
            log_db: raw.log_db.as_deref().map(resolve),
            jobs,
        })
    }

    /// The job named `name`; an [`Error::Config`] listing the jobs when there is none.
    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "it defines no job".to_string()
            } else {
                format!("expected one of: {}", names.join(", "))
            };
            Error::Config {
                file: self.path.clone(),
                field: "jobs".to_string(),
                message: format!("no job named {name:?}: {known}"),
                position: None,
            }
        })
    }

    /// The backup log database `job` names, else the config's top-level one.
    pub fn log_db_for<'a>(&'a self, job: &'a Job) -> Option<&'a Path> {
        job.log_db.as_deref().or(self.log_db.as_deref())
    }
}

/// A path from the config: `~/...` in the home folder, a relative one in the config's folder.
fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
    {
        return PathBuf::from(home).join(rest);
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// An [`Error::Config`] from a serde error: the field path, the message without serde_json's
/// position suffix, and the position.
fn serde_error(file: &Path, field: &str, inner: &serde_json::Error) -> Error {
    let mut message = inner.to_string();
    let position = (inner.line() > 0).then(|| (inner.line(), inner.column()));
    if let Some((line, column)) = position {
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    if inner.is_syntax() || inner.is_eof() {
        message = format!("invalid JSON: {message}");
    }
    // `?` stands for a place serde_path_to_error could not name (after a syntax error).
    let mut field = field.trim_end_matches(".?");
    if field == "." || field == "?" {
        field = "";
    }
    // serde_path_to_error puts an unknown key in the path: name the object that holds it.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        if field == name {
            field = "";
        } else if let Some(parent) = field.strip_suffix(&format!(".{name}")) {
            field = parent;
        }
    }
    Error::Config {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.replace('`', "\""),
        position,
    }
}

/// The rest of [`Error::Config`]'s message: field, message, position.
pub(crate) fn config_detail(
    field: &str,
    message: &str,
    position: Option<(usize, usize)>,
) -> String {
    let mut text = String::new();
    if !field.is_empty() {
        text.push_str(field);
        text.push_str(": ");
    }
    text.push_str(message);
    if let Some((line, column)) = position {
        text.push_str(&format!(" (line {line}, column {column})"));
    }
    text
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    log_db: Option<PathBuf>,
    jobs: BTreeMap<String, RawJob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    repository: PathBuf,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    sources: Vec<PathBuf>,
    #[serde(default)]
    sqlite: Vec<PathBuf>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_if_present: Vec<String>,
    #[serde(default)]
    one_file_system: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    timezone: Option<ZoneName>,
    #[serde(default)]
    retention: Option<RawRetention>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    max_unused: Option<Share>,
    #[serde(default)]
    hooks: BTreeMap<EventKind, Vec<ConfigHook>>,
    #[serde(default)]
    hook_timeout: Option<HumanDuration>,
    #[serde(default)]
    log_db: Option<PathBuf>,
    #[serde(default)]
    cache_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default)]
    keep_last: Count,
    #[serde(default)]
    keep_hourly: Count,
    #[serde(default)]
    keep_daily: Count,
    #[serde(default)]
    keep_weekly: Count,
    #[serde(default)]
    keep_monthly: Count,
    #[serde(default)]
    keep_yearly: Count,
    #[serde(default)]
    keep_within: Option<Within>,
    #[serde(default)]
    keep_tags: Vec<String>,
    #[serde(default)]
    group_by: Option<GroupByValue>,
}

impl RawRetention {
    fn into_retention(self) -> Retention {
        Retention {
            policy: RetentionPolicy {
                keep_last: self.keep_last.0,
                keep_hourly: self.keep_hourly.0,
                keep_daily: self.keep_daily.0,
                keep_weekly: self.keep_weekly.0,
                keep_monthly: self.keep_monthly.0,
                keep_yearly: self.keep_yearly.0,
                keep_within: self.keep_within.map(|w| w.0),
                keep_tags: self.keep_tags,
            },
            group_by: self.group_by.map(|g| g.0).unwrap_or_default(),
        }
    }
}

/// A value read from a JSON string by `parse`, its error message kept.
macro_rules! string_value {
    ($type:ident, $expecting:expr, $parse:expr) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$type, E> {
                        let parse: fn(&str) -> Result<$type, String> = $parse;
                        parse(s).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

/// An IANA time zone, with its name.
struct ZoneName {
    name: String,
    zone: TimeZone,
}

string_value!(
    ZoneName,
    "an IANA time zone name such as \"Europe/Madrid\" or \"UTC\"",
    |s| {
        TimeZone::get(s)
            .map(|zone| ZoneName {
                name: s.to_string(),
                zone,
            })
            .map_err(|e| {
                format!(
                    "unknown time zone {s:?} ({e}): expected an IANA time zone name such as \
                     \"Europe/Madrid\", \"America/New_York\" or \"UTC\""
                )
            })
    }
);

/// `max_unused`: a share, or `None` for `unlimited`.
struct Share(Option<f64>);

string_value!(
    Share,
    "a percentage such as \"10%\", or \"unlimited\"",
    |s| { parse_max_unused(s).map(Share) }
);

/// `hook_timeout`.
struct HumanDuration(Duration);

string_value!(HumanDuration, "a duration such as \"30s\" or \"5m\"", |s| {
    parse_duration(s).map(HumanDuration)
});

/// `keep_within`.
struct Within(Duration);

string_value!(
    Within,
    "a duration in restic's form, such as \"7d\" or \"1y5m7d2h\"",
    |s| parse_keep_within(s).map(Within)
);

/// `group_by`.
struct GroupByValue(GroupBy);

string_value!(
    GroupByValue,
    "a comma-separated list of host, paths and tags (\"host,paths\"), or \"\" for one group",
    |s| {
        GroupBy::from_str(s).map(GroupByValue).map_err(|e| {
            format!(
                "unknown word {:?}: expected a comma-separated list of host, paths and tags \
                 (such as \"host,paths\"), or \"\" for one group",
                e.word
            )
        })
    }
);

/// A `keep_*` count: a whole number, or `"unlimited"` (`u32::MAX`).
#[derive(Default)]
struct Count(u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "a count (a whole number, 0 or more) or \"unlimited\"";
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n < u32::MAX)
                    .map(Count)
                    .ok_or_else(|| E::custom(format!("{n} is too large: expected {EXPECTED}")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("{n} is negative: expected {EXPECTED}"))),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Count, E> {
                if s.eq_ignore_ascii_case("unlimited") {
                    Ok(Count(u32::MAX))
                } else {
                    Err(E::custom(format!(
                        "{s:?} is not a count: expected {EXPECTED}"
                    )))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A hook command: a string (`sh -c`) or an array (program and arguments), as
/// [`HookCommand`]'s serde form, with a clearer error and empty commands refused.
struct ConfigHook(HookCommand);

impl<'de> Deserialize<'de> for ConfigHook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "a command: a string (run by sh -c) or an array of strings (a \
                                program and its arguments)";
        impl<'de> Visitor<'de> for V {
            type Value = ConfigHook;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ConfigHook, E> {
                if s.trim().is_empty() {
                    return Err(E::custom(format!("an empty command: expected {EXPECTED}")));
                }
                Ok(ConfigHook(HookCommand::shell(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigHook, A::Error> {
                let mut argv: Vec<String> = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err(de::Error::custom(format!(
                        "an empty program: expected {EXPECTED}"
                    )));
                }
                Ok(ConfigHook(HookCommand::Argv(argv)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A cron schedule: 5 fields (minute, hour, day of month, month, day of week), or 6 with
/// seconds first for frequent schedules. Parsed by `croner`; `@daily`, `@hourly` and the like
/// are accepted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a cron expression; the error says what is wrong and what is expected.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "invalid cron expression {expression:?} ({why}): expected 5 fields (minute \
                 hour day-of-month month day-of-week, such as \"0 1 * * *\" for 01:00 every \
                 day), or 6 with seconds first (\"*/30 * * * * *\")"
            )
        };
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(expression).map_err(|e| bad(e.to_string()))?;
        let schedule = Self {
            expression: expression.trim().to_string(),
            cron,
        };
        // A pattern such as "0 0 31 2 *" parses, but never comes.
        if schedule
            .next_after(Timestamp::now(), &TimeZone::UTC)
            .is_none()
        {
            return Err(bad("it matches no date".to_string()));
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `after` that the schedule matches, in `time_zone`
    /// (a wall-clock time skipped by a daylight saving change is skipped; a repeated one
    /// runs once, as croner decides).
    pub fn next_after(&self, after: Timestamp, time_zone: &TimeZone) -> Option<Timestamp> {
        let start = CronZoned(after.to_zoned_datetime(time_zone.clone()));
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z| z.0.timestamp())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value!(
    Schedule,
    "a cron expression such as \"0 1 * * *\"",
    Schedule::parse
);

/// A zoned time that croner can search over (croner's own jiff support is for jiff 0.2).
#[derive(Clone)]
struct CronZoned(jiff::ZonedDateTime);

fn to_civil(dt: jiff::civil::DateTime) -> croner::CivilDateTime {
    croner::CivilDateTime::new(
        croner::CivilDate::from_parts_unchecked(
            i32::from(dt.year()),
            dt.month().unsigned_abs().into(),
            dt.day().unsigned_abs().into(),
        ),
        croner::CivilTime::from_parts_unchecked(
            dt.hour().unsigned_abs().into(),
            dt.minute().unsigned_abs().into(),
            dt.second().unsigned_abs().into(),
        ),
    )
}

impl croner::CronDateTime for CronZoned {
    fn to_civil(&self) -> croner::CivilDateTime {
        to_civil(self.0.datetime())
    }

    fn civil_weekday(&self) -> croner::Weekday {
        croner::Weekday::from_days_from_sunday(
            self.0
                .weekday()
                .to_sunday_zero_offset()
                .unsigned_abs()
                .into(),
        )
    }

    fn resolve_civil(
        &self,
        civil: croner::CivilDateTime,
    ) -> Result<croner::Resolution<Self>, croner::errors::CronError> {
        use croner::errors::CronError;
        use jiff::tz::AmbiguousOffset;
        let part = |n: u32| i8::try_from(n).map_err(|_| CronError::InvalidDate);
        let year = i16::try_from(civil.year()).map_err(|_| CronError::InvalidDate)?;
        let datetime = jiff::civil::DateTime::new(
            year,
            part(civil.month())?,
            part(civil.day())?,
            part(civil.hour())?,
            part(civil.minute())?,
            part(civil.second())?,
            0,
        )
        .map_err(|_| CronError::InvalidDate)?;
        let ambiguous = self.0.time_zone().to_ambiguous_zoned_datetime(datetime);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => croner::Resolution::Single(CronZoned(
                ambiguous
                    .unambiguous()
                    .map_err(|_| CronError::InvalidTime)?,
            )),
            AmbiguousOffset::Fold { .. } => {
                let earlier = ambiguous
                    .clone()
                    .earlier()
                    .map_err(|_| CronError::InvalidTime)?;
                let later = ambiguous.later().map_err(|_| CronError::InvalidTime)?;
                croner::Resolution::Ambiguous(CronZoned(earlier), CronZoned(later))
            }
            AmbiguousOffset::Gap { .. } => croner::Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()
            .map(CronZoned)
    }

    fn cmp_instant(&self, other: &Self) -> std::cmp::Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}

/// A duration such as `30s`, `5m`, `1h30m` or `48h` (jiff's friendly format; no days, whose
/// length varies).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = s.trim().parse().map_err(|_| {
        format!("cannot read {s:?} as a duration: expected for example 30s, 5m, 1h30m or 48h")
    })?;
    Duration::try_from(parsed).map_err(|_| format!("{s:?} is not a positive duration"))
}

/// A share of unused bytes for prune: `N%` (0 to 100) as a fraction, or `unlimited` (`None`).
pub fn parse_max_unused(s: &str) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s == "unlimited" {
        return Ok(None);
    }
    let bad = || format!("invalid share {s:?}: expected a percentage such as 10%, or `unlimited`");
    let percent: f64 = s
        .strip_suffix('%')
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(bad());
    }
    Ok(Some(percent / 100.0))
}

/// A `keep_within` duration in restic's form: numbers each followed by `y` (365 days), `m`
/// (30 days), `d` or `h`, such as `1y5m7d2h` or `7d`.
pub fn parse_keep_within(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "cannot read {s:?} as a duration: {why}; expected for example 7d, 2h, 1y5m7d2h \
             (y = 365 days, m = 30 days)"
        )
    };
    const HOUR: u64 = 3600;
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'y' => 365 * 24 * HOUR,
            'm' => 30 * 24 * HOUR,
            'd' => 24 * HOUR,
            'h' => HOUR,
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        if number.is_empty() {
            return Err(bad(&format!("no number before {c:?}")));
        }
        let n: u64 = number.parse().map_err(|_| bad("number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| bad("too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad(&format!("{number} has no unit")));
    }
    if s.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_durations() {
        const H: u64 = 3600;
        assert_eq!(parse_keep_within("7d"), Ok(Duration::from_secs(7 * 24 * H)));
        assert_eq!(
            parse_keep_within("1y5m7d2h"),
            Ok(Duration::from_secs((365 + 5 * 30 + 7) * 24 * H + 2 * H))
        );
        for bad in ["", "7", "d", "7w", "1h30", "-1d", "99999999999999999999y"] {
            assert!(parse_keep_within(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shares() {
        assert_eq!(parse_max_unused("10%"), Ok(Some(0.10)));
        assert_eq!(parse_max_unused("unlimited"), Ok(None));
        assert!(parse_max_unused("10").is_err());
        assert!(parse_max_unused("101%").is_err());
    }

    #[test]
    fn schedules() {
        let utc = TimeZone::UTC;
        let at = |s: &str| s.parse::<Timestamp>().unwrap_or_default();
        let daily = Schedule::parse("0 1 * * *").map_err(|e| e.to_string());
        assert_eq!(
            daily
                .as_ref()
                .ok()
                .and_then(|s| s.next_after(at("2026-11-20T00:30:00Z"), &utc)),
            Some(at("2026-11-20T01:00:00Z"))
        );
        // Strictly after: at 01:00 itself, the next is tomorrow's.
        assert_eq!(
            daily
                .as_ref()
                .ok()
                .and_then(|s| s.next_after(at("2026-11-20T01:00:00Z"), &utc)),
            Some(at("2026-11-21T01:00:00Z"))
        );
        let seconds = Schedule::parse("*/2 * * * * *").ok();
        assert_eq!(
            seconds.and_then(|s| s.next_after(at("2026-11-20T00:00:01.5Z"), &utc)),
            Some(at("2026-11-20T00:00:02Z"))
        );
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "0 1 * * * * 2026",
            "0 0 31 2 *",
            "nope",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
