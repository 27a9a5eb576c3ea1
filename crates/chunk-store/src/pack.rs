//! Pack files: many sealed blobs in one immutable file, with a sealed trailer that lists them.
//!
//! ```text
//! header   "RSPLPACK" | version u16
//! blobs    sealed blob, sealed blob, ...
//! trailer  seal(entries)            (associated data: "RSPLPACK trailer" | version u16)
//! footer   trailer length u32 | "RSPLPEND"
//! ```
//! A pack is named by the BLAKE3 of its bytes, so it can be verified without a key. The trailer
//! makes every pack self-describing: the index can be rebuilt from packs alone.

use serde::{Deserialize, Serialize};

use chunker::ChunkId;

use crate::backend::{Backend, FileKind};
use crate::blob::{BlobKind, BlobLocation, Encoding};
use crate::codec;
use crate::error::{Error, Result};
use crate::seal::Sealer;

const PACK_MAGIC: &[u8; 8] = b"RSPLPACK";
const FOOTER_MAGIC: &[u8; 8] = b"RSPLPEND";
const PACK_VERSION: u16 = 1;
const FOOTER_LEN: u64 = 12;

/// One blob in a pack, as listed in the trailer and in index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's id.
    pub id: ChunkId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Raw or compressed.
    pub encoding: Encoding,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the blob's content.
    pub raw_length: u32,
}

impl PackEntry {
    /// This blob's sealed bytes within `pack`, the whole content of its pack; `None` when the
    /// entry points outside it (a truncated or damaged pack).
    pub fn sealed_in<'a>(&self, pack: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        pack.get(start..start.checked_add(self.length as usize)?)
    }

    /// Where this entry's blob is, given the pack that holds it.
    pub fn location(&self, pack: ChunkId) -> BlobLocation {
        BlobLocation {
            pack,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            kind: self.kind,
            encoding: self.encoding,
        }
    }
}

/// The stored form of a [`PackEntry`]: 50 bytes, fixed width.
#[derive(Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    id: [u8; 32],
    kind: u8,
    encoding: u8,
    offset: u64,
    length: u32,
    raw_length: u32,
}

impl From<&PackEntry> for EntryRecord {
    fn from(e: &PackEntry) -> Self {
        Self {
            id: *e.id.as_bytes(),
            kind: e.kind.to_byte(),
            encoding: e.encoding.to_byte(),
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        }
    }
}

impl EntryRecord {
    /// Converts back, checking the enumerations.
    pub(crate) fn to_entry(&self, file: &str, offset: u64) -> Result<PackEntry> {
        let kind = BlobKind::from_byte(self.kind).ok_or_else(|| {
            Error::corrupt(file, offset, format!("unknown blob kind {}", self.kind))
        })?;
        let encoding = Encoding::from_byte(self.encoding).ok_or_else(|| {
            Error::corrupt(
                file,
                offset,
                format!("unknown blob encoding {}", self.encoding),
            )
        })?;
        Ok(PackEntry {
            id: ChunkId::from_bytes(self.id),
            kind,
            encoding,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
        })
    }
}

/// Associated data of the trailer of a pack of `version`.
fn trailer_ad(version: u16) -> [u8; 18] {
    let mut ad = [0u8; 18];
    ad[..16].copy_from_slice(b"RSPLPACK trailer");
    ad[16..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// A pack being filled in memory.
#[derive(Debug)]
pub(crate) struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack: its name, bytes and entries.
#[derive(Debug)]
pub(crate) struct FinishedPack {
    pub(crate) id: ChunkId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with room for `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity);
        codec::write_header(&mut bytes, PACK_MAGIC, PACK_VERSION);
        Self {
            bytes,
            entries: Vec::new(),
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no blob was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries added so far.
    pub(crate) fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// The sealed bytes of an entry added to this pack.
    pub(crate) fn sealed_bytes(&self, entry: &PackEntry) -> &[u8] {
        let start = entry.offset as usize;
        &self.bytes[start..start + entry.length as usize]
    }

    /// Appends a sealed blob.
    pub(crate) fn add(
        &mut self,
        id: ChunkId,
        kind: BlobKind,
        encoding: Encoding,
        raw_length: u32,
        sealed: &[u8],
    ) -> Result<()> {
        let length = u32::try_from(sealed.len()).map_err(|_| Error::BlobTooLarge {
            size: sealed.len(),
            max: u32::MAX as usize,
        })?;
        self.entries.push(PackEntry {
            id,
            kind,
            encoding,
            offset: self.bytes.len() as u64,
            length,
            raw_length,
        });
        // Exact: a pack's buffer is megabytes, and amortized growth would double it.
        self.bytes.reserve_exact(sealed.len());
        self.bytes.extend_from_slice(sealed);
        Ok(())
    }

    /// Seals the trailer and returns the finished pack.
    pub(crate) fn finish(mut self, sealer: &Sealer) -> Result<FinishedPack> {
        let records: Vec<EntryRecord> = self.entries.iter().map(EntryRecord::from).collect();
        let trailer = codec::encode(&records, "pack trailer")?;
        let start = self.bytes.len();
        self.bytes
            .reserve_exact(trailer.len() + sealer.overhead() + 4 + FOOTER_MAGIC.len());
        sealer.seal_into(&mut self.bytes, &trailer, &trailer_ad(PACK_VERSION))?;
        let trailer_len = (self.bytes.len() - start) as u32;
        self.bytes.extend_from_slice(&trailer_len.to_le_bytes());
        self.bytes.extend_from_slice(FOOTER_MAGIC);
        Ok(FinishedPack {
            id: ChunkId::from_bytes(*blake3::hash(&self.bytes).as_bytes()),
            bytes: self.bytes,
            entries: self.entries,
        })
    }
}

/// Reads and checks the trailer of pack `name`: the list of its blobs.
///
/// Damage (a bad footer, a trailer that does not open, entries that point outside the blob
/// area) is [`Error::Corrupt`] naming the pack and offset.
pub(crate) fn read_pack_trailer(
    backend: &dyn Backend,
    sealer: &Sealer,
    name: &str,
) -> Result<Vec<PackEntry>> {
    let size = backend.size(FileKind::Pack, name)?;
    parse_trailer(sealer, name, size, |offset, len| {
        backend.read_range(FileKind::Pack, name, offset, len)
    })
}

/// Reads and checks the trailer of pack `name` whose whole content is `bytes` (as
/// [`read_pack_trailer`], without reading the backend again).
pub(crate) fn trailer_from_bytes(
    sealer: &Sealer,
    name: &str,
    bytes: &[u8],
) -> Result<Vec<PackEntry>> {
    parse_trailer(sealer, name, bytes.len() as u64, |offset, len| {
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|range| range.end <= bytes.len());
        match range {
            Some(range) => Ok(bytes[range].to_vec()),
            None => Err(Error::ShortRead {
                kind: FileKind::Pack.label(),
                name: name.to_string(),
                offset,
                len,
                size: bytes.len() as u64,
            }),
        }
    })
}

/// The trailer checks of [`read_pack_trailer`] over any way of reading ranges of the pack.
fn parse_trailer(
    sealer: &Sealer,
    name: &str,
    size: u64,
    read_range: impl Fn(u64, u64) -> Result<Vec<u8>>,
) -> Result<Vec<PackEntry>> {
    let file = FileKind::Pack.display_path(name);
    let min_size = codec::HEADER_LEN as u64 + FOOTER_LEN;
    if size < min_size {
        return Err(Error::corrupt(
            &file,
            size,
            format!("pack is {size} bytes, too short to hold a footer"),
        ));
    }
    let header = read_range(0, codec::HEADER_LEN as u64)?;
    let version = codec::read_header(&header, PACK_MAGIC, PACK_VERSION, &file)?;
    let footer_at = size - FOOTER_LEN;
    let footer = read_range(footer_at, FOOTER_LEN)?;
    if &footer[4..] != FOOTER_MAGIC {
        return Err(Error::corrupt(
            &file,
            footer_at + 4,
            "pack footer magic is wrong: the pack is truncated or damaged",
        ));
    }
    let trailer_len = u64::from(u32::from_le_bytes([
        footer[0], footer[1], footer[2], footer[3],
    ]));
    let blobs_end = footer_at
        .checked_sub(trailer_len)
        .filter(|end| *end >= codec::HEADER_LEN as u64)
        .ok_or_else(|| {
            Error::corrupt(
                &file,
                footer_at,
                format!("trailer length {trailer_len} does not fit in a pack of {size} bytes"),
            )
        })?;
    let sealed = read_range(blobs_end, trailer_len)?;
    let trailer = sealer.open(&sealed, &trailer_ad(version), &file, blobs_end)?;
    let records: Vec<EntryRecord> = codec::decode(&trailer, &file, blobs_end)?;
    let mut entries = Vec::with_capacity(records.len());
    for record in &records {
        let entry = record.to_entry(&file, blobs_end)?;
        let end = entry.offset.checked_add(u64::from(entry.length));
        if entry.offset < codec::HEADER_LEN as u64 || end.is_none_or(|end| end > blobs_end) {
            return Err(Error::corrupt(
                &file,
                blobs_end,
                format!(
                    "trailer entry for blob {} points outside the pack",
                    entry.id
                ),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_that_outgrows_its_capacity_is_not_doubled() {
        // Capacity for 100 bytes; then a blob of 1 MiB and a trailer: amortized growth would
        // leave twice the pack's length allocated.
        let mut builder = PackBuilder::new(100);
        for (n, size) in [60usize, 1 << 20, 30].into_iter().enumerate() {
            let id = ChunkId::from_bytes([n as u8; 32]);
            builder
                .add(
                    id,
                    BlobKind::Data,
                    Encoding::Raw,
                    size as u32,
                    &vec![7u8; size],
                )
                .expect("a blob is added");
        }
        let pack = builder
            .finish(&Sealer::Plain)
            .expect("the pack is finished");
        assert_eq!(pack.entries.len(), 3);
        assert!(
            pack.bytes.capacity() <= pack.bytes.len() + 64,
            "capacity {} for {} bytes",
            pack.bytes.capacity(),
            pack.bytes.len()
        );
    }
}
