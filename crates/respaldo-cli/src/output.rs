//! Everything the binary prints: how much to print ([`Ui`]), tables, times, sizes, and the JSON
//! shapes shared by several commands.
//!
//! Data goes to standard output, messages and warnings to standard error. Every write returns
//! its `io::Error`, so a closed pipe ends the command quietly (see `main.rs`) instead of
//! panicking the way `println!` does.

use std::io::{self, IsTerminal, Write};

use respaldo::{Snapshot, SnapshotEntry, Summary, Warning};
use serde_json::{Value, json};

use crate::args::Global;

/// How much the user wants to see, derived once from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Print JSON instead of text.
    pub json: bool,
    /// Print nothing but errors and the data asked for.
    pub quiet: bool,
    /// Extra detail level (`-v` count).
    pub verbose: u8,
    /// Draw progress bars (standard error is a terminal, neither `--json` nor `--quiet`).
    pub progress: bool,
}

impl Ui {
    /// The settings for `global`; progress bars only when standard error is a terminal.
    pub fn new(global: &Global) -> Self {
        let quiet = global.quiet;
        let json = global.json;
        Self {
            json,
            quiet,
            verbose: if quiet { 0 } else { global.verbose },
            progress: !json && !quiet && io::stderr().is_terminal(),
        }
    }
}

/// Standard output, locked and buffered. Call `flush` before returning.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::new(io::stdout().lock())
}

/// Writes `value` as one line of JSON followed by a newline.
pub fn write_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Writes `value` as indented JSON (for documents that are not streams).
pub fn write_json_pretty(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// The first 8 hex digits of an id, as restic shows them.
pub fn short_id(id: &impl ToString) -> String {
    let mut hex = id.to_string();
    hex.truncate(8);
    hex
}

/// A time as RFC 3339 in UTC with nanoseconds, fixed width so that the strings sort in time
/// order.
pub fn rfc3339(time_ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(time_ns)) {
        Ok(t) => format!("{t:.9}"),
        Err(_) => format!("{time_ns}ns"),
    }
}

/// A time as `YYYY-MM-DD HH:MM:SS` in the system time zone.
pub fn local_time(time_ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(time_ns)) {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => format!("{time_ns}ns"),
    }
}

/// A byte count in binary units (`1.50 MiB`).
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Seconds from nanoseconds, for JSON.
pub fn seconds(ns: u64) -> f64 {
    // Precision loss above 2^53 ns (104 days) is irrelevant for a duration.
    #[allow(clippy::cast_precision_loss)]
    let s = ns as f64 / 1e9;
    s
}

/// The summary of a backup as JSON fields.
pub fn summary_json(summary: &Summary) -> serde_json::Map<String, Value> {
    let value = json!({
        "files_new": summary.files_new,
        "files_changed": summary.files_changed,
        "files_unchanged": summary.files_unchanged,
        "dirs": summary.dirs,
        "others": summary.others,
        "total_bytes": summary.total_bytes,
        "bytes_read": summary.bytes_read,
        "blobs_added": summary.blobs_added,
        "bytes_added": summary.bytes_added,
        "errors": summary.errors,
        "files_changed_while_read": summary.files_changed_while_read,
        "duration_seconds": seconds(summary.duration_ns),
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// One snapshot as a JSON object (`snapshots --json`).
pub fn snapshot_json(entry: &SnapshotEntry) -> Value {
    let s: &Snapshot = &entry.snapshot;
    json!({
        "id": entry.id.to_string(),
        "short_id": short_id(&entry.id),
        "time": rfc3339(s.time_ns),
        "time_ns": s.time_ns,
        "utc_offset_seconds": s.utc_offset_s,
        "hostname": s.hostname,
        "username": s.username,
        "tags": s.tags,
        "paths": s.paths,
        "tree": s.tree.to_string(),
        "parent": s.parent.map(|p| p.to_string()),
        "program_version": s.program_version,
        "summary": summary_json(&s.summary),
    })
}

/// A warning as a JSON line of a backup or restore stream.
pub fn warning_json(warning: &Warning) -> Value {
    json!({
        "message_type": "warning",
        "path": warning.path.to_string_lossy(),
        "message": warning.message,
    })
}

/// Prints warnings on standard error: all of them with `-v`, else the first few and a count.
/// Warnings are errors of single paths, so `--quiet` does not hide them.
pub fn print_warnings(ui: &Ui, warnings: &[Warning]) -> io::Result<()> {
    const SHOWN: usize = 10;
    let mut err = io::stderr().lock();
    let limit = if ui.verbose > 0 {
        warnings.len()
    } else {
        SHOWN
    };
    for w in warnings.iter().take(limit) {
        writeln!(err, "warning: {}: {}", w.path.display(), w.message)?;
    }
    if warnings.len() > limit {
        writeln!(
            err,
            "warning: ... and {} more (-v lists them all)",
            warnings.len() - limit
        )?;
    }
    Ok(())
}

/// A plain text table: a header, a rule, aligned rows. Cells may hold several lines
/// (continued on the next lines of the table).
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column; a cell may contain newlines).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                for line in cell.lines() {
                    widths[i] = widths[i].max(line.chars().count());
                }
            }
        }
        let write_line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < cells.len() {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())
        };
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        write_line(out, &header)?;
        let total = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        writeln!(out, "{}", "-".repeat(total))?;
        for row in &self.rows {
            let split: Vec<Vec<&str>> = row.iter().map(|c| c.lines().collect()).collect();
            let height = split.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for l in 0..height {
                let cells: Vec<&str> = (0..columns)
                    .map(|i| split.get(i).and_then(|c| c.get(l)).copied().unwrap_or(""))
                    .collect();
                write_line(out, &cells)?;
            }
        }
        Ok(())
    }
}

/// `ls -l` style permission string (`drwxr-xr-x`) for a node kind letter and mode bits.
pub fn permissions(kind: char, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let exec =
        |x: u32, special: u32, set: char, unset: char| match (mode & x != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(exec(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(exec(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(exec(0o001, 0o1000, 't', 'T'));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings() {
        assert_eq!(permissions('-', 0o644), "-rw-r--r--");
        assert_eq!(permissions('d', 0o755), "drwxr-xr-x");
        assert_eq!(permissions('-', 0o4755), "-rwsr-xr-x");
        assert_eq!(permissions('d', 0o1777), "drwxrwxrwt");
        assert_eq!(permissions('-', 0o2640), "-rw-r-S---");
    }

    #[test]
    fn times_sort_as_strings() {
        let a = rfc3339(1_000_000_000);
        let b = rfc3339(1_000_000_001);
        assert_eq!(a, "1970-01-01T00:00:01.000000000Z");
        assert!(a < b);
    }

    #[test]
    fn table_aligns_and_continues_cells() -> io::Result<()> {
        let mut t = Table::new(&["ID", "Paths"]);
        t.row(vec!["abc".to_string(), "/a\n/b".to_string()]);
        let mut out = Vec::new();
        t.write(&mut out)?;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "ID   Paths\n----------\nabc  /a\n     /b\n"
        );
        Ok(())
    }
}
