//! Include and exclude patterns of a partial restore, matched against snapshot paths.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Characters that make a path component a pattern rather than a literal name.
const GLOB_META: &[u8] = b"*?[]{}\\";

/// Compiled include and exclude patterns.
#[derive(Debug)]
pub(crate) struct PathFilter {
    includes: Option<GlobSet>,
    /// For each include pattern, its leading literal components (`/home/user` for
    /// `/home/user/*.rs`; empty when the pattern may match anywhere).
    include_prefixes: Vec<Vec<u8>>,
    excludes: Option<GlobSet>,
}

/// `pattern` as matched: trailing `/` removed, and `**/` prepended when it does not start
/// with `/` (such a pattern matches at any depth).
fn normalize(pattern: &str) -> Result<String> {
    if pattern.is_empty() {
        return Err(Error::invalid("an include or exclude pattern is empty"));
    }
    let trimmed = pattern.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/**".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("**/{trimmed}")
    })
}

fn literal_prefix(normalized: &str) -> Vec<u8> {
    let mut prefix = Vec::new();
    for component in normalized
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
    {
        if component.iter().any(|b| GLOB_META.contains(b)) {
            break;
        }
        prefix.push(b'/');
        prefix.extend_from_slice(component);
    }
    prefix
}

fn build_set(patterns: &[String], what: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(&normalize(pattern)?)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::invalid(format!("invalid {what} pattern {pattern:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::invalid(format!("invalid {what} patterns {patterns:?}: {e}")))
}

/// Whether `a` equals `b` or is a parent of it, component-wise.
fn is_path_prefix(a: &[u8], b: &[u8]) -> bool {
    b.starts_with(a) && (a.len() == b.len() || b.get(a.len()) == Some(&b'/'))
}

impl PathFilter {
    /// Compiles the patterns; an invalid one is an error naming it.
    pub(crate) fn new(includes: &[String], excludes: &[String]) -> Result<Self> {
        let include_prefixes = includes
            .iter()
            .map(|p| normalize(p).map(|n| literal_prefix(&n)))
            .collect::<Result<_>>()?;
        Ok(Self {
            includes: build_set(includes, "include")?,
            include_prefixes,
            excludes: build_set(excludes, "exclude")?,
        })
    }

    /// Whether the node at snapshot path `path` matches an include pattern (always true
    /// without include patterns).
    pub(crate) fn included(&self, path: &[u8]) -> bool {
        self.includes
            .as_ref()
            .is_none_or(|set| set.is_match(Path::new(OsStr::from_bytes(path))))
    }

    /// Whether the node at `path` matches an exclude pattern.
    pub(crate) fn excluded(&self, path: &[u8]) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|set| set.is_match(Path::new(OsStr::from_bytes(path))))
    }

    /// Whether something below directory `path` may match an include pattern (conservative).
    pub(crate) fn may_contain_included(&self, path: &[u8]) -> bool {
        self.includes.is_none()
            || self
                .include_prefixes
                .iter()
                .any(|prefix| is_path_prefix(path, prefix) || is_path_prefix(prefix, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(includes: &[&str], excludes: &[&str]) -> PathFilter {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match PathFilter::new(&owned(includes), &owned(excludes)) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn patterns_match_as_documented() {
        let f = filter(&["/home/*/src", "*.txt"], &["/home/user/src/target"]);
        assert!(f.included(b"/home/user/src"));
        assert!(
            !f.included(b"/home/user/src/x.rs"),
            "children are included through their parent"
        );
        assert!(!f.included(b"/home/a/b/src"), "* does not cross /");
        assert!(f.included(b"/deep/down/notes.txt"));
        assert!(f.included(b"/notes.txt"));
        assert!(f.excluded(b"/home/user/src/target"));
        assert!(!f.excluded(b"/home/user/src/target2"));
        assert!(f.may_contain_included(b"/home"));
        assert!(
            f.may_contain_included(b"/anything"),
            "*.txt may match anywhere"
        );
        let g = filter(&["/home/user/src/"], &[]);
        assert!(g.included(b"/home/user/src"));
        assert!(g.may_contain_included(b"/home/user"));
        assert!(g.may_contain_included(b"/home/user/src/deeper"));
        assert!(!g.may_contain_included(b"/home/other"));
        assert!(!g.may_contain_included(b"/home/user/srcx"));
        assert!(filter(&[], &[]).included(b"/x"));
        assert!(PathFilter::new(&["[".to_string()], &[]).is_err());
    }
}
