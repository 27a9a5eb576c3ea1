//! [`respaldo::Progress`] for the terminal: an indicatif bar on standard error while a backup or
//! restore runs, and file names with `-v`.
//!
//! The bar is drawn only when standard error is a terminal and neither `--json` nor `--quiet`
//! is given ([`Ui::progress`]); on a pipe nothing but data is written. The engine calls these
//! methods from several threads: indicatif's bar and the atomics make that safe.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Ui;

/// Progress of a backup or restore as the user sees it.
#[derive(Debug)]
pub struct TermProgress {
    bar: Option<ProgressBar>,
    list_files: bool,
    files_done: AtomicU64,
    files_total: AtomicU64,
}

impl TermProgress {
    /// A bar (or nothing) as `ui` says; `verb` names the operation ("backup", "restore").
    pub fn new(ui: &Ui, verb: &'static str) -> Self {
        let bar = ui.progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {prefix} [{elapsed_precise}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(verb);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            list_files: !ui.json && ui.verbose > 0,
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
        }
    }

    /// Removes the bar; call before printing the outcome.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn update_message(&self, path: Option<&Path>) {
        if let Some(bar) = &self.bar {
            let done = self.files_done.load(Ordering::Relaxed);
            let total = self.files_total.load(Ordering::Relaxed);
            match path {
                Some(p) => bar.set_message(format!("{done}/{total} files  {}", p.display())),
                None => bar.set_message(format!("{done}/{total} files")),
            }
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            // A closed standard error cannot be reported anywhere.
            None => drop(writeln!(std::io::stderr().lock(), "{line}")),
        }
    }
}

impl Drop for TermProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl respaldo::Progress for TermProgress {
    fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(bytes);
        }
        self.update_message(None);
    }

    fn file_started(&self, path: &Path) {
        self.update_message(Some(path));
    }

    fn bytes_done(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn file_done(&self, path: &Path) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if self.list_files {
            self.say(&path.display().to_string());
        }
    }

    // Warnings are printed with the outcome (all of them, in order), not as they come.
}
