//! The retention policy of `forget` on hand-made calendars, and its properties.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use chunker::ChunkId;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use snapshot_index::{
    Catalog, Decision, GroupBy, GroupKey, KeepReason, Period, RetentionPolicy, Snapshot,
    SnapshotEntry, Summary, apply_policy, group_snapshots,
};

const DAY: Duration = Duration::from_secs(86_400);

fn id(n: u32) -> ChunkId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    bytes[31] = 0x5a;
    ChunkId::from_bytes(bytes)
}

fn snap(n: u32, time_ns: i64, host: &str, paths: &[&str], tags: &[&str]) -> SnapshotEntry {
    SnapshotEntry {
        id: id(n),
        snapshot: Snapshot {
            time_ns,
            utc_offset_s: 0,
            hostname: host.into(),
            username: "user".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            tree: ChunkId::from_bytes([0; 32]),
            parent: None,
            program_version: "test".into(),
            summary: Summary::default(),
        },
    }
}

/// Nanoseconds of an RFC 3339 instant such as `2026-10-25T02:10:00+02:00`.
fn ns(rfc3339: &str) -> i64 {
    i64::try_from(rfc3339.parse::<Timestamp>().unwrap().as_nanosecond()).unwrap()
}

/// Snapshots at the given instants, ids 0, 1, 2... in that order, host `h`, path `/data`.
fn at(times: &[&str]) -> Vec<SnapshotEntry> {
    times
        .iter()
        .zip(0..)
        .map(|(t, n)| snap(n, ns(t), "h", &["/data"], &[]))
        .collect()
}

/// Three snapshots a day (02:00, 10:00 and 18:00 UTC) from 2026-09-01 to 2026-11-30.
fn three_months() -> Vec<SnapshotEntry> {
    let mut entries = Vec::new();
    let mut day = jiff::civil::date(2026, 9, 1);
    let mut n = 0;
    while day <= jiff::civil::date(2026, 11, 30) {
        for hour in [2, 10, 18] {
            let ts = day
                .at(hour, 0, 0, 0)
                .to_zoned_datetime(TimeZone::UTC)
                .unwrap();
            let time_ns = i64::try_from(ts.timestamp().as_nanosecond()).unwrap();
            entries.push(snap(n, time_ns, "h", &["/data"], &[]));
            n += 1;
        }
        day = day.tomorrow().unwrap();
    }
    entries
}

fn cet() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

/// `local time: reasons` of every kept snapshot, newest first; local time formatted with
/// `strftime` format `fmt` in `tz`. Also checks the decisions' shape.
fn kept_fmt(
    policy: &RetentionPolicy,
    group: &[SnapshotEntry],
    tz: &TimeZone,
    fmt: &str,
) -> Vec<String> {
    let decisions = apply_policy(policy, group, tz);
    assert_eq!(decisions.len(), group.len());
    let mut out = Vec::new();
    let mut previous: Option<(i64, ChunkId)> = None;
    for d in &decisions {
        let entry = group.iter().find(|e| e.id == d.id).unwrap();
        let key = (entry.snapshot.time_ns, entry.id);
        assert!(previous.is_none_or(|p| p > key), "not newest first");
        previous = Some(key);
        assert_eq!(d.keep, !d.reasons.is_empty() || policy.is_empty());
        if d.keep {
            let local = Timestamp::from_nanosecond(i128::from(entry.snapshot.time_ns))
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .strftime(fmt)
                .to_string();
            let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
            out.push(format!("{local}: {}", reasons.join(", ")));
        }
    }
    out
}

fn kept(policy: &RetentionPolicy, group: &[SnapshotEntry], tz: &TimeZone) -> Vec<String> {
    kept_fmt(policy, group, tz, "%F %H:%M")
}

fn kept_ids(decisions: &[Decision]) -> BTreeSet<ChunkId> {
    decisions.iter().filter(|d| d.keep).map(|d| d.id).collect()
}

#[test]
fn daily_keeps_the_newest_of_each_of_the_last_days() {
    let policy = RetentionPolicy {
        keep_daily: 5,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &three_months(), &TimeZone::UTC),
        [
            "2026-11-30 18:00: daily snapshot (2026-11-30)",
            "2026-11-29 18:00: daily snapshot (2026-11-29)",
            "2026-11-28 18:00: daily snapshot (2026-11-28)",
            "2026-11-27 18:00: daily snapshot (2026-11-27)",
            "2026-11-26 18:00: daily snapshot (2026-11-26)",
        ]
    );
}

#[test]
fn weekly_uses_iso_weeks_monday_to_sunday() {
    // 2026-11-30 is a Monday: it starts week 49 on its own.
    let policy = RetentionPolicy {
        keep_weekly: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &three_months(), &TimeZone::UTC),
        [
            "2026-11-30 18:00: weekly snapshot (2026-W49)",
            "2026-11-29 18:00: weekly snapshot (2026-W48)",
            "2026-11-22 18:00: weekly snapshot (2026-W47)",
        ]
    );
}

#[test]
fn monthly_and_yearly() {
    let group = three_months();
    let monthly = |n| RetentionPolicy {
        keep_monthly: n,
        ..Default::default()
    };
    assert_eq!(
        kept(&monthly(2), &group, &TimeZone::UTC),
        [
            "2026-11-30 18:00: monthly snapshot (2026-11)",
            "2026-10-31 18:00: monthly snapshot (2026-10)",
        ]
    );
    // More months asked for than there are: the oldest snapshot is kept too (restic 0.17).
    assert_eq!(
        kept(&monthly(12), &group, &TimeZone::UTC),
        [
            "2026-11-30 18:00: monthly snapshot (2026-11)",
            "2026-10-31 18:00: monthly snapshot (2026-10)",
            "2026-09-30 18:00: monthly snapshot (2026-09)",
            "2026-09-01 02:00: oldest monthly snapshot (2026-09)",
        ]
    );
    let yearly = |n| RetentionPolicy {
        keep_yearly: n,
        ..Default::default()
    };
    assert_eq!(
        kept(&yearly(1), &group, &TimeZone::UTC),
        ["2026-11-30 18:00: yearly snapshot (2026)"]
    );
    assert_eq!(
        kept(&yearly(u32::MAX), &group, &TimeZone::UTC),
        [
            "2026-11-30 18:00: yearly snapshot (2026)",
            "2026-09-01 02:00: oldest yearly snapshot (2026)",
        ]
    );
}

#[test]
fn keep_last_combined_with_daily() {
    let policy = RetentionPolicy {
        keep_last: 4,
        keep_daily: 2,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &three_months(), &TimeZone::UTC),
        [
            "2026-11-30 18:00: last snapshot, daily snapshot (2026-11-30)",
            "2026-11-30 10:00: last snapshot",
            "2026-11-30 02:00: last snapshot",
            "2026-11-29 18:00: last snapshot, daily snapshot (2026-11-29)",
        ]
    );
}

#[test]
fn every_rule_together_lists_every_reason() {
    let policy = RetentionPolicy {
        keep_last: 2,
        keep_daily: 3,
        keep_weekly: 2,
        keep_monthly: 3,
        keep_yearly: 1,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &three_months(), &TimeZone::UTC),
        [
            "2026-11-30 18:00: last snapshot, daily snapshot (2026-11-30), \
             weekly snapshot (2026-W49), monthly snapshot (2026-11), yearly snapshot (2026)",
            "2026-11-30 10:00: last snapshot",
            "2026-11-29 18:00: daily snapshot (2026-11-29), weekly snapshot (2026-W48)",
            "2026-11-28 18:00: daily snapshot (2026-11-28)",
            "2026-10-31 18:00: monthly snapshot (2026-10)",
            "2026-09-30 18:00: monthly snapshot (2026-09)",
        ]
    );
}

#[test]
fn restic_documentation_example() {
    // One backup every Sunday at 11:00 for 12 weeks; `--keep-daily 4` keeps the last four.
    let group = at(&[
        "2019-09-01T11:00:00Z",
        "2019-09-08T11:00:00Z",
        "2019-09-15T11:00:00Z",
        "2019-09-22T11:00:00Z",
        "2019-09-29T11:00:00Z",
        "2019-10-06T11:00:00Z",
        "2019-10-13T11:00:00Z",
        "2019-10-20T11:00:00Z",
        "2019-10-27T11:00:00Z",
        "2019-11-03T11:00:00Z",
        "2019-11-10T11:00:00Z",
        "2019-11-17T11:00:00Z",
    ]);
    let policy = RetentionPolicy {
        keep_daily: 4,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &group, &TimeZone::UTC),
        [
            "2019-11-17 11:00: daily snapshot (2019-11-17)",
            "2019-11-10 11:00: daily snapshot (2019-11-10)",
            "2019-11-03 11:00: daily snapshot (2019-11-03)",
            "2019-10-27 11:00: daily snapshot (2019-10-27)",
        ]
    );
}

#[test]
fn dst_fall_back_repeats_one_civil_hour() {
    // Central Europe falls back on 2026-10-25 at 03:00 CEST to 02:00 CET: the civil hour
    // 02:00-02:59 happens twice (00:00-01:00 UTC, then 01:00-02:00 UTC). It is ONE hourly
    // bucket, two real hours long, so keep_hourly keeps only the newest snapshot of those
    // two hours (02:50 CET) and drops 02:50 CEST although it was an hour earlier. The day
    // is one daily bucket of 25 hours.
    let group = at(&[
        "2026-10-24T23:30:00+02:00",
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:10:00+02:00",
        "2026-10-25T02:50:00+02:00",
        "2026-10-25T02:10:00+01:00",
        "2026-10-25T02:50:00+01:00",
        "2026-10-25T03:10:00+01:00",
        "2026-10-25T23:30:00+01:00",
        "2026-10-26T00:30:00+01:00",
    ]);
    let tz = cet();
    let hourly = RetentionPolicy {
        keep_hourly: 5,
        ..Default::default()
    };
    assert_eq!(
        kept_fmt(&hourly, &group, &tz, "%F %H:%M%:z"),
        [
            "2026-10-26 00:30+01:00: hourly snapshot (2026-10-26 00:00)",
            "2026-10-25 23:30+01:00: hourly snapshot (2026-10-25 23:00)",
            "2026-10-25 03:10+01:00: hourly snapshot (2026-10-25 03:00)",
            "2026-10-25 02:50+01:00: hourly snapshot (2026-10-25 02:00)",
            "2026-10-25 01:30+02:00: hourly snapshot (2026-10-25 01:00)",
        ]
    );
    let daily = RetentionPolicy {
        keep_daily: 3,
        ..Default::default()
    };
    assert_eq!(
        kept_fmt(&daily, &group, &tz, "%F %H:%M%:z"),
        [
            "2026-10-26 00:30+01:00: daily snapshot (2026-10-26)",
            "2026-10-25 23:30+01:00: daily snapshot (2026-10-25)",
            "2026-10-24 23:30+02:00: daily snapshot (2026-10-24)",
        ]
    );
    // The same instants in UTC fall on two days only (the 24th and the 25th), so the
    // third daily slot keeps the oldest snapshot.
    assert_eq!(
        kept_fmt(&daily, &group, &TimeZone::UTC, "%F %H:%M%:z"),
        [
            "2026-10-25 23:30+00:00: daily snapshot (2026-10-25)",
            "2026-10-24 23:30+00:00: daily snapshot (2026-10-24)",
            "2026-10-24 21:30+00:00: oldest daily snapshot (2026-10-24)",
        ]
    );
}

#[test]
fn dst_spring_forward_skips_one_civil_hour() {
    // On 2026-03-29 at 02:00 CET clocks jump to 03:00 CEST: there is no 02:00 bucket, 01:59
    // CET and 03:01 CEST are two minutes apart but in different hourly buckets, and the
    // day has 23 hours.
    let group = at(&[
        "2026-03-28T23:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T01:59:00+01:00",
        "2026-03-29T03:01:00+02:00",
        "2026-03-29T03:40:00+02:00",
        "2026-03-29T23:59:00+02:00",
        "2026-03-30T00:00:30+02:00",
    ]);
    let tz = cet();
    let hourly = RetentionPolicy {
        keep_hourly: 10,
        ..Default::default()
    };
    assert_eq!(
        kept_fmt(&hourly, &group, &tz, "%F %H:%M%:z"),
        [
            "2026-03-30 00:00+02:00: hourly snapshot (2026-03-30 00:00)",
            "2026-03-29 23:59+02:00: hourly snapshot (2026-03-29 23:00)",
            "2026-03-29 03:40+02:00: hourly snapshot (2026-03-29 03:00)",
            "2026-03-29 01:59+01:00: hourly snapshot (2026-03-29 01:00)",
            "2026-03-28 23:30+01:00: hourly snapshot (2026-03-28 23:00)",
        ]
    );
    let daily = RetentionPolicy {
        keep_daily: 2,
        ..Default::default()
    };
    assert_eq!(
        kept_fmt(&daily, &group, &tz, "%F %H:%M%:z"),
        [
            "2026-03-30 00:00+02:00: daily snapshot (2026-03-30)",
            "2026-03-29 23:59+02:00: daily snapshot (2026-03-29)",
        ]
    );
}

#[test]
fn leap_day_is_its_own_day_and_february_one_month() {
    let days = at(&[
        "2024-02-28T23:00:00Z",
        "2024-02-29T10:00:00Z",
        "2024-02-29T20:00:00Z",
        "2024-03-01T00:30:00Z",
    ]);
    let daily = RetentionPolicy {
        keep_daily: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(&daily, &days, &TimeZone::UTC),
        [
            "2024-03-01 00:30: daily snapshot (2024-03-01)",
            "2024-02-29 20:00: daily snapshot (2024-02-29)",
            "2024-02-28 23:00: daily snapshot (2024-02-28)",
        ]
    );
    let months = at(&[
        "2024-01-31T12:00:00Z",
        "2024-02-01T12:00:00Z",
        "2024-02-29T12:00:00Z",
        "2024-03-01T12:00:00Z",
    ]);
    let monthly = RetentionPolicy {
        keep_monthly: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(&monthly, &months, &TimeZone::UTC),
        [
            "2024-03-01 12:00: monthly snapshot (2024-03)",
            "2024-02-29 12:00: monthly snapshot (2024-02)",
            "2024-01-31 12:00: monthly snapshot (2024-01)",
        ]
    );
}

#[test]
fn weeks_belong_to_their_iso_week_year() {
    // 2026 starts on a Thursday and has 53 ISO weeks: 2027-01-01 to 2027-01-03 are in
    // 2026-W53, and 2027-W01 starts on Monday 2027-01-04. Years stay calendar years.
    let group = at(&[
        "2026-12-27T12:00:00Z",
        "2026-12-28T12:00:00Z",
        "2026-12-31T12:00:00Z",
        "2027-01-01T12:00:00Z",
        "2027-01-03T12:00:00Z",
        "2027-01-04T12:00:00Z",
    ]);
    let policy = RetentionPolicy {
        keep_weekly: 3,
        keep_yearly: 2,
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &group, &TimeZone::UTC),
        [
            "2027-01-04 12:00: weekly snapshot (2027-W01), yearly snapshot (2027)",
            "2027-01-03 12:00: weekly snapshot (2026-W53)",
            "2026-12-31 12:00: yearly snapshot (2026)",
            "2026-12-27 12:00: weekly snapshot (2026-W52)",
        ]
    );
    // The other way round: Monday 2024-12-30 is already in 2025-W01.
    let group = at(&[
        "2024-12-29T12:00:00Z",
        "2024-12-30T12:00:00Z",
        "2025-01-01T12:00:00Z",
    ]);
    let weekly = RetentionPolicy {
        keep_weekly: 5,
        ..Default::default()
    };
    assert_eq!(
        kept(&weekly, &group, &TimeZone::UTC),
        [
            "2025-01-01 12:00: weekly snapshot (2025-W01)",
            "2024-12-29 12:00: weekly snapshot (2024-W52)",
        ]
    );
}

#[test]
fn equal_timestamps_are_ordered_by_id() {
    let t = ns("2026-11-20T12:00:00Z");
    let a = snap(1, t, "h", &["/data"], &[]);
    let b = snap(2, t, "h", &["/data"], &[]);
    let older = snap(3, t - 1, "h", &["/data"], &[]);
    let last = |n| RetentionPolicy {
        keep_last: n,
        ..Default::default()
    };
    for group in [
        vec![a.clone(), b.clone(), older.clone()],
        vec![b.clone(), older.clone(), a.clone()],
    ] {
        let d = apply_policy(&last(1), &group, &TimeZone::UTC);
        let order: Vec<ChunkId> = d.iter().map(|d| d.id).collect();
        assert_eq!(order, [id(2), id(1), id(3)]);
        assert_eq!(kept_ids(&d), BTreeSet::from([id(2)]));
        assert_eq!(d[0].reasons, [KeepReason::Last]);

        let d = apply_policy(&last(2), &group, &TimeZone::UTC);
        assert_eq!(kept_ids(&d), BTreeSet::from([id(1), id(2)]));

        let daily = RetentionPolicy {
            keep_daily: 1,
            ..Default::default()
        };
        let d = apply_policy(&daily, &group, &TimeZone::UTC);
        assert_eq!(kept_ids(&d), BTreeSet::from([id(2)]));
        assert_eq!(d[0].reasons, [KeepReason::Daily("2026-11-20".into())]);
    }
}

#[test]
fn keep_within_is_relative_to_the_newest_snapshot() {
    let group = three_months();
    let within = |d| RetentionPolicy {
        keep_within: Some(d),
        ..Default::default()
    };
    // Strictly newer than 2026-11-28 18:00, as restic: the snapshot exactly 2 days older
    // than the newest is not kept.
    assert_eq!(
        kept(&within(2 * DAY), &group, &TimeZone::UTC),
        [
            "2026-11-30 18:00: within 2d of the newest",
            "2026-11-30 10:00: within 2d of the newest",
            "2026-11-30 02:00: within 2d of the newest",
            "2026-11-29 18:00: within 2d of the newest",
            "2026-11-29 10:00: within 2d of the newest",
            "2026-11-29 02:00: within 2d of the newest",
        ]
    );
    let d = 2 * DAY + Duration::from_nanos(1);
    assert_eq!(kept(&within(d), &group, &TimeZone::UTC).len(), 7);

    // Not relative to now: one much newer snapshot leaves only itself within.
    let mut with_newer = group.clone();
    with_newer.push(snap(
        9_999,
        ns("2027-06-01T00:00:00Z"),
        "h",
        &["/data"],
        &[],
    ));
    assert_eq!(
        kept(&within(30 * DAY), &with_newer, &TimeZone::UTC),
        ["2027-06-01 00:00: within 30d of the newest"]
    );
    assert_eq!(
        KeepReason::Within(DAY + Duration::from_secs(12 * 3600 + 90)).to_string(),
        "within 1d12h1min30s of the newest"
    );

    // A zero duration is no rule (restic: not set), so the policy is empty.
    let zero = within(Duration::ZERO);
    assert!(zero.is_empty());
    let d = apply_policy(&zero, &group, &TimeZone::UTC);
    assert!(d.iter().all(|d| d.keep && d.reasons.is_empty()));
}

#[test]
fn keep_tags_keeps_any_listed_tag() {
    let t = ns("2026-11-20T12:00:00Z");
    let second = 1_000_000_000;
    let group = vec![
        snap(1, t, "h", &["/data"], &["nightly"]),
        snap(2, t + second, "h", &["/data"], &["manual", "nightly"]),
        snap(3, t + 2 * second, "h", &["/data"], &[]),
        snap(4, t + 3 * second, "h", &["/data"], &["other"]),
    ];
    let policy = RetentionPolicy {
        keep_tags: vec!["manual".into(), "nightly".into(), "manual".into()],
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &group, &TimeZone::UTC),
        [
            "2026-11-20 12:00: tag manual, tag nightly",
            "2026-11-20 12:00: tag nightly",
        ]
    );
    // The empty tag keeps untagged snapshots (restic's `--keep-tag ''`).
    let untagged = RetentionPolicy {
        keep_tags: vec![String::new()],
        ..Default::default()
    };
    let d = apply_policy(&untagged, &group, &TimeZone::UTC);
    assert_eq!(kept_ids(&d), BTreeSet::from([id(3)]));
    assert!(d[0].reasons.is_empty());
    assert_eq!(d[1].reasons, [KeepReason::Tag(String::new())]);
    assert_eq!(d[1].reasons[0].to_string(), "untagged");
}

#[test]
fn empty_policy_keeps_everything_and_empty_group_decides_nothing() {
    let policy = RetentionPolicy::default();
    assert!(policy.is_empty());
    let group = three_months();
    let d = apply_policy(&policy, &group, &TimeZone::UTC);
    assert_eq!(d.len(), group.len());
    assert!(d.iter().all(|d| d.keep && d.reasons.is_empty()));
    assert_eq!(d[0].id, group.last().unwrap().id);

    let daily = RetentionPolicy {
        keep_daily: 1,
        ..Default::default()
    };
    assert!(!daily.is_empty());
    assert!(apply_policy(&daily, &[] as &[SnapshotEntry], &TimeZone::UTC).is_empty());
}

#[test]
fn reason_texts() {
    let texts: Vec<String> = [
        KeepReason::Last,
        KeepReason::Hourly("2026-11-20 14:00".into()),
        KeepReason::Daily("2026-11-20".into()),
        KeepReason::Weekly("2026-W47".into()),
        KeepReason::Monthly("2026-11".into()),
        KeepReason::Yearly("2026".into()),
        KeepReason::Oldest(Period::Daily, "2026-11-20".into()),
        KeepReason::Within(7 * DAY),
        KeepReason::Tag("nightly".into()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        texts,
        [
            "last snapshot",
            "hourly snapshot (2026-11-20 14:00)",
            "daily snapshot (2026-11-20)",
            "weekly snapshot (2026-W47)",
            "monthly snapshot (2026-11)",
            "yearly snapshot (2026)",
            "oldest daily snapshot (2026-11-20)",
            "within 7d of the newest",
            "tag nightly",
        ]
    );
}

fn grouping() -> Vec<SnapshotEntry> {
    vec![
        snap(1, 1, "h1", &["/a", "/b"], &[]),
        snap(2, 2, "h1", &["/b", "/a"], &["x"]),
        snap(3, 3, "h2", &["/a", "/b"], &["x"]),
        snap(4, 4, "h1", &["/c"], &["y", "x"]),
        snap(5, 5, "h2", &["/a", "/b"], &[]),
    ]
}

fn groups(by: GroupBy) -> Vec<(String, Vec<ChunkId>)> {
    let entries = grouping();
    group_snapshots(&entries, by)
        .into_iter()
        .map(|(key, members)| (key.to_string(), members.iter().map(|e| e.id).collect()))
        .collect()
}

fn g(key: &str, ids: &[u32]) -> (String, Vec<ChunkId>) {
    (key.to_string(), ids.iter().map(|&n| id(n)).collect())
}

#[test]
fn group_snapshots_by_each_grouping() {
    assert_eq!(
        groups(GroupBy::default()),
        [
            g("host h1, paths [/a, /b]", &[1, 2]),
            g("host h1, paths [/c]", &[4]),
            g("host h2, paths [/a, /b]", &[3, 5]),
        ]
    );
    assert_eq!(
        groups("host".parse().unwrap()),
        [g("host h1", &[1, 2, 4]), g("host h2", &[3, 5])]
    );
    assert_eq!(
        groups("paths".parse().unwrap()),
        [g("paths [/a, /b]", &[1, 2, 3, 5]), g("paths [/c]", &[4])]
    );
    assert_eq!(
        groups("tags".parse().unwrap()),
        [
            g("tags []", &[1, 5]),
            g("tags [x]", &[2, 3]),
            g("tags [x, y]", &[4])
        ]
    );
    assert_eq!(
        groups("".parse().unwrap()),
        [g("all snapshots", &[1, 2, 3, 4, 5])]
    );
    assert_eq!(
        groups("host,paths,tags".parse().unwrap()),
        [
            g("host h1, paths [/a, /b], tags []", &[1]),
            g("host h1, paths [/a, /b], tags [x]", &[2]),
            g("host h1, paths [/c], tags [x, y]", &[4]),
            g("host h2, paths [/a, /b], tags []", &[5]),
            g("host h2, paths [/a, /b], tags [x]", &[3]),
        ]
    );

    let entries = grouping();
    let grouped = group_snapshots(&entries, GroupBy::default());
    assert_eq!(
        grouped[0].0,
        GroupKey {
            host: Some("h1".into()),
            paths: Some(vec!["/a".into(), "/b".into()]),
            tags: None,
        }
    );
}

#[test]
fn group_by_parses_restic_words() {
    let by = |s: &str| s.parse::<GroupBy>();
    let all = GroupBy {
        host: true,
        paths: true,
        tags: true,
    };
    let none = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };
    assert_eq!(by("host,paths").unwrap(), GroupBy::default());
    assert_eq!(by("paths,host").unwrap(), GroupBy::default());
    assert_eq!(by("hosts,path,tag").unwrap(), all);
    assert_eq!(by("host, paths ,tags").unwrap(), all);
    assert_eq!(by("").unwrap(), none);
    assert_eq!(by("host,,paths").unwrap(), GroupBy::default());
    assert_eq!(
        by("paths,tags").unwrap(),
        GroupBy {
            host: false,
            paths: true,
            tags: true,
        }
    );

    let err = by("host,hots").unwrap_err();
    assert_eq!(err.word, "hots");
    let message = err.to_string();
    assert!(message.contains("\"hots\""), "{message}");
    assert!(message.contains("host, paths and tags"), "{message}");

    for value in [GroupBy::default(), all, none] {
        assert_eq!(by(&value.to_string()).unwrap(), value);
    }
    assert_eq!(GroupBy::default().to_string(), "host,paths");
}

#[test]
fn catalog_groups_feed_apply_policy() {
    let mut entries = three_months();
    entries.push(snap(
        10_000,
        ns("2026-11-15T12:00:00Z"),
        "other",
        &["/x"],
        &[],
    ));
    let catalog = Catalog::from_entries(entries);
    let policy = RetentionPolicy {
        keep_last: 1,
        ..Default::default()
    };
    let mut kept = Vec::new();
    for (key, members) in group_snapshots(catalog.entries(), GroupBy::default()) {
        assert!(
            members
                .windows(2)
                .all(|w| w[0].snapshot.time_ns <= w[1].snapshot.time_ns)
        );
        let decisions = apply_policy(&policy, &members, &TimeZone::UTC);
        assert_eq!(decisions.len(), members.len());
        kept.extend(
            decisions
                .iter()
                .filter(|d| d.keep)
                .map(|d| (key.to_string(), d.id)),
        );
    }
    assert_eq!(
        kept,
        [
            ("host h, paths [/data]".to_string(), id(272)),
            ("host other, paths [/x]".to_string(), id(10_000)),
        ]
    );
}

// ---- properties ----

fn arb_group() -> impl Strategy<Value = Vec<SnapshotEntry>> {
    let tags = prop::sample::subsequence(vec!["a", "b"], 0..=2);
    // Half-hour steps over about two years; the small range makes equal timestamps common.
    let step = prop_oneof![0i64..6, 0i64..35_000];
    prop::collection::vec((step, tags), 0..40).prop_map(|v| {
        let base = ns("2025-01-01T00:00:00Z");
        v.into_iter()
            .zip(0..)
            .map(|((k, tags), n)| snap(n, base + k * 1_800_000_000_000, "h", &["/d"], &tags))
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        (0u32..4, 0u32..5, 0u32..6, 0u32..4, 0u32..4, 0u32..3),
        prop::option::of(0u64..30 * 86_400),
        prop::sample::subsequence(vec!["a", "b", ""], 0..=3),
    )
        .prop_map(
            |((last, hourly, daily, weekly, monthly, yearly), within, tags)| RetentionPolicy {
                keep_last: last,
                keep_hourly: hourly,
                keep_daily: daily,
                keep_weekly: weekly,
                keep_monthly: monthly,
                keep_yearly: yearly,
                keep_within: within.map(Duration::from_secs),
                keep_tags: tags.into_iter().map(String::from).collect(),
            },
        )
}

fn arb_tz() -> impl Strategy<Value = TimeZone> {
    prop_oneof![Just(TimeZone::UTC), Just(cet())]
}

/// Sets one count of a policy.
type SetCount = fn(&mut RetentionPolicy, u32);

/// The policy split into one policy per rule.
fn single_rules(p: &RetentionPolicy) -> Vec<RetentionPolicy> {
    let none = RetentionPolicy::default();
    let mut rules = Vec::new();
    let counts: [(u32, SetCount); 6] = [
        (p.keep_last, |r, n| r.keep_last = n),
        (p.keep_hourly, |r, n| r.keep_hourly = n),
        (p.keep_daily, |r, n| r.keep_daily = n),
        (p.keep_weekly, |r, n| r.keep_weekly = n),
        (p.keep_monthly, |r, n| r.keep_monthly = n),
        (p.keep_yearly, |r, n| r.keep_yearly = n),
    ];
    for (n, set) in counts {
        if n > 0 {
            let mut one = none.clone();
            set(&mut one, n);
            rules.push(one);
        }
    }
    if p.keep_within.is_some_and(|d| !d.is_zero()) {
        rules.push(RetentionPolicy {
            keep_within: p.keep_within,
            ..none.clone()
        });
    }
    for tag in &p.keep_tags {
        rules.push(RetentionPolicy {
            keep_tags: vec![tag.clone()],
            ..none.clone()
        });
    }
    rules
}

fn newest_first_ids(group: &[SnapshotEntry]) -> Vec<ChunkId> {
    let mut keys: Vec<(i64, ChunkId)> = group.iter().map(|e| (e.snapshot.time_ns, e.id)).collect();
    keys.sort();
    keys.reverse();
    keys.into_iter().map(|(_, id)| id).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Running `forget` again on what it kept removes nothing. This holds for restic's
    /// rules: the newest snapshot of each of the N newest buckets stays the newest of the same
    /// N newest buckets in any subset containing it; the "oldest" extra stays the oldest and
    /// its rule has at least as many buckets left; keep_within keeps the newest snapshot, so
    /// it measures from the same instant; tags do not depend on other snapshots.
    #[test]
    fn policy_is_idempotent(group in arb_group(), policy in arb_policy(), tz in arb_tz()) {
        let first = apply_policy(&policy, &group, &tz);
        let kept = kept_ids(&first);
        let survivors: Vec<&SnapshotEntry> =
            group.iter().filter(|e| kept.contains(&e.id)).collect();
        let second = apply_policy(&policy, &survivors, &tz);
        prop_assert_eq!(second.len(), survivors.len());
        prop_assert!(second.iter().all(|d| d.keep));
    }

    #[test]
    fn keep_last_keeps_the_n_newest(group in arb_group(), n in 0u32..50, tz in arb_tz()) {
        let policy = RetentionPolicy { keep_last: n, ..Default::default() };
        let decisions = apply_policy(&policy, &group, &tz);
        let order = newest_first_ids(&group);
        let ids: Vec<ChunkId> = decisions.iter().map(|d| d.id).collect();
        prop_assert_eq!(&ids, &order);
        if n > 0 {
            let expected: BTreeSet<ChunkId> =
                order.iter().take(n as usize).copied().collect();
            prop_assert_eq!(kept_ids(&decisions), expected);
        }
    }

    /// Kept = the union of what each rule keeps on its own (so ⊇ each of them), with the
    /// same reasons; calendar rules keep at most N buckets plus the oldest snapshot.
    #[test]
    fn kept_is_the_union_of_the_rules(
        group in arb_group(), policy in arb_policy(), tz in arb_tz()
    ) {
        let all = apply_policy(&policy, &group, &tz);
        let rules = single_rules(&policy);
        prop_assert_eq!(policy.is_empty(), rules.is_empty());
        if policy.is_empty() {
            prop_assert!(all.iter().all(|d| d.keep && d.reasons.is_empty()));
            return Ok(());
        }
        let mut union = BTreeSet::new();
        let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); all.len()];
        for rule in &rules {
            let one = apply_policy(rule, &group, &tz);
            let own = kept_ids(&one);
            prop_assert!(kept_ids(&all).is_superset(&own));
            union.extend(own);
            for (i, d) in one.iter().enumerate() {
                prop_assert_eq!(d.id, all[i].id);
                reasons[i].extend(d.reasons.iter().cloned());
            }
        }
        prop_assert_eq!(kept_ids(&all), union);
        for (d, mut expected) in all.iter().zip(reasons) {
            let mut got = d.reasons.clone();
            got.sort_by_key(ToString::to_string);
            expected.sort_by_key(ToString::to_string);
            prop_assert_eq!(got, expected);
        }
        for (n, period) in [
            (policy.keep_hourly, Period::Hourly),
            (policy.keep_daily, Period::Daily),
            (policy.keep_weekly, Period::Weekly),
            (policy.keep_monthly, Period::Monthly),
            (policy.keep_yearly, Period::Yearly),
        ] {
            let prefix = format!("{period} snapshot");
            let count = all
                .iter()
                .flat_map(|d| &d.reasons)
                .filter(|r| r.to_string().starts_with(&prefix))
                .count();
            prop_assert!(count <= n as usize);
        }
    }

    /// The input order does not matter, equal timestamps included.
    #[test]
    fn input_order_does_not_matter(
        group in arb_group(), policy in arb_policy(), tz in arb_tz(), rotate in 0usize..40
    ) {
        let decisions = apply_policy(&policy, &group, &tz);
        let mut reversed = group.clone();
        reversed.reverse();
        prop_assert_eq!(&apply_policy(&policy, &reversed, &tz), &decisions);
        let mut rotated = group.clone();
        if !rotated.is_empty() {
            let k = rotate % rotated.len();
            rotated.rotate_left(k);
        }
        prop_assert_eq!(&apply_policy(&policy, &rotated, &tz), &decisions);
    }
}
