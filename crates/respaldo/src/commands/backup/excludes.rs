//! Exclude rules of a backup: gitignore patterns and marker files.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// Decides which paths a backup leaves out.
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    patterns: Gitignore,
    if_present: Vec<String>,
}

impl Excludes {
    /// Builds the rules from patterns (gitignore syntax, anchored at `/`), pattern files (one
    /// pattern per line, `#` comments) and marker file names.
    pub(crate) fn new(
        patterns: &[String],
        files: &[PathBuf],
        if_present: &[String],
    ) -> Result<Self> {
        let mut builder = GitignoreBuilder::new("/");
        for pattern in patterns {
            builder
                .add_line(None, pattern)
                .map_err(|e| Error::invalid(format!("invalid exclude pattern {pattern:?}: {e}")))?;
        }
        for file in files {
            let text =
                std::fs::read_to_string(file).map_err(Error::io("read exclude file", file))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim_end();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                builder.add_line(Some(file.clone()), line).map_err(|e| {
                    Error::invalid(format!(
                        "invalid exclude pattern {line:?} at {}:{}: {e}",
                        file.display(),
                        number + 1
                    ))
                })?;
            }
        }
        let patterns = builder
            .build()
            .map_err(|e| Error::invalid(format!("invalid exclude patterns: {e}")))?;
        Ok(Self {
            patterns,
            if_present: if_present.to_vec(),
        })
    }

    /// Whether `path` (absolute) matches a pattern; parents are assumed already checked.
    pub(crate) fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        self.patterns.matched(path, is_dir).is_ignore()
            || (is_dir && self.if_present.iter().any(|name| path.join(name).exists()))
    }

    /// Whether `path` or any of its parents matches a pattern (for the paths given to backup).
    pub(crate) fn excludes_with_parents(&self, path: &Path, is_dir: bool) -> bool {
        self.patterns
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
            || (is_dir && self.if_present.iter().any(|name| path.join(name).exists()))
    }
}
