//! `diff`: what changed from one snapshot to another, one line per path as restic prints it
//! (`+` added, `-` removed, `M` modified, `U` metadata only), or a JSON array.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::ChangeKind;
use serde_json::{Value, json};

use crate::args::{DiffArgs, Global};
use crate::output::{self, Ui};

/// Runs `diff`.
pub fn run(global: &Global, ui: &Ui, args: &DiffArgs) -> Result<ExitCode> {
    let repo = super::open(global)?;
    let from = super::resolve(&repo, &args.from)?;
    let to = super::resolve(&repo, &args.to)?;
    let changes = repo.diff(&from, &to)?;

    let mut out = output::stdout();
    if ui.json {
        let list: Vec<Value> = changes
            .iter()
            .map(|c| json!({"path": c.path, "change": change_name(c.kind)}))
            .collect();
        output::write_json_pretty(&mut out, &Value::Array(list))?;
    } else {
        if ui.verbose > 0 {
            writeln!(
                out,
                "comparing snapshot {} to {}:",
                output::short_id(&from.id),
                output::short_id(&to.id)
            )?;
        }
        for change in &changes {
            writeln!(out, "{}    {}", change.kind.marker(), change.path)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON name of a change.
fn change_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
        ChangeKind::MetadataOnly => "metadata",
        _ => "changed",
    }
}
