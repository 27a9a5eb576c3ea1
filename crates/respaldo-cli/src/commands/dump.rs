//! `dump`: the raw bytes of one file of a snapshot on standard output.
//!
//! A reader that stops early (`respaldo dump ... | head`) closes the pipe; `main` treats the
//! resulting broken pipe as success.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::args::{DumpArgs, Global};
use crate::output::{self, Ui};

/// Runs `dump`.
pub fn run(global: &Global, _ui: &Ui, args: &DumpArgs) -> Result<ExitCode> {
    let file = super::snapshot_path(&args.file);
    let repo = super::open(global)?;
    let entry = super::resolve(&repo, &args.snapshot)?;
    let mut out = output::stdout();
    repo.dump(&entry, &file, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
