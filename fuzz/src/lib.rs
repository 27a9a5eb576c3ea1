//! Shared helpers of respaldo's fuzz targets (`fuzz_targets/*.rs`).
//!
//! A fuzzer cannot forge a BLAKE3 checksum or a Poly1305 tag, so feeding only raw bytes to the
//! decoders would stop almost every input at the checksum. Each target therefore also builds
//! inputs itself: it frames or seals fuzzer-chosen plaintexts with the right associated data,
//! or writes fuzzer-chosen structures in the format's bincode layout (`docs/format.md`), valid
//! or deliberately not, and hands the result to the real decoders (through the hidden
//! `fuzzing` modules of `chunk-store` and `snapshot-index`).
//!
//! The associated data and magics below are copied from `docs/format.md` (sections 3.4, 7
//! and 10). Each target proves once per process that its harness still matches the code: on
//! its first input it builds the smallest valid file its own way and asserts that the decoder
//! accepts it, so a harness that drifted from the format panics (in `build.sh`'s smoke runs
//! too) instead of silently fuzzing nothing but the seal check.

use std::sync::{Arc, LazyLock};

use arbitrary::Unstructured;
use chunk_store::fuzzing::SealMode;
use chunk_store::{ChunkStore, InitOptions, KdfParams, MemoryBackend};

/// Magic of `config` (section 4).
pub const CONFIG_MAGIC: &[u8; 8] = b"RSPLCONF";
/// Magic of key files (section 5).
pub const KEY_MAGIC: &[u8; 8] = b"RSPLKEY\0";
/// Magic of pack files (section 8).
pub const PACK_MAGIC: &[u8; 8] = b"RSPLPACK";
/// Footer magic of pack files (section 8).
pub const PACK_FOOTER_MAGIC: &[u8; 8] = b"RSPLPEND";
/// Magic of index files (section 9).
pub const INDEX_MAGIC: &[u8; 8] = b"RSPLINDX";
/// Magic of tree blobs (section 10.1).
pub const TREE_MAGIC: &[u8; 8] = b"RSPLTREE";
/// Magic of snapshot manifests (section 10.2).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RSPLSNAP";
/// The chunker algorithm a config must name (section 4).
pub const CHUNKER_ALGORITHM: &str = "fastcdc-v2020/5.0.0";

/// `text || version (u16 LE)`: the shape of every associated data of the format but blobs'.
fn versioned_ad(text: &[u8], version: u16) -> Vec<u8> {
    let mut ad = text.to_vec();
    ad.extend_from_slice(&version.to_le_bytes());
    ad
}

/// Associated data of a pack trailer (section 3.4).
pub fn pack_trailer_ad(version: u16) -> Vec<u8> {
    versioned_ad(b"RSPLPACK trailer", version)
}

/// Associated data of an index file body (section 3.4).
pub fn index_body_ad(version: u16) -> Vec<u8> {
    versioned_ad(b"RSPLINDX index file", version)
}

/// Associated data (context) of a snapshot manifest (section 10.2).
pub fn snapshot_ad(version: u16) -> Vec<u8> {
    versioned_ad(b"RSPLSNAP manifest", version)
}

/// `magic || version (u16 LE)`.
pub fn header(magic: &[u8; 8], version: u16) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out
}

/// A bincode writer with the format's options: fixed-width little-endian integers, `u64`
/// lengths. Written by hand so that a target can also write what the encoders never would.
#[derive(Debug, Default, Clone)]
pub struct Bin(pub Vec<u8>);

impl Bin {
    /// `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// `u16` LE.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// `u32` LE.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// `i32` LE.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// `u64` LE.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// `i64` LE.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// Bytes with no length prefix (`[u8; N]`).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    /// `Vec<u8>` or `String`: `u64` length, then the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64).raw(bytes)
    }
    /// `Option<[u8; 32]>`.
    pub fn opt_id(&mut self, id: Option<[u8; 32]>) -> &mut Self {
        match id {
            None => self.u8(0),
            Some(id) => self.u8(1).raw(&id),
        }
    }
}

/// Helpers to draw "mostly valid" values, so that inputs get past the first checks.
pub trait Draw {
    /// A value; the type's default when the input is used up.
    fn any<T: for<'a> arbitrary::Arbitrary<'a> + Default>(&mut self) -> T;
    /// True with probability `n / d` (false when the input is used up).
    fn chance(&mut self, n: u8, d: u8) -> bool;
    /// Mostly `valid`, sometimes anything.
    fn mostly<T: for<'a> arbitrary::Arbitrary<'a> + Default>(&mut self, valid: T) -> T;
    /// A byte string of at most `max` bytes.
    fn bytes_up_to(&mut self, max: usize) -> Vec<u8>;
    /// A number in `0..n` (0 when `n` is 0 or the input is used up).
    fn below(&mut self, n: u64) -> u64;
}

impl Draw for Unstructured<'_> {
    fn any<T: for<'a> arbitrary::Arbitrary<'a> + Default>(&mut self) -> T {
        self.arbitrary().unwrap_or_default()
    }
    fn chance(&mut self, n: u8, d: u8) -> bool {
        // `ratio` says true on an empty input; an empty input must draw the valid choices.
        !self.is_empty() && self.int_in_range(1..=d).is_ok_and(|x| x <= n)
    }
    fn mostly<T: for<'a> arbitrary::Arbitrary<'a> + Default>(&mut self, valid: T) -> T {
        if self.chance(1, 8) { self.any() } else { valid }
    }
    fn bytes_up_to(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max as u64 + 1) as usize;
        self.bytes(len.min(self.len())).unwrap_or_default().to_vec()
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.int_in_range(0..=n - 1).unwrap_or(0)
    }
}

/// A header version: mostly 1 (the one this build reads), sometimes anything.
pub fn draw_version(u: &mut Unstructured<'_>) -> u16 {
    u.mostly(1u16)
}

/// A sealing mode from one input byte.
pub fn mode_of(byte: u8) -> SealMode {
    if byte & 1 == 0 {
        SealMode::Plain
    } else {
        SealMode::Encrypted
    }
}

/// A fresh folder for an `index.redb`, on tmpfs when there is one (redb syncs every commit).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("respaldo-fuzz-");
        b
    };
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder
        .tempdir()
        .expect("a temporary folder for index.redb")
}

/// Options of a new store: the cheapest Argon2 parameters, the smallest pack size.
pub fn init_options(encrypted: bool, zstd_level: i32) -> InitOptions {
    InitOptions {
        password: encrypted.then(|| "fuzz password".to_string()),
        kdf: KdfParams::insecure_fast(),
        zstd_level,
        pack_size: 1024 * 1024,
        ..InitOptions::default()
    }
}

/// One long-lived store per sealing mode, over a [`MemoryBackend`], for targets that need a
/// store only to decode (snapshot manifests). Its `index.redb` is unlinked right after it is
/// created (the open file stays usable), so that nothing is left behind when libFuzzer exits.
pub fn shared_store(encrypted: bool) -> &'static ChunkStore {
    static STORES: LazyLock<[ChunkStore; 2]> = LazyLock::new(|| {
        [false, true].map(|encrypted| {
            let dir = scratch_dir();
            ChunkStore::init(
                Arc::new(MemoryBackend::new()),
                &init_options(encrypted, 3),
                dir.path().join("index.redb"),
            )
            .expect("a store for the fuzz target")
        })
    });
    &STORES[usize::from(encrypted)]
}

/// Whether `RESPALDO_FUZZ_TRACE` is set: then [`trace`] prints what each decoder said, which
/// shows what a corpus reaches (`RESPALDO_FUZZ_TRACE=1 ./TARGET corpus/TARGET/*`).
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("RESPALDO_FUZZ_TRACE").is_some());

/// Prints the outcome of one decode when `RESPALDO_FUZZ_TRACE` is set: `ok` or the error.
pub fn trace<T, E: std::fmt::Display>(what: &str, result: &Result<T, E>) {
    if *TRACE {
        match result {
            Ok(_) => eprintln!("trace: {what}: ok"),
            Err(e) => eprintln!("trace: {what}: {e}"),
        }
    }
}
