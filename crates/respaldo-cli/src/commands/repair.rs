//! `repair index` and `repair snapshots`: bring a damaged repository back to a state `check`
//! accepts, and say what was lost.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use respaldo::SnapshotRepairOptions;
use serde_json::json;

use crate::args::Global;
use crate::output::{self, Ui};
use crate::progress::TermProgress;

/// `repair`.
#[derive(Debug, ClapArgs)]
pub struct RepairArgs {
    /// What to repair.
    #[command(subcommand)]
    pub what: RepairCommand,
}

/// What `repair` repairs.
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index files from the packs themselves (when index files are lost or
    /// damaged).
    Index {
        /// Also verify every blob, and leave out of the index those that are damaged.
        #[arg(long)]
        read_data: bool,
    },
    /// Write new snapshots without the files whose data is lost (tagged `repaired`).
    Snapshots {
        /// Snapshots to repair (ids or unique prefixes); default: all.
        #[arg(value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
        /// Also read every blob the snapshots need; a damaged one counts as lost.
        #[arg(long)]
        read_data: bool,
        /// Delete the original of each repaired snapshot, and manifests that cannot be read.
        #[arg(long)]
        forget: bool,
        /// Only show what would be done.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
}

/// Runs `repair`.
pub fn run(global: &Global, ui: &Ui, args: &RepairArgs) -> Result<ExitCode> {
    let repo = super::open(global)?;
    let mut out = output::stdout();
    match &args.what {
        RepairCommand::Index { read_data } => {
            let progress = TermProgress::new(ui, "repair index");
            let outcome = repo.repair_index(*read_data, &progress);
            progress.finish();
            let o = outcome?;
            if ui.json {
                let notes: Vec<_> = o
                    .notes
                    .iter()
                    .map(|n| json!({"object": n.object, "message": n.message}))
                    .collect();
                output::write_json_pretty(
                    &mut out,
                    &json!({
                        "packs": o.packs,
                        "packs_listed": o.packs_listed,
                        "blobs_listed": o.blobs_listed,
                        "blobs_dropped": o.blobs_dropped,
                        "index_files_written": o.index_files_written,
                        "index_files_removed": o.index_files_removed,
                        "notes": notes,
                    }),
                )?;
            } else {
                let mut err = std::io::stderr().lock();
                for note in &o.notes {
                    writeln!(err, "warning: {}: {}", note.object, note.message)?;
                }
                if !ui.quiet {
                    writeln!(
                        out,
                        "listed {} blob(s) of {} of {} pack(s) in {} new index file(s); removed {} \
                         old index file(s)",
                        o.blobs_listed,
                        o.packs_listed,
                        o.packs,
                        o.index_files_written,
                        o.index_files_removed
                    )?;
                }
            }
        }
        RepairCommand::Snapshots {
            snapshots,
            read_data,
            forget,
            dry_run,
        } => {
            let options = SnapshotRepairOptions {
                snapshots: snapshots.clone(),
                read_data: *read_data,
                forget: *forget,
                dry_run: *dry_run,
            };
            let progress = TermProgress::new(ui, "repair snapshots");
            let outcome = repo.repair_snapshots(&options, &progress);
            progress.finish();
            let o = outcome?;
            if ui.json {
                let repaired: Vec<_> = o
                    .repaired
                    .iter()
                    .map(|r| {
                        json!({
                            "original": r.original.to_string(),
                            "repaired": r.repaired.map(|id| id.to_string()),
                            "lost": r.lost,
                            "forgotten": r.forgotten,
                        })
                    })
                    .collect();
                output::write_json_pretty(
                    &mut out,
                    &json!({"dry_run": o.dry_run, "snapshots": o.snapshots, "repaired": repaired}),
                )?;
            } else if !ui.quiet {
                for r in &o.repaired {
                    match r.repaired {
                        Some(id) => writeln!(
                            out,
                            "snapshot {} repaired as {}{}",
                            output::short_id(&r.original),
                            output::short_id(&id),
                            if r.forgotten {
                                " (original deleted)"
                            } else {
                                ""
                            }
                        )?,
                        None => writeln!(
                            out,
                            "snapshot {}{}",
                            output::short_id(&r.original),
                            if o.dry_run { " would be repaired" } else { "" }
                        )?,
                    }
                    for lost in &r.lost {
                        writeln!(out, "  {lost}")?;
                    }
                }
                writeln!(
                    out,
                    "{} of {} snapshot(s) {}",
                    o.repaired.len(),
                    o.snapshots,
                    if o.dry_run {
                        "need repair (dry run)"
                    } else {
                        "needed repair"
                    }
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
