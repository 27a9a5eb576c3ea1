//! Blob encoding: compress, then seal; and the reverse, always checked against the id.
//!
//! A blob is the unit of storage: one chunk of file content, or one tree or metadata record.
//! Its stored form is `seal(zstd(content))`, or `seal(content)` flagged [`Encoding::Raw`] when
//! zstd does not make it smaller (already-compressed data costs no decompression on restore).
//! The seal's associated data is `id || format major (u16 LE) || kind (u8)`, so a blob cannot
//! be passed off as another blob or another kind. The major is the repository's (from its
//! config), so that a later reader of an older repository rebuilds the same associated data.

use std::cell::RefCell;

use chunker::{ChunkId, IdHasher};

use crate::error::{Error, Result};
use crate::seal::Sealer;

/// What a blob holds. Data and tree blobs go to separate packs, so that reading all trees
/// (for `check`, `ls`, prune's mark phase) touches only small packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BlobKind {
    /// File content.
    Data,
    /// Trees, manifests and other metadata.
    Tree,
}

impl BlobKind {
    /// The byte stored in pack trailers and index files.
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    /// The kind stored as `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// How a blob's content was transformed before sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// Stored as is.
    Raw,
    /// Compressed with zstd (one frame).
    Zstd,
    /// One member of a group (format 2): several tree blobs compressed and sealed together,
    /// each listed with its own id, its place in the group's content and its length.
    Grouped,
}

impl Encoding {
    /// The byte stored in pack trailers and index files.
    pub fn to_byte(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::Zstd => 1,
            Encoding::Grouped => 2,
        }
    }

    /// The encoding stored as `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::Zstd),
            2 => Some(Encoding::Grouped),
            _ => None,
        }
    }
}

/// Associated data of a blob's seal.
fn blob_ad(id: &ChunkId, kind: BlobKind, format_major: u16) -> [u8; 35] {
    let mut ad = [0u8; 35];
    ad[..32].copy_from_slice(id.as_bytes());
    ad[32..34].copy_from_slice(&format_major.to_le_bytes());
    ad[34] = kind.to_byte();
    ad
}

thread_local! {
    // One compressor and one output buffer per thread: a zstd context costs ~1 MiB to set up,
    // far more than compressing a small chunk.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static COMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn compression_error(e: std::io::Error) -> Error {
    Error::Crypto {
        context: "zstd compression".to_string(),
        reason: e.to_string(),
    }
}

/// Appends the stored form of blob `id` to `out` and returns how it was encoded.
///
/// `zstd_level` 0 stores every blob raw.
pub(crate) fn encode_into(
    sealer: &Sealer,
    format_major: u16,
    zstd_level: i32,
    id: &ChunkId,
    kind: BlobKind,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<Encoding> {
    let ad = blob_ad(id, kind, format_major);
    if zstd_level == 0 {
        sealer.seal_into(out, data, &ad)?;
        return Ok(Encoding::Raw);
    }
    COMPRESSED.with_borrow_mut(|buffer| {
        compress_into(zstd_level, data, buffer)?;
        if buffer.len() < data.len() {
            sealer.seal_into(out, buffer, &ad)?;
            Ok(Encoding::Zstd)
        } else {
            sealer.seal_into(out, data, &ad)?;
            Ok(Encoding::Raw)
        }
    })
}

/// Where a blob is and how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack that holds it.
    pub pack: ChunkId,
    /// Offset of the sealed blob (of its group, when grouped) in the pack.
    pub offset: u64,
    /// Length of the sealed blob (of its group, when grouped).
    pub length: u32,
    /// Length of the blob's content.
    pub raw_length: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Raw, compressed, or a member of a group.
    pub encoding: Encoding,
    /// Where the blob's content starts in its group's content; 0 unless grouped.
    pub member_offset: u32,
}

/// Opens, decompresses and verifies a sealed blob read from its pack.
///
/// Every failure is [`Error::Corrupt`] naming the pack and offset; the returned content is
/// guaranteed to hash to `id`.
pub(crate) fn decode(
    sealer: &Sealer,
    format_major: u16,
    hasher: &IdHasher,
    id: &ChunkId,
    location: &BlobLocation,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    if location.encoding == Encoding::Grouped {
        let group = crate::group::open(sealer, format_major, location, sealed)?;
        return crate::group::member(hasher, id, location, &group);
    }
    let file = format!("packs/{}", location.pack);
    let plain = sealer.open(
        sealed,
        &blob_ad(id, location.kind, format_major),
        &file,
        location.offset,
    )?;
    let content = match location.encoding {
        Encoding::Raw | Encoding::Grouped => plain,
        Encoding::Zstd => decompress(&plain, location.raw_length as usize)
            .map_err(|e| Error::corrupt(&file, location.offset, format!("blob {id}: zstd: {e}")))?,
    };
    verify(hasher, id, location, content)
}

/// Decompresses one zstd frame of at most `capacity` bytes.
pub(crate) fn decompress(frame: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    // One decompression context per thread: creating one per blob (what
    // `zstd::bulk::decompress` does) was a fifth of a restore's CPU time.
    DECOMPRESSOR.with_borrow_mut(|slot| {
        let decompressor = match slot {
            Some(decompressor) => decompressor,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(frame, capacity)
    })
}

/// The content size of `frame`, which must be exactly one zstd frame that states its content
/// size, of at most `limit` bytes; otherwise why not. Readers size their output from it, so
/// that a damaged header cannot make them allocate more than the limit.
pub(crate) fn single_frame_size(frame: &[u8], limit: u64) -> std::result::Result<usize, String> {
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(len) if len == frame.len() => {}
        Ok(len) => return Err(format!("{} bytes follow the zstd frame", frame.len() - len)),
        Err(_) => return Err("not a zstd frame".to_string()),
    }
    match zstd::zstd_safe::get_frame_content_size(frame) {
        // At most `limit`, which callers keep far below usize::MAX.
        Ok(Some(size)) if size <= limit => Ok(size as usize),
        Ok(Some(size)) => Err(format!("{size} bytes, over the limit of {limit}")),
        Ok(None) | Err(_) => Err("the zstd frame does not state its size".to_string()),
    }
}

/// Compresses `data` into one zstd frame at `zstd_level` (not 0), into `out` (cleared first).
pub(crate) fn compress_into(zstd_level: i32, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    COMPRESSOR.with_borrow_mut(|slot| {
        if !matches!(slot, Some((level, _)) if *level == zstd_level) {
            *slot = Some((
                zstd_level,
                zstd::bulk::Compressor::new(zstd_level).map_err(compression_error)?,
            ));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            unreachable!("the compressor was set just above");
        };
        compressor
            .compress_to_buffer(data, out)
            .map_err(compression_error)?;
        Ok(())
    })
}

/// Returns `content` if it is the blob `location` describes: its length and its id.
pub(crate) fn verify(
    hasher: &IdHasher,
    id: &ChunkId,
    location: &BlobLocation,
    content: Vec<u8>,
) -> Result<Vec<u8>> {
    let file = format!("packs/{}", location.pack);
    if content.len() != location.raw_length as usize {
        return Err(Error::corrupt(
            &file,
            location.offset,
            format!(
                "blob {id} is {} bytes, the index says {}",
                content.len(),
                location.raw_length
            ),
        ));
    }
    if hasher.hash(&content) != *id {
        return Err(Error::corrupt(
            &file,
            location.offset,
            format!("blob {id}: content does not match its id"),
        ));
    }
    Ok(content)
}
