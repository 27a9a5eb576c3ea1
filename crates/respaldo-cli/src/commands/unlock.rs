//! `unlock`: remove stale locks (or every lock with `--remove-all`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use crate::args::{Global, UnlockArgs};
use crate::output::{self, Ui};

/// Runs `unlock`.
pub fn run(global: &Global, ui: &Ui, args: &UnlockArgs) -> Result<ExitCode> {
    let repo = super::open(global)?;
    let removed = repo.unlock(args.remove_all)?;
    let remaining = repo.locks()?;

    let mut out = output::stdout();
    if ui.json {
        let describe = |list: &[respaldo::LockStatus]| -> Vec<Value> {
            list.iter()
                .map(|l| {
                    json!({
                        "name": l.name,
                        "description": l.describe(),
                        "stale": l.stale,
                    })
                })
                .collect()
        };
        output::write_json_pretty(
            &mut out,
            &json!({"removed": describe(&removed), "remaining": describe(&remaining)}),
        )?;
    } else if !ui.quiet {
        for lock in &removed {
            let why = lock.stale.as_deref().unwrap_or("--remove-all");
            writeln!(out, "removed {} ({why})", lock.describe())?;
        }
        if removed.is_empty() {
            writeln!(out, "no stale lock to remove")?;
        }
        for lock in &remaining {
            writeln!(
                out,
                "kept {}: it looks held; --remove-all removes it",
                lock.describe()
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
