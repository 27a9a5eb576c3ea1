//! `forget`: remove snapshots by a retention policy (`--keep-*`) or by id, and show, per
//! group, which snapshots are kept and why. Only snapshot manifests are deleted; the data
//! stays until `prune`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args as ClapArgs;
use respaldo::{
    Decision, ForgetGroup, ForgetOptions, GroupBy, GroupKey, PruneOptions, RetentionPolicy,
    SnapshotEntry, SnapshotSpec,
};
use serde_json::{Value, json};

use crate::args::{FilterArgs, Global, parse_snapshot};
use crate::output::{self, Table, Ui};
use crate::progress::TermProgress;

const AFTER_HELP: &str = "\
Rules are restic's and are ORed: a snapshot is kept when any rule keeps it. The policy is
applied to each group (--group-by) on its own; days, weeks (ISO, Monday to Sunday), months and
years are counted in the system time zone. A calendar rule with buckets left over also keeps
the oldest snapshot of the group. Give either --keep-* rules or SNAPSHOT ids, not both; with
neither, forget refuses to run.

Only snapshot manifests are deleted: the data of forgotten snapshots stays in the repository
until `respaldo prune` removes what no remaining snapshot needs.

Output: per group, the snapshots kept (with the rules that keep them) and those removed, then
`removed N snapshots` (`would remove N snapshots (dry run)` with --dry-run). --json prints one
document: {\"dry_run\", \"groups\": [{\"key\", \"keep\", \"remove\"}], \"removed\": [ids]}.
--quiet prints nothing but errors.";

/// `forget`.
#[derive(Debug, ClapArgs)]
#[command(after_help = AFTER_HELP)]
pub struct ForgetArgs {
    /// Snapshots to forget instead of a policy: full ids, unique id prefixes or `latest`.
    #[arg(
        value_name = "SNAPSHOT",
        value_parser = parse_id,
        conflicts_with_all = [
            "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
            "keep_yearly", "keep_within", "keep_tags",
        ]
    )]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots (`unlimited`: all).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have snapshots
    /// (`unlimited`: every hour).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days that have snapshots
    /// (`unlimited`: every day).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have snapshots
    /// (`unlimited`: every week).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months that have snapshots
    /// (`unlimited`: every month).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years that have snapshots
    /// (`unlimited`: every year).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken less than DURATION before the newest snapshot of its group.
    /// DURATION is restic's `1y5m7d2h` (any of y, m, d, h, each a number and a unit): a year
    /// counts as 365 days and a month (m) as 30 days, so `1y` and `12m` differ by 5 days.
    #[arg(long, value_name = "DURATION", value_parser = parse_within)]
    pub keep_within: Option<Duration>,
    /// Keep every snapshot carrying TAG (repeatable: any of them; `''` keeps snapshots
    /// without tags).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Apply the policy to each group of snapshots sharing these fields: a comma-separated
    /// list of host, paths and tags; `''` makes one group of all snapshots.
    #[arg(
        long,
        value_name = "FIELDS",
        default_value = "host,paths",
        value_parser = parse_group_by
    )]
    pub group_by: GroupBy,
    /// Which snapshots to consider; the others are neither kept nor removed.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only show what would be removed; change nothing (and take no lock).
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Prune right after forgetting: delete the data no remaining snapshot needs.
    #[arg(long)]
    pub prune: bool,
    /// With `--prune`: repack a pack when more than this share of it is unused (`N%` or
    /// `unlimited`).
    #[arg(
        long,
        value_name = "SHARE",
        default_value = "10%",
        requires = "prune",
        value_parser = super::prune::parse_max_unused
    )]
    pub max_unused: super::prune::MaxUnused,
}

/// A count of a `--keep-*` rule: a number, or `unlimited` (`u32::MAX`).
fn parse_count(s: &str) -> Result<u32, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(u32::MAX);
    }
    s.parse::<u32>()
        .map_err(|_| format!("{s:?} is not a count: give a number (0 or more) or `unlimited`"))
}

/// A restic duration: numbers each followed by `y` (365 days), `m` (30 days), `d` or `h`,
/// such as `1y5m7d2h` or `7d`.
fn parse_within(s: &str) -> Result<Duration, String> {
    respaldo::parse_keep_within(s)
}

/// `--group-by`: host, paths and tags, comma-separated; empty for one group.
fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    s.parse()
        .map_err(|e: respaldo::ParseGroupByError| e.to_string())
}

/// A snapshot named on the command line: `latest`, an id or a unique id prefix.
fn parse_id(s: &str) -> Result<String, String> {
    match parse_snapshot(s)? {
        SnapshotSpec::Id(id) => Ok(id),
        _ => Ok("latest".to_string()),
    }
}

impl ForgetArgs {
    /// The retention policy of the `--keep-*` flags.
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last.unwrap_or(0),
            keep_hourly: self.keep_hourly.unwrap_or(0),
            keep_daily: self.keep_daily.unwrap_or(0),
            keep_weekly: self.keep_weekly.unwrap_or(0),
            keep_monthly: self.keep_monthly.unwrap_or(0),
            keep_yearly: self.keep_yearly.unwrap_or(0),
            keep_within: self.keep_within,
            keep_tags: self.keep_tags.clone(),
        }
    }
}

/// Runs `forget`.
pub fn run(global: &Global, ui: &Ui, args: &ForgetArgs) -> Result<ExitCode> {
    let options = ForgetOptions {
        policy: args.policy(),
        group_by: args.group_by,
        filter: super::snapshots::filter(&args.filter)?,
        snapshots: args.snapshots.clone(),
        dry_run: args.dry_run,
        time_zone: jiff::tz::TimeZone::system(),
    };
    let repo = super::events::open(global, ui)?;
    let outcome = repo.forget(&options)?;
    // A dry run forgot nothing, so a prune now would not free what forget would.
    let pruned = if args.prune && !args.dry_run {
        let progress = TermProgress::new(ui, "prune");
        let pruned = repo.prune(
            &PruneOptions {
                max_unused: args.max_unused.0,
                dry_run: false,
            },
            &progress,
        );
        progress.finish();
        Some(pruned?)
    } else {
        None
    };

    let mut out = output::stdout();
    if ui.json {
        let groups: Vec<Value> = outcome.groups.iter().map(group_json).collect();
        let removed: Vec<String> = outcome.removed.iter().map(ToString::to_string).collect();
        output::write_json_pretty(
            &mut out,
            &json!({
                "dry_run": outcome.dry_run,
                "groups": groups,
                "removed": removed,
                "prune": pruned.as_ref().map(super::prune::outcome_json),
            }),
        )?;
    } else if !ui.quiet {
        for (i, group) in outcome.groups.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{}:", group.key)?;
            // Oldest first, as `snapshots` lists them.
            let kept: Vec<_> = group.kept().rev().collect();
            let removed: Vec<_> = group.removed().rev().collect();
            if !kept.is_empty() {
                writeln!(out, "keep {}:", count(kept.len()))?;
                table(&kept, true).write(&mut out)?;
            }
            if !removed.is_empty() {
                writeln!(out, "remove {}:", count(removed.len()))?;
                table(&removed, false).write(&mut out)?;
            }
        }
        if !outcome.groups.is_empty() {
            writeln!(out)?;
        }
        let n = count(outcome.removed.len());
        if outcome.dry_run {
            writeln!(out, "would remove {n} (dry run)")?;
        } else {
            writeln!(out, "removed {n}")?;
        }
        if let Some(pruned) = &pruned {
            super::prune::print(&mut out, ui, pruned)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `1 snapshot`, `3 snapshots`.
fn count(n: usize) -> String {
    format!("{n} snapshot{}", if n == 1 { "" } else { "s" })
}

/// The kept (with reasons) or removed snapshots of a group.
fn table(rows: &[&(SnapshotEntry, Decision)], reasons: bool) -> Table {
    let mut header = vec!["ID", "Time", "Host", "Tags"];
    if reasons {
        header.push("Reasons");
    }
    header.push("Paths");
    let mut table = Table::new(&header);
    for (entry, decision) in rows {
        let s = &entry.snapshot;
        let mut cells = vec![
            output::short_id(&entry.id),
            output::local_time(s.time_ns),
            s.hostname.clone(),
            s.tags.join(","),
        ];
        if reasons {
            cells.push(reason_strings(decision).join("\n"));
        }
        cells.push(s.paths.join("\n"));
        table.row(cells);
    }
    table
}

fn reason_strings(decision: &Decision) -> Vec<String> {
    decision.reasons.iter().map(ToString::to_string).collect()
}

/// A group as JSON: its key, and the snapshots kept and removed, oldest first.
fn group_json(group: &ForgetGroup) -> Value {
    let list = |rows: Vec<&(SnapshotEntry, Decision)>| -> Vec<Value> {
        rows.into_iter()
            .rev()
            .map(|(entry, decision)| {
                json!({
                    "id": entry.id.to_string(),
                    "short_id": output::short_id(&entry.id),
                    "time": output::rfc3339(entry.snapshot.time_ns),
                    "hostname": entry.snapshot.hostname,
                    "tags": entry.snapshot.tags,
                    "paths": entry.snapshot.paths,
                    "reasons": reason_strings(decision),
                })
            })
            .collect()
    };
    json!({
        "key": key_json(&group.key),
        "keep": list(group.kept().collect()),
        "remove": list(group.removed().collect()),
    })
}

/// A group key as JSON: the fields grouped by, `null` for the others.
fn key_json(key: &GroupKey) -> Value {
    json!({
        "host": key.host,
        "paths": key.paths,
        "tags": key.tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("3"), Ok(3));
        assert_eq!(parse_count("0"), Ok(0));
        assert_eq!(parse_count("unlimited"), Ok(u32::MAX));
        assert!(parse_count("abc").is_err());
        assert!(parse_count("-1").is_err());
    }

    #[test]
    fn restic_durations() {
        const H: u64 = 3600;
        assert_eq!(parse_within("7d"), Ok(Duration::from_secs(7 * 24 * H)));
        assert_eq!(parse_within("2h"), Ok(Duration::from_secs(2 * H)));
        assert_eq!(
            parse_within("1y5m7d2h"),
            Ok(Duration::from_secs((365 + 5 * 30 + 7) * 24 * H + 2 * H))
        );
        assert_eq!(parse_within("12m"), Ok(Duration::from_secs(360 * 24 * H)));
        for bad in ["", "7", "d", "7w", "1h30", "-1d", "99999999999999999999y"] {
            assert!(parse_within(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_by_words() {
        assert_eq!(parse_group_by("host,paths"), Ok(GroupBy::default()));
        let none = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        assert_eq!(parse_group_by(""), Ok(none));
        assert!(parse_group_by("hostname").is_err());
    }
}
