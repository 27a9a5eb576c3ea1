//! [`ChunkingSpec`]: a chunker kind and its settings, as a user writes them.
//!
//! ```text
//! fastcdc                    FastCDC with the repository default (128K,512K,2M)
//! fastcdc:MIN,AVG,MAX[,N]    FastCDC; sizes in bytes with an optional K or M suffix (powers
//!                            of two), N the normalization level 0..=3 (default 1)
//! fixed:SIZE                 a cut every SIZE bytes (64..=64M, any value)
//! pages:MIN,AVG,MAX[@SIZE]   content-defined at page granularity; counts in pages
//! pages-fixed:N[@SIZE]       a cut every N pages
//! ```
//!
//! Page kinds use the page size of a SQLite database (read from its header) and 4096 bytes for
//! any other file, unless `@SIZE` fixes it (a power of two, 512..=64K).

use std::fmt;
use std::str::FromStr;

use crate::cdc::Chunker;
use crate::cutter::Cutter;
use crate::error::{Error, clip};
use crate::fixed::FixedChunker;
use crate::pages::{DEFAULT_PAGE_SIZE, MAX_PAGES, PageChunker, PageParams, check_page_size};
use crate::params::ChunkerParams;
use crate::sqlite::sqlite_page_size;

/// Valid specs, shown in every parse error.
const EXAMPLES: &str = "fastcdc, fastcdc:256K,1M,4M, fixed:4K, pages:1,4,16 or pages-fixed:4";

/// The page size of a page kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// The file's own: a SQLite database's page size, read from its header
    /// ([`sqlite_page_size`]); [`DEFAULT_PAGE_SIZE`] (4096) for any other file.
    Detect,
    /// This many bytes, whatever the file (a power of two, 512..=65536).
    Bytes(u32),
}

impl PageSize {
    /// The page size for a file starting with `header` (at least
    /// [`SQLITE_HEADER_LEN`](crate::SQLITE_HEADER_LEN) bytes of it, or the whole file if it
    /// is shorter).
    #[must_use]
    pub fn resolve(self, header: &[u8]) -> u32 {
        match self {
            PageSize::Bytes(size) => size,
            PageSize::Detect => sqlite_page_size(header).unwrap_or(DEFAULT_PAGE_SIZE),
        }
    }
}

/// A chunker kind and its settings: what `--chunker` takes.
///
/// ```text
/// fastcdc                    FastCDC with the repository default (128K,512K,2M)
/// fastcdc:MIN,AVG,MAX[,N]    FastCDC; sizes in bytes with an optional K or M suffix (powers
///                            of two), N the normalization level 0..=3 (default 1)
/// fixed:SIZE                 a cut every SIZE bytes (64..=64M, any value)
/// pages:MIN,AVG,MAX[@SIZE]   content-defined at page granularity; counts in pages
/// pages-fixed:N[@SIZE]       a cut every N pages
/// ```
///
/// Page kinds use the page size of a SQLite database (read from its header) and 4096 bytes
/// for any other file, unless `@SIZE` fixes it (a power of two, 512..=64K).
///
/// Parse with [`ChunkingSpec::parse`] or [`str::parse`];
/// [`fmt::Display`] writes the canonical form, which parses back to the same value.
///
/// A parsed spec is valid: [`ChunkingSpec::cutter`] fails only for a spec built by hand with
/// invalid values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkingSpec {
    /// FastCDC 2020 ([`Chunker`]); the only kind a repository stores.
    FastCdc(ChunkerParams),
    /// A cut every `size` bytes ([`FixedChunker`]).
    Fixed {
        /// Chunk size in bytes.
        size: u32,
    },
    /// Content-defined at page granularity ([`PageChunker`]).
    Pages {
        /// Fewest pages in a chunk.
        min_pages: u32,
        /// Target average pages in a chunk.
        avg_pages: u32,
        /// Most pages in a chunk.
        max_pages: u32,
        /// The page size.
        page_size: PageSize,
    },
    /// A cut every `pages` pages (a [`FixedChunker`] of `pages × page size` bytes).
    PagesFixed {
        /// Pages in a chunk.
        pages: u32,
        /// The page size.
        page_size: PageSize,
    },
}

impl Default for ChunkingSpec {
    /// FastCDC with [`ChunkerParams::default`].
    fn default() -> Self {
        ChunkingSpec::FastCdc(ChunkerParams::default())
    }
}

impl ChunkingSpec {
    /// Parses a spec such as `fastcdc:256K,1M,4M`, `fixed:4K` or `pages:1,4,16`.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`], naming the spec, what is wrong with it, and valid examples.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidSpec {
            spec: clip(text),
            reason,
            examples: EXAMPLES,
        };
        let trimmed = text.trim();
        let (kind, args) = match trimmed.split_once(':') {
            Some((kind, args)) => (kind.trim(), Some(args)),
            None => (trimmed, None),
        };
        let spec = match (kind.to_ascii_lowercase().as_str(), args) {
            ("fastcdc", None) => ChunkingSpec::default(),
            ("fastcdc", Some(args)) => parse_fastcdc(args).map_err(invalid)?,
            ("fixed", Some(args)) => ChunkingSpec::Fixed {
                size: parse_size("SIZE", args).map_err(invalid)?,
            },
            ("fixed", None) => {
                return Err(invalid(
                    "`fixed` needs a chunk size, such as fixed:4K".to_string(),
                ));
            }
            ("pages", Some(args)) => parse_pages(args).map_err(invalid)?,
            ("pages", None) => {
                return Err(invalid(
                    "`pages` needs MIN,AVG,MAX counts of pages, such as pages:1,4,16".to_string(),
                ));
            }
            ("pages-fixed", Some(args)) => {
                let (count, page_size) = split_page_size(args).map_err(invalid)?;
                ChunkingSpec::PagesFixed {
                    pages: parse_count("N", count).map_err(invalid)?,
                    page_size,
                }
            }
            ("pages-fixed", None) => {
                return Err(invalid(
                    "`pages-fixed` needs a number of pages, such as pages-fixed:4".to_string(),
                ));
            }
            ("", _) => return Err(invalid("the spec is empty".to_string())),
            (other, _) => {
                return Err(invalid(format!(
                    "unknown chunker kind `{}`: the kinds are fastcdc, fixed, pages and \
                     pages-fixed",
                    clip(other)
                )));
            }
        };
        spec.validate().map_err(|e| invalid(e.to_string()))?;
        Ok(spec)
    }

    /// Checks the settings (a parsed spec always passes).
    ///
    /// # Errors
    /// The errors of [`ChunkerParams::validate`], [`FixedChunker::new`] or
    /// [`PageParams::validate`] (for page kinds, with the largest page size when it is
    /// detected per file), and [`Error::OutOfRange`] for `pages-fixed` counts outside
    /// `1..=1024`.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            ChunkingSpec::FastCdc(params) => params.validate(),
            ChunkingSpec::Fixed { size } => FixedChunker::new(size).map(drop),
            ChunkingSpec::Pages {
                min_pages,
                avg_pages,
                max_pages,
                page_size,
            } => {
                if let PageSize::Bytes(size) = page_size {
                    check_page_size(size)?;
                }
                PageParams::new(page_size.resolve(&[]), min_pages, avg_pages, max_pages).map(drop)
            }
            ChunkingSpec::PagesFixed { pages, page_size } => {
                if let PageSize::Bytes(size) = page_size {
                    check_page_size(size)?;
                }
                if !(1..=MAX_PAGES).contains(&pages) {
                    return Err(Error::OutOfRange {
                        field: "pages",
                        value: u64::from(pages),
                        min: 1,
                        max: u64::from(MAX_PAGES),
                    });
                }
                Ok(())
            }
        }
    }

    /// The chunker kind's name as the syntax writes it: `fastcdc`, `fixed`, `pages` or
    /// `pages-fixed`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            ChunkingSpec::FastCdc(_) => "fastcdc",
            ChunkingSpec::Fixed { .. } => "fixed",
            ChunkingSpec::Pages { .. } => "pages",
            ChunkingSpec::PagesFixed { .. } => "pages-fixed",
        }
    }

    /// The FastCDC parameters, for the FastCDC kind only (the only kind a repository can
    /// use).
    #[must_use]
    pub fn fastcdc_params(&self) -> Option<ChunkerParams> {
        match self {
            ChunkingSpec::FastCdc(params) => Some(*params),
            _ => None,
        }
    }

    /// The page size the spec uses for a file starting with `header` (see
    /// [`PageSize::resolve`]); `None` for kinds that do not work in pages.
    #[must_use]
    pub fn page_size_for(&self, header: &[u8]) -> Option<u32> {
        match self {
            ChunkingSpec::Pages { page_size, .. } | ChunkingSpec::PagesFixed { page_size, .. } => {
                Some(page_size.resolve(header))
            }
            _ => None,
        }
    }

    /// The chunker for a file starting with `header`: at least
    /// [`SQLITE_HEADER_LEN`](crate::SQLITE_HEADER_LEN) bytes of it (or the whole file if
    /// shorter), which page kinds read to detect a SQLite database's page size. Other kinds
    /// ignore `header`. FastCDC keeps the spec's seed (0 when parsed).
    ///
    /// # Errors
    /// The errors of [`ChunkingSpec::validate`] (never for a parsed spec).
    pub fn cutter(&self, header: &[u8]) -> Result<Cutter, Error> {
        Ok(match *self {
            ChunkingSpec::FastCdc(params) => Cutter::FastCdc(Chunker::new(params)?),
            ChunkingSpec::Fixed { size } => Cutter::Fixed(FixedChunker::new(size)?),
            ChunkingSpec::Pages {
                min_pages,
                avg_pages,
                max_pages,
                page_size,
            } => Cutter::Pages(PageChunker::new(PageParams::new(
                page_size.resolve(header),
                min_pages,
                avg_pages,
                max_pages,
            )?)?),
            ChunkingSpec::PagesFixed { pages, page_size } => {
                self.validate()?;
                Cutter::Fixed(FixedChunker::new(pages * page_size.resolve(header))?)
            }
        })
    }
}

impl FromStr for ChunkingSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for ChunkingSpec {
    /// The canonical form: sizes with the largest exact K or M suffix, the normalization
    /// level only when it is not the default. The FastCDC seed is not written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChunkingSpec::FastCdc(p) => {
                write!(
                    f,
                    "fastcdc:{},{},{}",
                    Size(p.min_size),
                    Size(p.avg_size),
                    Size(p.max_size)
                )?;
                if p.normalization != ChunkerParams::DEFAULT_NORMALIZATION {
                    write!(f, ",{}", p.normalization)?;
                }
                Ok(())
            }
            ChunkingSpec::Fixed { size } => write!(f, "fixed:{}", Size(size)),
            ChunkingSpec::Pages {
                min_pages,
                avg_pages,
                max_pages,
                page_size,
            } => {
                write!(f, "pages:{min_pages},{avg_pages},{max_pages}")?;
                write_page_size(f, page_size)
            }
            ChunkingSpec::PagesFixed { pages, page_size } => {
                write!(f, "pages-fixed:{pages}")?;
                write_page_size(f, page_size)
            }
        }
    }
}

fn write_page_size(f: &mut fmt::Formatter<'_>, page_size: PageSize) -> fmt::Result {
    match page_size {
        PageSize::Detect => Ok(()),
        PageSize::Bytes(size) => write!(f, "@{}", Size(size)),
    }
}

/// A byte count with the largest exact binary suffix (`4K`, `1M`, `1000`).
struct Size(u32);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u32 = 1024;
        const MIB: u32 = 1024 * 1024;
        match self.0 {
            0 => write!(f, "0"),
            n if n % MIB == 0 => write!(f, "{}M", n / MIB),
            n if n % KIB == 0 => write!(f, "{}K", n / KIB),
            n => write!(f, "{n}"),
        }
    }
}

fn parse_fastcdc(args: &str) -> Result<ChunkingSpec, String> {
    let parts: Vec<&str> = args.split(',').collect();
    let usage = "fastcdc takes MIN,AVG,MAX sizes and optionally the normalization level \
                 0..=3, such as fastcdc:256K,1M,4M or fastcdc:16K,64K,256K,2";
    let (min, avg, max, level) = match parts.as_slice() {
        [min, avg, max] => (min, avg, max, None),
        [min, avg, max, level] => (min, avg, max, Some(level)),
        _ => return Err(format!("{usage} (got {} values)", parts.len())),
    };
    let normalization = match level {
        None => ChunkerParams::DEFAULT_NORMALIZATION,
        Some(level) => level
            .trim()
            .parse::<u8>()
            .map_err(|_| format!("normalization level {:?} is not 0, 1, 2 or 3", clip(level)))?,
    };
    Ok(ChunkingSpec::FastCdc(ChunkerParams {
        min_size: parse_size("MIN", min)?,
        avg_size: parse_size("AVG", avg)?,
        max_size: parse_size("MAX", max)?,
        normalization,
        seed: 0,
    }))
}

fn parse_pages(args: &str) -> Result<ChunkingSpec, String> {
    let (counts, page_size) = split_page_size(args)?;
    let parts: Vec<&str> = counts.split(',').collect();
    let [min, avg, max] = parts.as_slice() else {
        return Err(format!(
            "pages takes MIN,AVG,MAX counts of pages, such as pages:1,4,16 or pages:1,4,16@8K \
             (got {} values)",
            parts.len()
        ));
    };
    Ok(ChunkingSpec::Pages {
        min_pages: parse_count("MIN", min)?,
        avg_pages: parse_count("AVG", avg)?,
        max_pages: parse_count("MAX", max)?,
        page_size,
    })
}

/// Splits `COUNTS[@SIZE]`.
fn split_page_size(args: &str) -> Result<(&str, PageSize), String> {
    match args.split_once('@') {
        None => Ok((args, PageSize::Detect)),
        Some((counts, size)) => {
            let size = parse_size("page size", size)?;
            check_page_size(size).map_err(|e| e.to_string())?;
            Ok((counts, PageSize::Bytes(size)))
        }
    }
}

/// A count of pages: a plain positive integer.
fn parse_count(what: &str, text: &str) -> Result<u32, String> {
    let text = text.trim();
    text.parse::<u32>()
        .map_err(|_| format!("{what} = {:?} is not a number of pages", clip(text)))
}

/// A size in bytes: digits with an optional binary suffix (`K`, `KiB`, `M`, `MiB`, any case).
fn parse_size(what: &str, text: &str) -> Result<u32, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let bad = || {
        format!(
            "{what} = {:?} is not a size: write bytes, optionally with a K or M suffix \
             (such as 4096, 4K or 1M)",
            clip(text)
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{what} = {:?} is too large", clip(text)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(text: &str) -> String {
        ChunkingSpec::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            ChunkingSpec::parse("fastcdc").unwrap(),
            ChunkingSpec::FastCdc(ChunkerParams::default())
        );
        assert_eq!(
            ChunkingSpec::parse("fastcdc:16K,64k,256KiB").unwrap(),
            ChunkingSpec::FastCdc(ChunkerParams::new(16384, 65536, 262_144, 1, 0).unwrap())
        );
        assert_eq!(
            ChunkingSpec::parse(" FastCDC:1K,4K,16K,3 ").unwrap(),
            ChunkingSpec::FastCdc(ChunkerParams::new(1024, 4096, 16384, 3, 0).unwrap())
        );
        assert_eq!(
            ChunkingSpec::parse("fixed:4000").unwrap(),
            ChunkingSpec::Fixed { size: 4000 }
        );
        assert_eq!(
            ChunkingSpec::parse("fixed:1M").unwrap(),
            ChunkingSpec::Fixed { size: 1 << 20 }
        );
        assert_eq!(
            ChunkingSpec::parse("pages:1,4,16").unwrap(),
            ChunkingSpec::Pages {
                min_pages: 1,
                avg_pages: 4,
                max_pages: 16,
                page_size: PageSize::Detect
            }
        );
        assert_eq!(
            ChunkingSpec::parse("pages:2,5,9@8K").unwrap(),
            ChunkingSpec::Pages {
                min_pages: 2,
                avg_pages: 5,
                max_pages: 9,
                page_size: PageSize::Bytes(8192)
            }
        );
        assert_eq!(
            ChunkingSpec::parse("pages-fixed:4").unwrap(),
            ChunkingSpec::PagesFixed {
                pages: 4,
                page_size: PageSize::Detect
            }
        );
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (input, canonical) in [
            ("fastcdc", "fastcdc:128K,512K,2M"),
            ("fastcdc:256K,1M,4M", "fastcdc:256K,1M,4M"),
            ("fastcdc:16384,65536,262144", "fastcdc:16K,64K,256K"),
            ("fastcdc:1K,4K,16K,2", "fastcdc:1K,4K,16K,2"),
            ("fixed:4096", "fixed:4K"),
            ("fixed:1000", "fixed:1000"),
            ("pages:1,4,16", "pages:1,4,16"),
            ("pages:1,4,16@65536", "pages:1,4,16@64K"),
            ("pages-fixed:4@512", "pages-fixed:4@512"),
        ] {
            let spec = ChunkingSpec::parse(input).unwrap();
            assert_eq!(spec.to_string(), canonical);
            assert_eq!(ChunkingSpec::parse(canonical).unwrap(), spec);
        }
    }

    #[test]
    fn errors_say_what_is_wrong_and_show_examples() {
        let m = err("fastcdc:5000,16K,64K");
        assert!(m.contains("\"fastcdc:5000,16K,64K\""), "{m}");
        assert!(m.contains("min_size") && m.contains("power of two"), "{m}");
        assert!(m.contains("fastcdc:256K,1M,4M"), "{m}");
        let m = err("fastcdc:1M,256K,4M");
        assert!(m.contains("min_size < avg_size < max_size"), "{m}");
        let m = err("fastcdc:1K,4K");
        assert!(
            m.contains("MIN,AVG,MAX") && m.contains("got 2 values"),
            "{m}"
        );
        let m = err("fastcdc:1K,4X,16K");
        assert!(
            m.contains("AVG") && m.contains("\"4X\"") && m.contains("not a size"),
            "{m}"
        );
        let m = err("fastcdc:1K,4K,16K,7");
        assert!(m.contains("normalization") && m.contains("0..=3"), "{m}");
        let m = err("rabin:1,2,3");
        assert!(m.contains("unknown chunker kind `rabin`"), "{m}");
        assert!(err("fixed").contains("fixed:4K"));
        let m = err("fixed:10");
        assert!(
            m.contains("`size` = 10") && m.contains("64..=67108864"),
            "{m}"
        );
        let m = err("fixed:99999999999");
        assert!(m.contains("too large"), "{m}");
        let m = err("pages:4,2,16");
        assert!(m.contains("min_pages <= avg_pages <= max_pages"), "{m}");
        let m = err("pages:1,4");
        assert!(m.contains("MIN,AVG,MAX counts of pages"), "{m}");
        let m = err("pages:1,4,16@3000");
        assert!(m.contains("page_size") && m.contains("power of two"), "{m}");
        let m = err("pages-fixed:0");
        assert!(m.contains("`pages` = 0"), "{m}");
        let m = err("");
        assert!(m.contains("empty"), "{m}");
    }

    #[test]
    fn cutters_use_the_detected_page_size() {
        let mut sqlite = b"SQLite format 3\0".to_vec();
        sqlite.extend_from_slice(&[0x20, 0x00]);
        let spec = ChunkingSpec::parse("pages-fixed:2").unwrap();
        assert_eq!(spec.page_size_for(&sqlite), Some(8192));
        assert_eq!(spec.page_size_for(b"plain text"), Some(DEFAULT_PAGE_SIZE));
        match spec.cutter(&sqlite).unwrap() {
            Cutter::Fixed(c) => assert_eq!(c.size(), 16384),
            other => panic!("{other:?}"),
        }
        let spec = ChunkingSpec::parse("pages:1,2,4@1K").unwrap();
        match spec.cutter(&sqlite).unwrap() {
            Cutter::Pages(c) => assert_eq!(c.params().page_size, 1024),
            other => panic!("{other:?}"),
        }
        let spec = ChunkingSpec::parse("fixed:4K").unwrap();
        assert_eq!(spec.page_size_for(&sqlite), None);
        assert_eq!(spec.fastcdc_params(), None);
        assert_eq!(
            ChunkingSpec::default().fastcdc_params(),
            Some(ChunkerParams::default())
        );
    }
}
