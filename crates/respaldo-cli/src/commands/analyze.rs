//! `analyze`: replay files, or versions of a tree, through chunker settings and show how they
//! deduplicate and compress, without a repository (no `--repo`, no password).
//!
//! Exit code 3 when some files could not be read (the warnings name them); the figures then
//! cover the rest.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use respaldo::{AnalyzeOptions, AnalyzeOutcome, ChunkingSpec, SpecReport};
use serde_json::{Value, json};

use crate::args::Global;
use crate::output::{self, Table, Ui};
use crate::progress::TermProgress;

const AFTER_HELP: &str = "\
Chunker specs (--chunker, repeatable; default: fastcdc):
  fastcdc                   FastCDC with the repository default, 128K,512K,2M
  fastcdc:MIN,AVG,MAX[,N]   FastCDC; sizes in bytes with an optional K or M suffix, powers of
                            two, MIN < AVG < MAX; N the normalization level 0..=3 (default 1)
  fixed:SIZE                a cut every SIZE bytes (64..=64M)
  pages:MIN,AVG,MAX[@SIZE]  content-defined at page granularity, counts in pages: after each
                            page, cut if a hash of that page hits (chunks average AVG pages)
  pages-fixed:N[@SIZE]      a cut every N pages
Page kinds use a SQLite database's own page size (from its header) and 4096-byte pages for any
other file, unless @SIZE sets it. Only fastcdc specs can be given to `respaldo init --chunker`.

Each PATH is a version, replayed in the order given: later versions deduplicate against
earlier ones, and the last table shows what each version added. Folders are walked in sorted
order; symlinks and special files are skipped. Every file is read once for all specs; nothing
is written. Memory grows with the distinct chunks: about 80 bytes per distinct chunk per spec.

Columns: chunks and distinct chunks; logical size (all bytes read) and unique size (the
distinct chunks); dedup = logical / unique; zstd size of the distinct chunks (each compressed
on its own at the repository's level 3, raw when it does not shrink) and zstd = unique / zstd
size; index = distinct chunks x 188 bytes (50 in the index files, about 138 in index.redb);
MB/s = cutting and hashing speed (10^6 bytes per second, reading excluded).

--json prints one document: {\"files\", \"bytes\", \"duration_seconds\", \"specs\": [...],
\"versions\": [...], \"warnings\": [...]}.";

/// `analyze`.
#[derive(Debug, ClapArgs)]
#[command(after_help = AFTER_HELP)]
pub struct AnalyzeArgs {
    /// Files or folders to analyze; several are versions of the same data, oldest first.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// A chunker setting to measure (repeatable), such as fastcdc:256K,1M,4M, fixed:4K or
    /// pages:1,4,16 [default: fastcdc].
    #[arg(long = "chunker", value_name = "SPEC", value_parser = parse_spec)]
    pub chunkers: Vec<ChunkingSpec>,
}

fn parse_spec(text: &str) -> Result<ChunkingSpec, String> {
    text.parse::<ChunkingSpec>().map_err(|e| e.to_string())
}

/// Runs `analyze`.
pub fn run(_global: &Global, ui: &Ui, args: &AnalyzeArgs) -> Result<ExitCode> {
    let specs = if args.chunkers.is_empty() {
        vec![ChunkingSpec::default()]
    } else {
        args.chunkers.clone()
    };
    let options = AnalyzeOptions {
        paths: args.paths.clone(),
        specs,
        ..AnalyzeOptions::default()
    };
    let progress = TermProgress::new(ui, "analyze");
    let outcome = respaldo::analyze(&options, &progress)?;
    progress.finish();
    if ui.json {
        let mut out = output::stdout();
        output::write_json_pretty(&mut out, &to_json(&outcome))?;
        out.flush()?;
    } else {
        output::print_warnings(ui, &outcome.warnings)?;
        print(&outcome)?;
    }
    Ok(if outcome.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PARTIAL)
    })
}

fn to_json(outcome: &AnalyzeOutcome) -> Value {
    let specs: Vec<Value> = outcome.specs.iter().map(spec_json).collect();
    let versions: Vec<Value> = outcome
        .versions
        .iter()
        .map(|v| {
            let added: Vec<Value> = outcome
                .specs
                .iter()
                .zip(&v.added)
                .map(|(s, a)| {
                    json!({
                        "spec": s.spec.to_string(),
                        "chunks": a.chunks,
                        "bytes": a.bytes,
                        "compressed_bytes": a.compressed_bytes,
                    })
                })
                .collect();
            json!({
                "path": v.path.to_string_lossy(),
                "files": v.files,
                "bytes": v.bytes,
                "added": added,
            })
        })
        .collect();
    let warnings: Vec<Value> = outcome
        .warnings
        .iter()
        .map(|w| json!({"path": w.path.to_string_lossy(), "message": w.message}))
        .collect();
    json!({
        "files": outcome.files,
        "bytes": outcome.bytes,
        "duration_seconds": output::seconds(outcome.duration_ns),
        "specs": specs,
        "versions": versions,
        "warnings": warnings,
    })
}

fn spec_json(s: &SpecReport) -> Value {
    let e = &s.estimate;
    let histogram: Vec<Value> = e
        .histogram
        .iter()
        .map(|b| json!({"upper_bound": b.upper_bound, "count": b.count}))
        .collect();
    json!({
        "spec": s.spec.to_string(),
        "kind": s.spec.kind(),
        "chunks": e.chunks,
        "unique_chunks": e.unique_chunks,
        "logical_bytes": e.logical_bytes,
        "unique_bytes": e.unique_bytes,
        "dedup_ratio": s.dedup_ratio(),
        "compressed_bytes": s.compressed_bytes,
        "zstd_ratio": s.zstd_ratio(),
        "total_ratio": s.total_ratio(),
        "index_bytes": s.index_bytes,
        "cut_hash_seconds": output::seconds(s.cut_hash_ns),
        "throughput_mb_s": s.throughput_mb_s(),
        "histogram": histogram,
    })
}

fn print(outcome: &AnalyzeOutcome) -> Result<()> {
    let mut out = output::stdout();
    writeln!(
        out,
        "Analyzed {} version(s): {} file(s), {} in {:.2}s",
        outcome.versions.len(),
        outcome.files,
        output::bytes(outcome.bytes),
        output::seconds(outcome.duration_ns)
    )?;
    writeln!(out)?;

    let mut table = Table::new(&[
        "Spec",
        "Chunks",
        "Unique",
        "Avg size",
        "Logical",
        "Unique size",
        "Dedup",
        "zstd size",
        "zstd",
        "Total",
        "Index",
        "MB/s",
    ]);
    for s in &outcome.specs {
        let e = &s.estimate;
        let average = e.logical_bytes.checked_div(e.chunks).unwrap_or(0);
        table.row(vec![
            s.spec.to_string(),
            e.chunks.to_string(),
            e.unique_chunks.to_string(),
            output::bytes(average),
            output::bytes(e.logical_bytes),
            output::bytes(e.unique_bytes),
            format!("{:.2}", s.dedup_ratio()),
            output::bytes(s.compressed_bytes),
            format!("{:.2}", s.zstd_ratio()),
            format!("{:.2}", s.total_ratio()),
            output::bytes(s.index_bytes),
            s.throughput_mb_s()
                .map_or_else(|| "-".to_string(), |t| format!("{t:.0}")),
        ]);
    }
    table.write(&mut out)?;

    for s in &outcome.specs {
        writeln!(out)?;
        writeln!(out, "Chunk sizes, {}:", s.spec)?;
        let total = s.estimate.chunks.max(1);
        let most = s
            .estimate
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1);
        let mut table = Table::new(&["Up to", "Chunks", "Share", ""]);
        for b in &s.estimate.histogram {
            let width = (b.count * 40).div_ceil(most) as usize;
            table.row(vec![
                output::bytes(b.upper_bound),
                b.count.to_string(),
                percent(b.count, total),
                "#".repeat(width),
            ]);
        }
        table.write(&mut out)?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "Added by each version (bytes of chunks not seen before; zstd size in parentheses):"
    )?;
    let mut header = vec!["Version".to_string(), "Files".into(), "Size".into()];
    header.extend(outcome.specs.iter().map(|s| s.spec.to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header);
    for v in &outcome.versions {
        let mut row = vec![
            v.path.display().to_string(),
            v.files.to_string(),
            output::bytes(v.bytes),
        ];
        row.extend(v.added.iter().map(|a| {
            format!(
                "{} {} ({})",
                output::bytes(a.bytes),
                percent(a.bytes, v.bytes.max(1)),
                output::bytes(a.compressed_bytes)
            )
        }));
        table.row(row);
    }
    table.write(&mut out)?;
    if !outcome.warnings.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Warning: {} path(s) could not be read (or only in part); the figures leave them out",
            outcome.warnings.len()
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `part / whole` as a percentage with one decimal.
fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}
