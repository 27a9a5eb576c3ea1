//! The retention policy of `forget`: which snapshots of a group to keep, and why.
//!
//! `forget` first splits the snapshots into groups ([`group_snapshots`], by host and paths
//! unless told otherwise, see [`GroupBy`]), then applies one [`RetentionPolicy`] to each group
//! on its own ([`apply_policy`]). Everything here is pure: no clock, no I/O, no repository. The
//! time zone that defines hours, days, weeks, months and years is a parameter, so the result
//! depends only on the snapshots, the policy and that time zone.
//!
//! # Guarantees
//!
//! - **Total, deterministic order.** A group is processed newest first: by time, then by id
//!   (the greater id counts as the newer), so snapshots with equal timestamps never share a
//!   slot and the result does not depend on the order of the input.
//! - **One decision per snapshot**, newest first, each listing every rule that kept it.
//! - **Rules are independent and ORed.** A snapshot is kept if at least one rule keeps it,
//!   and what one rule keeps does not depend on the other rules. So the kept set is exactly
//!   the union of what each rule keeps on its own.
//! - **Idempotent.** Applying the same policy to the kept snapshots keeps all of them again
//!   (the newest snapshot of each of the `N` newest buckets is still the newest of the same
//!   `N` buckets; `keep_within` measures from the same newest snapshot, which it always keeps).
//!   So running `forget` twice removes nothing the second time.
//! - **An empty policy keeps everything** (with no reasons). The CLI refuses an empty policy,
//!   as restic does, but this function never removes anything for it.
//!
//! # Compatibility with restic
//!
//! The rules follow restic's `forget` (`internal/data/snapshot_policy.go`, restic 0.17/0.18):
//!
//! - `keep_last N` keeps the `N` newest snapshots.
//! - `keep_{hourly,daily,weekly,monthly,yearly} N`: "for the last `N` hours (days, ...) which
//!   have one or more snapshots, keep only the most recent one for each". Buckets are civil
//!   hours, days, ISO 8601 weeks (Monday to Sunday, numbered within the ISO week-year, so
//!   2027-01-01 is in `2026-W53`), months and years, in the given time zone. A count of
//!   `u32::MAX` is restic's `unlimited`.
//! - If a calendar rule still has unused buckets when it reaches the oldest snapshot of the
//!   group, it also keeps that oldest snapshot ([`KeepReason::Oldest`]; restic 0.17's "oldest
//!   daily snapshot"), which keeps the history as long as the counts allow.
//! - `keep_within D` keeps the snapshots strictly newer than `newest - D`, where `newest` is
//!   the newest snapshot of the group (restic compares with `After`, so a snapshot exactly `D`
//!   older than the newest is not kept). A zero duration means "not set", as in restic.
//! - `keep_tags` keeps every snapshot carrying one of the tags; the empty tag matches
//!   snapshots without tags (restic's `--keep-tag ''`).
//!
//! Where this module differs, on purpose:
//!
//! - Buckets are computed in one time zone passed by the caller (normally the system's),
//!   whereas restic uses each snapshot's own recorded UTC offset. Both agree as long as the
//!   snapshots were taken in the zone passed here.
//! - A bucket is used at most once per rule (restic compares with the last kept bucket only).
//!   The two are the same whenever civil time never goes back across a bucket boundary, which
//!   holds for ordinary DST rules (the fall-back hour is repeated *within* one civil hour), but
//!   the set is right for any time zone.
//! - `keep_within` is an exact [`Duration`]; restic's `1y5m` is calendar arithmetic, so the
//!   caller decides how long a month or a year is. No clock is read: restic ignores snapshots
//!   dated in the future when it looks for the newest one, this module does not.
//! - One `keep_tags` entry is one tag (restic's `--keep-tag a,b` needs both tags).
//!
//! # Time zones and daylight saving time
//!
//! A bucket is the civil hour, day, ... of the snapshot's instant in the time zone. On a
//! spring-forward night the skipped hour has no snapshots, and the day has 23 hours. On a
//! fall-back night the repeated civil hour (02:00-02:59 twice in central Europe) is one hourly
//! bucket two real hours long, so `keep_hourly` keeps only the newest snapshot of those two
//! hours, and that day is one daily bucket of 25 hours.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chunker::ChunkId;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::catalog::SnapshotEntry;
use crate::snapshot::Snapshot;

/// Which snapshots of a group `forget` keeps. Every rule is optional; a snapshot is kept when
/// at least one rule keeps it. All fields zero, `None` and empty is "no policy" (see
/// [`RetentionPolicy::is_empty`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the `n` newest snapshots.
    pub keep_last: u32,
    /// For the `n` newest civil hours that have snapshots, keep the newest snapshot of each.
    pub keep_hourly: u32,
    /// For the `n` newest civil days that have snapshots, keep the newest snapshot of each.
    pub keep_daily: u32,
    /// For the `n` newest ISO weeks (Monday to Sunday) that have snapshots, keep the newest
    /// snapshot of each.
    pub keep_weekly: u32,
    /// For the `n` newest months that have snapshots, keep the newest snapshot of each.
    pub keep_monthly: u32,
    /// For the `n` newest years that have snapshots, keep the newest snapshot of each.
    pub keep_yearly: u32,
    /// Keep every snapshot taken less than this long before the newest snapshot of the group
    /// (strictly: one exactly this much older is not kept). `Some(Duration::ZERO)` is the
    /// same as `None`.
    pub keep_within: Option<Duration>,
    /// Keep every snapshot carrying any of these tags. The empty string matches snapshots
    /// that have no tags at all.
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// Whether no rule is set: every count zero, no (or a zero) `keep_within`, no tags.
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.within().is_none()
            && self.keep_tags.is_empty()
    }

    fn within(&self) -> Option<Duration> {
        self.keep_within.filter(|d| !d.is_zero())
    }
}

/// A calendar period of the `keep_hourly` ... `keep_yearly` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// A civil hour (`2026-11-20 14:00`).
    Hourly,
    /// A civil day (`2026-11-20`).
    Daily,
    /// An ISO 8601 week, numbered in its ISO week-year (`2026-W47`).
    Weekly,
    /// A month (`2026-11`).
    Monthly,
    /// A year (`2026`).
    Yearly,
}

impl Period {
    const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    fn count(self, policy: &RetentionPolicy) -> u32 {
        match self {
            Period::Hourly => policy.keep_hourly,
            Period::Daily => policy.keep_daily,
            Period::Weekly => policy.keep_weekly,
            Period::Monthly => policy.keep_monthly,
            Period::Yearly => policy.keep_yearly,
        }
    }

    /// The bucket of civil time `dt`, as its display label (which is unique per bucket).
    fn bucket(self, dt: DateTime) -> String {
        let (y, m, d, h) = (dt.year(), dt.month(), dt.day(), dt.hour());
        match self {
            Period::Hourly => format!("{y:04}-{m:02}-{d:02} {h:02}:00"),
            Period::Daily => format!("{y:04}-{m:02}-{d:02}"),
            Period::Weekly => {
                let week = dt.date().iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => format!("{y:04}-{m:02}"),
            Period::Yearly => format!("{y:04}"),
        }
    }

    fn reason(self, bucket: String) -> KeepReason {
        match self {
            Period::Hourly => KeepReason::Hourly(bucket),
            Period::Daily => KeepReason::Daily(bucket),
            Period::Weekly => KeepReason::Weekly(bucket),
            Period::Monthly => KeepReason::Monthly(bucket),
            Period::Yearly => KeepReason::Yearly(bucket),
        }
    }
}

impl fmt::Display for Period {
    /// `hourly`, `daily`, `weekly`, `monthly` or `yearly`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        })
    }
}

/// Why a snapshot is kept. The strings are bucket labels in the policy's time zone:
/// `2026-11-20 14:00`, `2026-11-20`, `2026-W47`, `2026-11`, `2026`. `Display` gives a short
/// text for `forget`'s output, e.g. `daily snapshot (2026-11-20)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeepReason {
    /// One of the `keep_last` newest snapshots: `last snapshot`.
    Last,
    /// The newest snapshot of this hour: `hourly snapshot (2026-11-20 14:00)`.
    Hourly(String),
    /// The newest snapshot of this day: `daily snapshot (2026-11-20)`.
    Daily(String),
    /// The newest snapshot of this ISO week: `weekly snapshot (2026-W47)`.
    Weekly(String),
    /// The newest snapshot of this month: `monthly snapshot (2026-11)`.
    Monthly(String),
    /// The newest snapshot of this year: `yearly snapshot (2026)`.
    Yearly(String),
    /// The oldest snapshot of the group, kept because the rule of this period had buckets
    /// left over (restic's "oldest daily snapshot"): `oldest daily snapshot (2026-09)`. The
    /// string is the snapshot's own bucket, already used by a newer snapshot.
    Oldest(Period, String),
    /// Taken less than this long before the newest snapshot of the group:
    /// `within 7d of the newest`.
    Within(Duration),
    /// Carries this tag: `tag nightly` (the empty tag: `untagged`).
    Tag(String),
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last => f.write_str("last snapshot"),
            KeepReason::Hourly(b) => write!(f, "hourly snapshot ({b})"),
            KeepReason::Daily(b) => write!(f, "daily snapshot ({b})"),
            KeepReason::Weekly(b) => write!(f, "weekly snapshot ({b})"),
            KeepReason::Monthly(b) => write!(f, "monthly snapshot ({b})"),
            KeepReason::Yearly(b) => write!(f, "yearly snapshot ({b})"),
            KeepReason::Oldest(period, b) => write!(f, "oldest {period} snapshot ({b})"),
            KeepReason::Within(d) => write!(f, "within {} of the newest", format_duration(*d)),
            KeepReason::Tag(t) if t.is_empty() => f.write_str("untagged"),
            KeepReason::Tag(t) => write!(f, "tag {t}"),
        }
    }
}

/// `7d`, `1d12h`, `90min`... `min` rather than `m`, which is a month in restic's durations.
fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = secs / 86_400;
    secs %= 86_400;
    let hours = secs / 3_600;
    secs %= 3_600;
    let minutes = secs / 60;
    secs %= 60;
    let mut out = String::new();
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "min")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push_str(&format!("{secs}.{}s", frac.trim_end_matches('0')));
    } else if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub id: ChunkId,
    /// Whether it is kept (`forget` removes it otherwise).
    pub keep: bool,
    /// Every rule that keeps it, in the order last, hourly ... yearly (each possibly as
    /// [`KeepReason::Oldest`]), within, tags. Empty when it is removed, and for every
    /// snapshot under an empty policy.
    pub reasons: Vec<KeepReason>,
}

/// Newest first: later time first, then greater id first. A total order on distinct ids.
fn newest_first(a: &SnapshotEntry, b: &SnapshotEntry) -> Ordering {
    (b.snapshot.time_ns, b.id).cmp(&(a.snapshot.time_ns, a.id))
}

fn civil_time(time_ns: i64, tz: &TimeZone) -> DateTime {
    // Any i64 of nanoseconds (years 1677 to 2262) is within jiff's range; saturate anyway.
    let ts = Timestamp::from_nanosecond(i128::from(time_ns)).unwrap_or(if time_ns < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    tz.to_datetime(ts)
}

fn has_tag(snapshot: &Snapshot, tag: &str) -> bool {
    (tag.is_empty() && snapshot.tags.is_empty()) || snapshot.tags.iter().any(|t| t == tag)
}

/// Applies `policy` to one group of snapshots (see [`group_snapshots`]) and returns one
/// [`Decision`] per entry, newest first. Calendar buckets are taken in `tz`.
///
/// Pure: no clock and no I/O. Takes `&[SnapshotEntry]` or `&[&SnapshotEntry]`. An empty group
/// gives no decisions; an empty policy keeps everything, with no reasons.
///
/// The rules are restic's (`forget`):
///
/// - The group is ordered newest first by time, then by id (greater id = newer), so equal
///   timestamps never share a slot and the input order does not matter.
/// - `keep_last N` keeps the `N` newest.
/// - `keep_hourly` ... `keep_yearly N`: for the `N` newest civil hours, days, ISO weeks,
///   months or years in `tz` that have snapshots, keep the newest snapshot of each. If the
///   rule has buckets left when it reaches the oldest snapshot of the group, it keeps that one
///   too ([`KeepReason::Oldest`], restic 0.17).
/// - `keep_within D` keeps the snapshots strictly newer than the group's newest minus `D`.
/// - `keep_tags` keeps the snapshots carrying one of the tags (`""`: carrying none).
///
/// A snapshot is kept when any rule keeps it, and [`Decision::reasons`] lists them all. The
/// rules do not influence each other, so the kept set is the union of what each keeps alone,
/// and applying the policy again to the kept snapshots keeps all of them.
///
/// ```
/// use jiff::tz::TimeZone;
/// use snapshot_index::{KeepReason, RetentionPolicy, apply_policy};
/// # use snapshot_index::{Snapshot, SnapshotEntry, Summary};
/// # use chunker::ChunkId;
/// # let entry = |n: u8, time_ns: i64| SnapshotEntry {
/// #     id: ChunkId::from_bytes([n; 32]),
/// #     snapshot: Snapshot {
/// #         time_ns, utc_offset_s: 0, hostname: "h".into(), username: "u".into(),
/// #         tags: vec![], paths: vec!["/data".into()], tree: ChunkId::from_bytes([0; 32]),
/// #         parent: None, program_version: "test".into(), summary: Summary::default(),
/// #     },
/// # };
/// const HOUR: i64 = 3_600_000_000_000;
/// // 2026-11-20 at 08:00 and 20:00 UTC, then 2026-11-21 at 08:00 UTC.
/// let day = 1_795_132_800_000_000_000; // 2026-11-20T00:00:00Z
/// let group = [entry(1, day + 8 * HOUR), entry(2, day + 20 * HOUR), entry(3, day + 32 * HOUR)];
/// let policy = RetentionPolicy { keep_daily: 2, ..Default::default() };
/// let decisions = apply_policy(&policy, &group, &TimeZone::UTC);
/// let kept: Vec<bool> = decisions.iter().map(|d| d.keep).collect();
/// assert_eq!(kept, [true, true, false]); // 11-21 08:00, 11-20 20:00; not 11-20 08:00
/// assert_eq!(decisions[1].reasons, [KeepReason::Daily("2026-11-20".into())]);
/// assert_eq!(decisions[1].reasons[0].to_string(), "daily snapshot (2026-11-20)");
/// ```
pub fn apply_policy<E: Borrow<SnapshotEntry>>(
    policy: &RetentionPolicy,
    group: &[E],
    tz: &TimeZone,
) -> Vec<Decision> {
    let mut order: Vec<&SnapshotEntry> = group.iter().map(Borrow::borrow).collect();
    order.sort_by(|a, b| newest_first(a, b));

    if policy.is_empty() {
        return order
            .into_iter()
            .map(|e| Decision {
                id: e.id,
                keep: true,
                reasons: Vec::new(),
            })
            .collect();
    }
    let Some(newest) = order.first() else {
        return Vec::new();
    };

    // Strictly newer than this instant (in ns) is within; restic compares with `After`.
    let within = policy.within().map(|d| {
        let span = i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        (d, i128::from(newest.snapshot.time_ns).saturating_sub(span))
    });
    let periods: Vec<(Period, usize)> = Period::ALL
        .into_iter()
        .map(|p| (p, usize::try_from(p.count(policy)).unwrap_or(usize::MAX)))
        .filter(|&(_, n)| n > 0)
        .collect();
    let mut used: Vec<HashSet<String>> = vec![HashSet::new(); periods.len()];
    let keep_last = usize::try_from(policy.keep_last).unwrap_or(usize::MAX);
    let oldest = order.len() - 1;

    let mut decisions = Vec::with_capacity(order.len());
    for (nr, entry) in order.into_iter().enumerate() {
        let snapshot = &entry.snapshot;
        let mut reasons = Vec::new();
        if nr < keep_last {
            reasons.push(KeepReason::Last);
        }
        if !periods.is_empty() {
            let civil = civil_time(snapshot.time_ns, tz);
            for (&(period, n), used) in periods.iter().zip(used.iter_mut()) {
                if used.len() >= n {
                    continue;
                }
                let bucket = period.bucket(civil);
                if !used.contains(&bucket) {
                    used.insert(bucket.clone());
                    reasons.push(period.reason(bucket));
                } else if nr == oldest {
                    reasons.push(KeepReason::Oldest(period, bucket));
                }
            }
        }
        if let Some((d, floor)) = within
            && i128::from(snapshot.time_ns) > floor
        {
            reasons.push(KeepReason::Within(d));
        }
        for (i, tag) in policy.keep_tags.iter().enumerate() {
            if !policy.keep_tags[..i].contains(tag) && has_tag(snapshot, tag) {
                reasons.push(KeepReason::Tag(tag.clone()));
            }
        }
        decisions.push(Decision {
            id: entry.id,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions
}

/// How snapshots are grouped before a policy is applied to each group (restic's
/// `--group-by`). The default groups by host and paths; no field set makes one group of
/// everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Separate groups per host name.
    pub host: bool,
    /// Separate groups per set of paths (order does not matter).
    pub paths: bool,
    /// Separate groups per set of tags (order does not matter).
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, as restic.
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// The words [`FromStr`] accepts (restic also accepts the singular and plural forms).
    pub const WORDS: [&'static str; 3] = ["host", "paths", "tags"];

    /// The key of the group `snapshot` belongs to: only the selected fields, paths and tags
    /// sorted.
    pub fn key_of(&self, snapshot: &Snapshot) -> GroupKey {
        let sorted = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v
        };
        GroupKey {
            host: self.host.then(|| snapshot.hostname.clone()),
            paths: self.paths.then(|| sorted(&snapshot.paths)),
            tags: self.tags.then(|| sorted(&snapshot.tags)),
        }
    }
}

impl fmt::Display for GroupBy {
    /// The selected words joined by commas, in the order host, paths, tags (`host,paths`);
    /// empty for one group. Parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [self.host, self.paths, self.tags]
            .into_iter()
            .zip(Self::WORDS)
            .filter_map(|(on, word)| on.then_some(word))
            .collect();
        f.write_str(&words.join(","))
    }
}

/// A `--group-by` value with a word other than host, paths or tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown --group-by word {word:?}: use a comma-separated list of host, paths and tags, or an empty value for a single group"
)]
pub struct ParseGroupByError {
    /// The word not understood.
    pub word: String,
}

impl FromStr for GroupBy {
    type Err = ParseGroupByError;

    /// A comma-separated list of `host`, `paths` and `tags` (also `hosts`, `path`, `tag`),
    /// in any order, blanks around words ignored: `host,paths`, `paths,tags`. Empty words are
    /// skipped, so `""` selects nothing: one group.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut by = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for word in s.split(',').map(str::trim) {
            match word {
                "host" | "hosts" => by.host = true,
                "path" | "paths" => by.paths = true,
                "tag" | "tags" => by.tags = true,
                "" => {}
                other => {
                    return Err(ParseGroupByError {
                        word: other.to_string(),
                    });
                }
            }
        }
        Ok(by)
    }
}

/// What the snapshots of one group share. A field is `None` when [`GroupBy`] does not group
/// by it; paths and tags are sorted. Groups sort by host, then paths, then tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The host name, when grouping by host.
    pub host: Option<String>,
    /// The sorted paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The sorted tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
}

impl fmt::Display for GroupKey {
    /// `host mopped, paths [/etc, /home], tags [nightly]`, only the fields grouped by;
    /// `all snapshots` when grouping by nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths [{}]", paths.join(", ")));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags [{}]", tags.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Splits snapshots into groups by `by`. Groups come sorted by key; within a group the
/// entries keep the input order (the catalog's: oldest first). Accepts a slice of entries or
/// any iterator of `&SnapshotEntry`, such as [`Catalog::filtered`](crate::Catalog::filtered).
pub fn group_snapshots<'a, I>(entries: I, by: GroupBy) -> Vec<(GroupKey, Vec<&'a SnapshotEntry>)>
where
    I: IntoIterator<Item = &'a SnapshotEntry>,
{
    let mut groups: BTreeMap<GroupKey, Vec<&'a SnapshotEntry>> = BTreeMap::new();
    for entry in entries {
        groups
            .entry(by.key_of(&entry.snapshot))
            .or_default()
            .push(entry);
    }
    groups.into_iter().collect()
}
