//! `check`: verify the repository's structure, and with `--read-data` every blob; report each
//! problem with the snapshots and files it affects. Exits 1 when anything is damaged.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args as ClapArgs;
use respaldo::{CheckOptions, DataSubset, Problem, ReadData};
use serde_json::{Value, json};

use crate::args::Global;
use crate::output::{self, Ui};
use crate::progress::TermProgress;

/// `check`.
#[derive(Debug, ClapArgs)]
pub struct CheckArgs {
    /// Also read every pack and verify every blob against its id.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read and verify only a deterministic part of the packs: `N%` (about N percent) or `K/M`
    /// (part K of M; running 1/M to M/M over M days reads everything once).
    #[arg(long, value_name = "SUBSET", value_parser = parse_subset)]
    pub read_data_subset: Option<DataSubset>,
}

fn parse_subset(s: &str) -> Result<DataSubset, String> {
    s.parse().map_err(|e: respaldo::Error| e.to_string())
}

/// Files listed per problem on a terminal (`--json` lists all the engine kept).
const SHOWN_AFFECTED: usize = 20;

/// Runs `check`.
pub fn run(global: &Global, ui: &Ui, args: &CheckArgs) -> Result<ExitCode> {
    let repo = super::events::open(global, ui)?;
    let options = CheckOptions {
        read_data: match (args.read_data, args.read_data_subset) {
            (true, _) => ReadData::All,
            (false, Some(subset)) => ReadData::Subset(subset),
            (false, None) => ReadData::No,
        },
    };
    let progress = TermProgress::new(ui, "check");
    let outcome = repo.check(&options, &progress);
    progress.finish();
    let outcome = outcome?;

    let mut out = output::stdout();
    if ui.json {
        let problems = |list: &[Problem]| -> Vec<Value> {
            list.iter()
                .map(|p| {
                    json!({
                        "object": p.object,
                        "message": p.message,
                        "affected": p.affected.iter().map(|a| json!({
                            "snapshot": a.snapshot.to_string(),
                            "path": a.path,
                        })).collect::<Vec<_>>(),
                        "more_affected": p.more_affected,
                    })
                })
                .collect()
        };
        output::write_json_pretty(
            &mut out,
            &json!({
                "ok": outcome.is_ok(),
                "snapshots": outcome.snapshots,
                "trees": outcome.trees,
                "data_blobs": outcome.data_blobs,
                "index_files": outcome.index_files,
                "packs": outcome.packs,
                "packs_read": outcome.packs_read,
                "bytes_read": outcome.bytes_read,
                "errors": problems(&outcome.errors),
                "warnings": problems(&outcome.warnings),
            }),
        )?;
    } else {
        let mut err = std::io::stderr().lock();
        for problem in &outcome.errors {
            writeln!(err, "error: {}: {}", problem.object, problem.message)?;
            let total = problem.affected.len() + problem.more_affected;
            for file in problem.affected.iter().take(SHOWN_AFFECTED) {
                writeln!(
                    err,
                    "  affects snapshot {}: {}",
                    output::short_id(&file.snapshot),
                    file.path
                )?;
            }
            if total > SHOWN_AFFECTED {
                writeln!(
                    err,
                    "  ... and {} more (--json lists them)",
                    total - SHOWN_AFFECTED
                )?;
            }
        }
        if !ui.quiet {
            for warning in &outcome.warnings {
                writeln!(err, "warning: {}: {}", warning.object, warning.message)?;
            }
            writeln!(
                out,
                "checked {} snapshot(s), {} tree(s), {} data blob(s), {} index file(s), {} pack(s)",
                outcome.snapshots,
                outcome.trees,
                outcome.data_blobs,
                outcome.index_files,
                outcome.packs
            )?;
            if outcome.packs_read > 0 {
                writeln!(
                    out,
                    "read {} pack(s), {}",
                    outcome.packs_read,
                    output::bytes(outcome.bytes_read)
                )?;
            }
            if outcome.is_ok() {
                writeln!(out, "no errors found")?;
            }
        }
    }
    out.flush()?;
    if !outcome.is_ok() {
        bail!(
            "the repository has {} problem(s); each is listed above with what it affects",
            outcome.errors.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
