//! The corpus shared by the respaldo benchmarks.
//!
//! The benchmarks measure the write path (chunking, hashing, compression and sealing, pack
//! writing) over real data of three kinds, each about a third of the corpus:
//!
//! - [`Class::Source`]: Rust source files (`.rs`), from the toolchain's `rust-src` component
//!   when it is installed, else (and then) from the sources cargo unpacked under
//!   `$CARGO_HOME/registry/src`;
//! - [`Class::Binary`]: compiled libraries (`.so`, `.rlib`) under `$(rustc --print sysroot)/lib`;
//! - [`Class::Compressed`]: already-compressed files: the gzip `.crate` archives under
//!   `$CARGO_HOME/registry/cache`, then the `.woff2` and `.png` files of the toolchain's
//!   documentation.
//!
//! Any machine with a Rust toolchain has most of these. Files are taken in sorted path order,
//! each capped at [`FILE_CAP`] bytes, identical files only once (so that whole-file duplicates
//! do not flatter deduplicating paths), until the class reaches its share; the last file is
//! cut to fit. A class that runs short is topped up with deterministic generated data of a
//! similar nature, and a line on stderr says so. A fourth set, [`Corpus::mixed`], interleaves
//! the three classes file by file in proportion, as a backup of a mixed tree would see them.
//!
//! The size is [`DEFAULT_MIB`] MiB unless the environment variable [`MIB_ENV`] names another
//! whole number of MiB. Nothing is cached on disk: [`corpus`] builds the corpus once per
//! process, in memory, and prints a one-line summary of its composition to stderr.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Corpus size in MiB when [`MIB_ENV`] is not set.
pub const DEFAULT_MIB: usize = 64;

/// Environment variable that sets the corpus size, in MiB.
pub const MIB_ENV: &str = "RESPALDO_BENCH_MIB";

/// Most bytes taken from any one file (its first bytes).
pub const FILE_CAP: usize = 4 * 1024 * 1024;

const MIB: usize = 1024 * 1024;

/// Size of the segments generated data is cut into when it is interleaved into the mixed set.
const GENERATED_SEGMENT: usize = MIB;

/// A kind of data in the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Rust source files: text that compresses well.
    Source,
    /// Compiled libraries: machine code and symbol tables, moderately compressible.
    Binary,
    /// Already-compressed files, which compression cannot shrink.
    Compressed,
}

impl Class {
    /// Every class, in the order the corpus holds them.
    pub const ALL: [Class; 3] = [Class::Source, Class::Binary, Class::Compressed];

    /// Short lowercase name, used in benchmark ids.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Class::Source => "source",
            Class::Binary => "binary",
            Class::Compressed => "compressed",
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Source => 0,
            Class::Binary => 1,
            Class::Compressed => 2,
        }
    }

    /// Where files of this class are looked for, in order: a folder and the extensions taken
    /// from it.
    fn sources(self, places: &Places) -> Vec<(PathBuf, &'static [&'static str])> {
        let mut sources = Vec::new();
        match self {
            Class::Source => {
                if let Some(sysroot) = &places.sysroot {
                    sources.push((sysroot.join("lib/rustlib/src"), &["rs"][..]));
                }
                if let Some(cargo) = &places.cargo_home {
                    sources.push((cargo.join("registry/src"), &["rs"][..]));
                }
            }
            Class::Binary => {
                if let Some(sysroot) = &places.sysroot {
                    sources.push((sysroot.join("lib"), &["so", "rlib"][..]));
                }
            }
            Class::Compressed => {
                if let Some(cargo) = &places.cargo_home {
                    sources.push((cargo.join("registry/cache"), &["crate"][..]));
                }
                if let Some(sysroot) = &places.sysroot {
                    sources.push((sysroot.join("share/doc"), &["woff2", "png"][..]));
                }
            }
        }
        sources
    }

    /// Human description of the files taken, for the summary line.
    fn kinds(self) -> &'static str {
        match self {
            Class::Source => ".rs",
            Class::Binary => ".so/.rlib",
            Class::Compressed => ".crate/.woff2/.png",
        }
    }
}

/// How one class of the corpus was assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassReport {
    /// The class.
    pub class: Class,
    /// Number of files read.
    pub files: usize,
    /// Bytes taken from real files.
    pub real_bytes: usize,
    /// Bytes generated because the real files ran short (0 normally).
    pub generated_bytes: usize,
}

/// The benchmark corpus: three classes of real data and their mix, all in memory.
#[derive(Debug)]
pub struct Corpus {
    classes: [Vec<u8>; 3],
    mixed: Vec<u8>,
    reports: [ClassReport; 3],
}

/// The data of one class while it is assembled: its bytes and the length of each piece (a file
/// or a generated segment), in order.
struct Assembled {
    data: Vec<u8>,
    pieces: Vec<usize>,
    report: ClassReport,
}

/// Folders the corpus is read from, found once.
struct Places {
    sysroot: Option<PathBuf>,
    cargo_home: Option<PathBuf>,
}

impl Places {
    fn find() -> Self {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| p.is_dir());
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
            .filter(|p| p.is_dir());
        Self {
            sysroot,
            cargo_home,
        }
    }
}

impl Corpus {
    /// Builds a corpus of `total_bytes` bytes (split evenly between the classes) from the files
    /// of this machine, generating what is missing. Prints a line to stderr for each class
    /// that had to be topped up with generated data.
    #[must_use]
    pub fn load(total_bytes: usize) -> Self {
        let places = Places::find();
        let share = total_bytes / 3;
        let targets = [share, share, total_bytes - 2 * share];
        let assembled = Class::ALL.map(|class| assemble(class, targets[class.index()], &places));
        let mixed = interleave(&assembled);
        let [source, binary, compressed] = assembled;
        Self {
            classes: [source.data, binary.data, compressed.data],
            mixed,
            reports: [source.report, binary.report, compressed.report],
        }
    }

    /// The data of one class.
    #[must_use]
    pub fn class(&self, class: Class) -> &[u8] {
        &self.classes[class.index()]
    }

    /// The three classes interleaved file by file, in proportion to their sizes.
    #[must_use]
    pub fn mixed(&self) -> &[u8] {
        &self.mixed
    }

    /// Every set a benchmark may run over, with its name: the three classes, then `mixed`.
    #[must_use]
    pub fn sets(&self) -> [(&'static str, &[u8]); 4] {
        [
            (Class::Source.name(), self.class(Class::Source)),
            (Class::Binary.name(), self.class(Class::Binary)),
            (Class::Compressed.name(), self.class(Class::Compressed)),
            ("mixed", self.mixed()),
        ]
    }

    /// How each class was assembled.
    #[must_use]
    pub fn reports(&self) -> &[ClassReport; 3] {
        &self.reports
    }

    /// One line describing the corpus: sizes per class, files read and bytes generated.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut line = format!("corpus: {} total;", mib(self.mixed.len()));
        for report in &self.reports {
            let _ = write!(
                line,
                " {} {} ({} {} files",
                report.class.name(),
                mib(report.real_bytes + report.generated_bytes),
                report.files,
                report.class.kinds(),
            );
            if report.generated_bytes > 0 {
                let _ = write!(line, " + {} generated", mib(report.generated_bytes));
            }
            line.push_str(");");
        }
        let _ = write!(line, " mixed {}", mib(self.mixed.len()));
        line
    }
}

/// The corpus of this process, built on first use with the size from [`size_from_env`]; the
/// first call prints [`Corpus::summary`] to stderr.
pub fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let corpus = Corpus::load(size_from_env());
        eprintln!("{}", corpus.summary());
        corpus
    })
}

/// The corpus size in bytes: [`MIB_ENV`] MiB if it holds a positive whole number, else
/// [`DEFAULT_MIB`] MiB (with a line on stderr when the variable is set but unusable).
#[must_use]
pub fn size_from_env() -> usize {
    let Some(value) = std::env::var_os(MIB_ENV) else {
        return DEFAULT_MIB * MIB;
    };
    match value.to_str().and_then(|s| s.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 && n.checked_mul(MIB).is_some() => n * MIB,
        _ => {
            eprintln!(
                "{MIB_ENV}={} is not a positive number of MiB; using {DEFAULT_MIB}",
                value.to_string_lossy()
            );
            DEFAULT_MIB * MIB
        }
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// Reads files of `class` until `target` bytes, then tops up with generated data.
fn assemble(class: Class, target: usize, places: &Places) -> Assembled {
    let mut out = Assembled {
        data: Vec::with_capacity(target),
        pieces: Vec::new(),
        report: ClassReport {
            class,
            files: 0,
            real_bytes: 0,
            generated_bytes: 0,
        },
    };
    let mut seen = HashSet::new();
    'sources: for (root, extensions) in class.sources(places) {
        for path in files_under(&root, extensions) {
            let room = target - out.data.len();
            if room == 0 {
                break 'sources;
            }
            let start = out.data.len();
            let limit = room.min(FILE_CAP) as u64;
            let read = File::open(&path).and_then(|f| f.take(limit).read_to_end(&mut out.data));
            let taken = out.data.len() - start;
            // An unreadable file, an empty one, or a copy of one already taken adds nothing.
            if read.is_err() || taken == 0 || !seen.insert(blake3::hash(&out.data[start..])) {
                out.data.truncate(start);
                continue;
            }
            out.pieces.push(taken);
            out.report.files += 1;
            out.report.real_bytes += taken;
        }
    }
    let missing = target - out.data.len();
    if missing > 0 {
        eprintln!(
            "corpus: found only {} of {} files ({}); generating {} of {}-like data",
            mib(out.report.real_bytes),
            class.name(),
            class.kinds(),
            mib(missing),
            class.name(),
        );
        let start = out.data.len();
        generate(class, missing, &mut out.data);
        out.report.generated_bytes = out.data.len() - start;
        let mut left = missing;
        while left > 0 {
            let piece = left.min(GENERATED_SEGMENT);
            out.pieces.push(piece);
            left -= piece;
        }
    }
    out
}

/// Regular files (symbolic links are not followed) under `root` whose extension is one of
/// `extensions`, sorted by path. Unreadable folders are skipped.
fn files_under(root: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Interleaves the pieces of the classes: each step takes the next piece of the class that is
/// least far through its data, so that every part of the mix holds all three in proportion.
fn interleave(classes: &[Assembled; 3]) -> Vec<u8> {
    let total = classes.iter().map(|c| c.data.len()).sum();
    let mut mixed = Vec::with_capacity(total);
    let mut next_piece = [0usize; 3];
    let mut offset = [0usize; 3];
    loop {
        let pick = (0..3)
            .filter(|&i| next_piece[i] < classes[i].pieces.len())
            .min_by(|&a, &b| {
                // offset[a] / len[a] < offset[b] / len[b], without division.
                let left = offset[a] as u128 * classes[b].data.len() as u128;
                let right = offset[b] as u128 * classes[a].data.len() as u128;
                left.cmp(&right)
            });
        let Some(i) = pick else {
            break;
        };
        let len = classes[i].pieces[next_piece[i]];
        mixed.extend_from_slice(&classes[i].data[offset[i]..offset[i] + len]);
        offset[i] += len;
        next_piece[i] += 1;
    }
    mixed
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Appends `len` bytes of deterministic data resembling `class`: token soup for source code,
/// records of repeated opcodes, small integers and noise for binaries, uniform noise for
/// compressed data. None of it repeats at chunk scale, so it does not deduplicate.
fn generate(class: Class, len: usize, out: &mut Vec<u8>) {
    let end = out.len() + len;
    match class {
        Class::Source => {
            const WORDS: &[&str] = &[
                "fn", "let", "mut", "impl", "pub", "struct", "enum", "match", "self", "Self",
                "return", "if", "else", "for", "in", "while", "use", "crate", "Result", "Option",
                "Some", "None", "Ok", "Err", "Vec", "String", "u8", "u32", "u64", "usize", "&",
                "->", "=>", "::", "(", ")", "{", "}", "[", "]", ";", ",", ".", "=", "+", "<", ">",
                "data", "len", "index", "buffer", "chunk", "value", "error", "config", "path",
            ];
            let mut rng = SplitMix(0x5eed_0001);
            while out.len() < end {
                let indent = rng.below(4) * 4;
                out.extend(std::iter::repeat_n(b' ', indent));
                for _ in 0..3 + rng.below(10) {
                    out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                    if rng.below(3) == 0 {
                        // Identifiers with numbers keep the text from repeating exactly.
                        let _ = write!(VecWriter(out), "_{}", rng.below(10_000));
                    }
                    out.push(b' ');
                }
                out.push(b'\n');
            }
        }
        Class::Binary => {
            let mut rng = SplitMix(0x5eed_0002);
            let opcodes: Vec<[u8; 8]> = (0..64).map(|_| rng.next().to_le_bytes()).collect();
            while out.len() < end {
                match rng.below(4) {
                    0 => out.extend_from_slice(&[0u8; 8]),
                    1 => out.extend_from_slice(&(rng.below(4096) as u64).to_le_bytes()),
                    2 => out.extend_from_slice(&rng.next().to_le_bytes()),
                    _ => out.extend_from_slice(&opcodes[rng.below(opcodes.len())]),
                }
            }
        }
        Class::Compressed => {
            let mut rng = SplitMix(0x5eed_0003);
            while out.len() < end {
                out.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
    }
    out.truncate(end);
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(data: &[u8], pieces: &[usize]) -> Assembled {
        Assembled {
            data: data.to_vec(),
            pieces: pieces.to_vec(),
            report: ClassReport {
                class: Class::Source,
                files: pieces.len(),
                real_bytes: data.len(),
                generated_bytes: 0,
            },
        }
    }

    #[test]
    fn interleave_keeps_every_byte_in_proportion() {
        let classes = [
            piece(b"aabbcc", &[2, 2, 2]),
            piece(b"XXXXXX", &[6]),
            piece(b"123", &[1, 1, 1]),
        ];
        assert_eq!(interleave(&classes), b"aaXXXXXX1bb2cc3");
    }

    #[test]
    fn generated_data_is_deterministic_and_sized() {
        for class in Class::ALL {
            let mut a = Vec::new();
            let mut b = vec![7u8];
            generate(class, 100_003, &mut a);
            generate(class, 100_003, &mut b);
            assert_eq!(a.len(), 100_003);
            assert_eq!(&b[1..], &a[..]);
        }
    }

    #[test]
    fn load_is_exact_and_deterministic() {
        let a = Corpus::load(3 * MIB + 5);
        let b = Corpus::load(3 * MIB + 5);
        assert_eq!(a.mixed().len(), 3 * MIB + 5);
        let sum: usize = Class::ALL.iter().map(|&c| a.class(c).len()).sum();
        assert_eq!(sum, a.mixed().len());
        assert_eq!(a.mixed(), b.mixed());
        for class in Class::ALL {
            assert_eq!(a.class(class), b.class(class));
        }
        assert!(a.summary().starts_with("corpus: 3.0 MiB total;"));
    }
}
