//! `prune`: delete packs no snapshot needs, repack mostly-unused ones.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use respaldo::{PruneOptions, PruneOutcome};
use serde_json::json;

use crate::args::Global;
use crate::output::{self, Ui};
use crate::progress::TermProgress;

/// `prune`.
#[derive(Debug, ClapArgs)]
pub struct PruneArgs {
    /// Repack a pack when more than this share of it is unused: `N%` (0 to 100), or
    /// `unlimited` (never repack; delete only packs with nothing used).
    #[arg(long, value_name = "SHARE", default_value = "10%", value_parser = parse_max_unused)]
    pub max_unused: MaxUnused,
    /// Only show what would be deleted and repacked.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// The `--max-unused` value: a fraction, or no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxUnused(pub Option<f64>);

/// `N%` or `unlimited`.
pub fn parse_max_unused(s: &str) -> Result<MaxUnused, String> {
    respaldo::parse_max_unused(s).map(MaxUnused)
}

/// Runs `prune`.
pub fn run(global: &Global, ui: &Ui, args: &PruneArgs) -> Result<ExitCode> {
    let repo = super::events::open(global, ui)?;
    let options = PruneOptions {
        max_unused: args.max_unused.0,
        dry_run: args.dry_run,
    };
    let progress = TermProgress::new(ui, "repack");
    let outcome = repo.prune(&options, &progress);
    progress.finish();
    let outcome = outcome?;
    let mut out = output::stdout();
    print(&mut out, ui, &outcome)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What prune did, as JSON (shared with `forget --prune`).
pub fn outcome_json(o: &PruneOutcome) -> serde_json::Value {
    json!({
                "dry_run": o.dry_run,
                "snapshots": o.snapshots,
                "blobs_used": o.blobs_used,
                "blobs_unused": o.blobs_unused,
                "packs_kept": o.packs_kept,
                "packs_deleted": o.packs_deleted,
                "packs_repacked": o.packs_repacked,
                "packs_unindexed": o.packs_unindexed,
                "packs_missing": o.packs_missing,
                "blobs_repacked": o.blobs_repacked,
                "bytes_repacked": o.bytes_repacked,
                "bytes_deleted": o.bytes_deleted,
                "bytes_freed": o.bytes_freed(),
                "index_files_replaced": o.index_files_replaced,
                "index_files_written": o.index_files_written,
    })
}

/// Prints what prune did (shared with `forget --prune`).
pub fn print(out: &mut impl Write, ui: &Ui, o: &PruneOutcome) -> Result<()> {
    if ui.json {
        output::write_json_pretty(out, &outcome_json(o))?;
        return Ok(());
    }
    if ui.quiet {
        return Ok(());
    }
    let (verb, deleted) = if o.dry_run {
        ("would ", "would delete")
    } else {
        ("", "deleted")
    };
    writeln!(
        out,
        "{} snapshot(s) use {} blob(s); {} blob(s) are used by none",
        o.snapshots, o.blobs_used, o.blobs_unused
    )?;
    writeln!(
        out,
        "{deleted} {} unused pack(s) and {} pack(s) no index lists; {verb}repack {} pack(s) \
         ({} blob(s), {}); {verb}keep {} pack(s)",
        o.packs_deleted,
        o.packs_unindexed,
        o.packs_repacked,
        o.blobs_repacked,
        output::bytes(o.bytes_repacked),
        o.packs_kept
    )?;
    if o.packs_missing > 0 {
        writeln!(
            out,
            "{verb}drop the listing of {} pack(s) that are missing (none of their blobs is used)",
            o.packs_missing
        )?;
    }
    writeln!(
        out,
        "{verb}replace {} index file(s) with {}",
        o.index_files_replaced, o.index_files_written
    )?;
    writeln!(
        out,
        "{} {}",
        if o.dry_run { "would free" } else { "freed" },
        output::bytes(o.bytes_freed())
    )?;
    Ok(())
}
