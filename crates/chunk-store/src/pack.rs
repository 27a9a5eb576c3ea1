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

use crate::backend::{Backend, FileKind, StagedFile};
use crate::blob::{BlobKind, BlobLocation, Encoding};
use crate::codec;
use crate::error::{Error, Result};
use crate::seal::Sealer;

const PACK_MAGIC: &[u8; 8] = b"RSPLPACK";
const FOOTER_MAGIC: &[u8; 8] = b"RSPLPEND";
/// The newest pack version this build reads: 1 (format 1), 2 (format 2: compressed trailer,
/// groups).
const PACK_VERSION: u16 = 2;
const FOOTER_LEN: u64 = 12;

/// The pack and index file version written in a repository of format `format_major`.
pub(crate) fn listing_version(format_major: u16) -> u16 {
    if format_major >= 2 { 2 } else { 1 }
}

/// One blob in a pack, as listed in the trailer and in index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's id.
    pub id: ChunkId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Raw or compressed.
    pub encoding: Encoding,
    /// Offset of the sealed blob (of its group, when grouped) from the start of the pack.
    pub offset: u64,
    /// Length of the sealed blob (of its group, when grouped).
    pub length: u32,
    /// Length of the blob's content.
    pub raw_length: u32,
    /// Where the blob's content starts in its group's content; 0 unless grouped.
    pub member_offset: u32,
}

impl PackEntry {
    /// This blob's sealed bytes (its group's, when grouped) within `pack`, the whole content
    /// of its pack; `None` when the entry points outside it (a truncated or damaged pack).
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
            member_offset: self.member_offset,
        }
    }

    /// Checks what a pack of `version` may list: known only in version 2, groups hold trees,
    /// and a member's range stays within the largest group.
    fn check(self, version: u16, file: &str, offset: u64) -> Result<Self> {
        let damage = |reason: String| Err(Error::corrupt(file, offset, reason));
        match self.encoding {
            Encoding::Grouped if version < 2 => damage(format!(
                "blob {}: groups need version 2, the listing is version {version}",
                self.id
            )),
            Encoding::Grouped if self.kind != BlobKind::Tree => {
                damage(format!("blob {}: only tree blobs are grouped", self.id))
            }
            Encoding::Grouped
                if u64::from(self.member_offset) + u64::from(self.raw_length)
                    > crate::group::MAX_GROUP_SIZE as u64 =>
            {
                damage(format!(
                    "blob {}: its range ends past the largest group",
                    self.id
                ))
            }
            Encoding::Raw | Encoding::Zstd if self.member_offset != 0 => damage(format!(
                "blob {}: a place in a group, but not grouped",
                self.id
            )),
            _ => Ok(self),
        }
    }
}

/// The stored form of a [`PackEntry`] in version 1: 50 bytes, fixed width.
#[derive(Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    id: [u8; 32],
    kind: u8,
    encoding: u8,
    offset: u64,
    length: u32,
    raw_length: u32,
}

/// The stored form of a [`PackEntry`] in version 2: 54 bytes, fixed width.
#[derive(Serialize, Deserialize)]
pub(crate) struct EntryRecord2 {
    id: [u8; 32],
    kind: u8,
    encoding: u8,
    offset: u64,
    length: u32,
    raw_length: u32,
    member_offset: u32,
}

impl From<&PackEntry> for EntryRecord2 {
    fn from(e: &PackEntry) -> Self {
        Self {
            id: *e.id.as_bytes(),
            kind: e.kind.to_byte(),
            encoding: e.encoding.to_byte(),
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            member_offset: e.member_offset,
        }
    }
}

impl EntryRecord2 {
    /// Converts back, checking what a version 2 listing may hold.
    pub(crate) fn to_entry(&self, file: &str, offset: u64) -> Result<PackEntry> {
        let v1 = EntryRecord {
            id: self.id,
            kind: self.kind,
            encoding: self.encoding,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
        };
        let entry = PackEntry {
            member_offset: self.member_offset,
            ..v1.parse(file, offset)?
        };
        entry.check(2, file, offset)
    }
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
    /// Converts back, checking what a version 1 listing may hold.
    pub(crate) fn to_entry(&self, file: &str, offset: u64) -> Result<PackEntry> {
        self.parse(file, offset)?.check(1, file, offset)
    }

    /// Converts back, checking the enumerations.
    fn parse(&self, file: &str, offset: u64) -> Result<PackEntry> {
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
            member_offset: 0,
        })
    }
}

/// Encodes the plaintext of a trailer, or of one pack's part of an index file, of `version`.
fn encode_entries(entries: &[PackEntry], version: u16) -> Result<Vec<u8>> {
    if version >= 2 {
        let records: Vec<EntryRecord2> = entries.iter().map(EntryRecord2::from).collect();
        codec::encode_compressed(&records, "pack trailer")
    } else {
        let records: Vec<EntryRecord> = entries.iter().map(EntryRecord::from).collect();
        codec::encode(&records, "pack trailer")
    }
}

/// Decodes a trailer's plaintext of `version`, which starts at `offset` in `file`.
fn decode_entries(plain: &[u8], version: u16, file: &str, offset: u64) -> Result<Vec<PackEntry>> {
    if version >= 2 {
        let records: Vec<EntryRecord2> = codec::decode_compressed(plain, file, offset)?;
        records.iter().map(|r| r.to_entry(file, offset)).collect()
    } else {
        let records: Vec<EntryRecord> = codec::decode(plain, file, offset)?;
        records.iter().map(|r| r.to_entry(file, offset)).collect()
    }
}

/// Associated data of the trailer of a pack of `version`.
fn trailer_ad(version: u16) -> [u8; 18] {
    let mut ad = [0u8; 18];
    ad[..16].copy_from_slice(b"RSPLPACK trailer");
    ad[16..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// The first bytes of every pack of `version`.
fn pack_header(version: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(codec::HEADER_LEN);
    codec::write_header(&mut header, PACK_MAGIC, version);
    header
}

/// Where a pack's bytes go while it is filled: memory, or a file the backend stages (see
/// [`Backend::stage`]), so that open packs cost no memory on a backend that can.
#[derive(Debug)]
pub(crate) enum PackContent {
    Memory(Vec<u8>),
    Staged(Box<dyn StagedFile>),
}

impl PackContent {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        match self {
            // Exact: a pack's buffer is megabytes, and amortized growth would double it.
            Self::Memory(bytes) => {
                bytes.reserve_exact(data.len());
                bytes.extend_from_slice(data);
                Ok(())
            }
            Self::Staged(file) => file.append(data),
        }
    }

    /// The BLAKE3 of the `len` bytes appended: the pack's name. Computed when the pack is
    /// finished, by the thread that writes it, rather than blob by blob under the store's
    /// lock (benchmarks.md, "A pack's hash, outside the lock").
    fn hash(&mut self, len: u64) -> Result<ChunkId> {
        /// Read back (from the page cache) in pieces this large: few calls, SIMD-wide hashing.
        const PIECE: u64 = 1 << 20;
        let mut hasher = blake3::Hasher::new();
        match self {
            Self::Memory(bytes) => {
                hasher.update(bytes);
            }
            Self::Staged(file) => {
                let mut offset = 0;
                while offset < len {
                    let piece = PIECE.min(len - offset);
                    // `piece` is at most 1 MiB.
                    hasher.update(&file.read_at(offset, piece as usize)?);
                    offset += piece;
                }
            }
        }
        Ok(ChunkId::from_bytes(*hasher.finalize().as_bytes()))
    }
}

/// A pack being filled.
#[derive(Debug)]
pub(crate) struct PackBuilder {
    version: u16,
    content: PackContent,
    /// Bytes appended so far.
    len: u64,
    entries: Vec<PackEntry>,
}

/// A finished pack, not yet stored: its name, size, entries and content.
#[derive(Debug)]
pub(crate) struct FinishedPack {
    pub(crate) id: ChunkId,
    pub(crate) size: u64,
    pub(crate) entries: Vec<PackEntry>,
    pub(crate) content: PackContent,
}

impl FinishedPack {
    /// Stores the pack under its name in `backend`: durable and visible once `Ok`.
    pub(crate) fn store(self, backend: &dyn Backend) -> Result<(ChunkId, u64, Vec<PackEntry>)> {
        let name = self.id.to_hex();
        match self.content {
            PackContent::Memory(bytes) => backend.write(FileKind::Pack, &name, &bytes)?,
            PackContent::Staged(file) => file.commit(&name)?,
        }
        Ok((self.id, self.size, self.entries))
    }

    /// The bytes of a pack built in memory.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &Vec<u8> {
        match &self.content {
            PackContent::Memory(bytes) => bytes,
            PackContent::Staged(_) => panic!("a staged pack's bytes are in its file"),
        }
    }
}

impl PackBuilder {
    /// An empty pack of `version` in memory, with room for `capacity` bytes.
    pub(crate) fn new(version: u16, capacity: usize) -> Self {
        let header = pack_header(version);
        let mut bytes = Vec::with_capacity(capacity.max(header.len()));
        bytes.extend_from_slice(&header);
        Self::started(version, PackContent::Memory(bytes), &header)
    }

    /// An empty pack of `version` written to `file` as it is filled.
    pub(crate) fn staged(version: u16, mut file: Box<dyn StagedFile>) -> Result<Self> {
        let header = pack_header(version);
        file.append(&header)?;
        Ok(Self::started(version, PackContent::Staged(file), &header))
    }

    /// A pack whose `content` holds `header` and nothing else.
    fn started(version: u16, content: PackContent, header: &[u8]) -> Self {
        Self {
            version,
            content,
            len: header.len() as u64,
            entries: Vec::new(),
        }
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.content.append(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
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
    pub(crate) fn sealed_bytes(&mut self, entry: &PackEntry) -> Result<Vec<u8>> {
        match &mut self.content {
            PackContent::Memory(bytes) => {
                let start = entry.offset as usize;
                Ok(bytes[start..start + entry.length as usize].to_vec())
            }
            PackContent::Staged(file) => file.read_at(entry.offset, entry.length as usize),
        }
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
        let offset = self.len;
        self.append(sealed)?;
        self.entries.push(PackEntry {
            id,
            kind,
            encoding,
            offset,
            length,
            raw_length,
            member_offset: 0,
        });
        Ok(())
    }

    /// Appends a sealed group of tree blobs (a version 2 pack only), one entry per member.
    pub(crate) fn add_group(
        &mut self,
        members: &[crate::group::Member],
        sealed: &[u8],
    ) -> Result<()> {
        debug_assert!(self.version >= 2, "groups need a version 2 pack");
        let length = u32::try_from(sealed.len()).map_err(|_| Error::BlobTooLarge {
            size: sealed.len(),
            max: u32::MAX as usize,
        })?;
        let offset = self.len;
        self.append(sealed)?;
        self.entries.extend(members.iter().map(|m| PackEntry {
            id: m.id,
            kind: BlobKind::Tree,
            encoding: Encoding::Grouped,
            offset,
            length,
            raw_length: m.length,
            member_offset: m.offset,
        }));
        Ok(())
    }

    /// Seals the trailer and returns the finished pack.
    pub(crate) fn finish(mut self, sealer: &Sealer) -> Result<FinishedPack> {
        let trailer = encode_entries(&self.entries, self.version)?;
        let mut tail = Vec::with_capacity(trailer.len() + sealer.overhead() + FOOTER_LEN as usize);
        sealer.seal_into(&mut tail, &trailer, &trailer_ad(self.version))?;
        // A trailer of a pack of at most MAX_PACK_ENTRIES fits in a u32.
        let trailer_len = tail.len() as u32;
        tail.extend_from_slice(&trailer_len.to_le_bytes());
        tail.extend_from_slice(FOOTER_MAGIC);
        self.append(&tail)?;
        Ok(FinishedPack {
            id: self.content.hash(self.len)?,
            size: self.len,
            entries: self.entries,
            content: self.content,
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
    let entries = decode_entries(&trailer, version, &file, blobs_end)?;
    for entry in &entries {
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
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_pack_has_the_bytes_name_and_entries_of_one_built_in_memory() {
        use crate::backend::LocalBackend;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let backend = LocalBackend::new(dir.path());
        let staged = backend
            .stage(FileKind::Pack)
            .expect("staging works")
            .expect("a local backend stages");
        let mut builders = [
            PackBuilder::new(1, 64),
            PackBuilder::staged(1, staged).expect("the header is written"),
        ];
        for builder in &mut builders {
            for (n, size) in [10usize, 300_000, 1].into_iter().enumerate() {
                let id = ChunkId::from_bytes([n as u8; 32]);
                let sealed = vec![n as u8 + 1; size];
                builder
                    .add(id, BlobKind::Data, Encoding::Raw, size as u32, &sealed)
                    .expect("a blob is added");
                let entry = *builder.entries().last().expect("an entry");
                assert_eq!(builder.sealed_bytes(&entry).expect("read back"), sealed);
            }
        }
        let [memory, staged] = builders.map(|b| b.finish(&Sealer::Plain).expect("finished"));
        assert_eq!(memory.entries, staged.entries);
        assert_eq!((memory.id, memory.size), (staged.id, staged.size));
        let bytes = memory.bytes().clone();
        assert_eq!(
            memory.id,
            ChunkId::from_bytes(*blake3::hash(&bytes).as_bytes())
        );
        let (id, size, _) = staged.store(&backend).expect("committed");
        let name = id.to_hex();
        assert_eq!(backend.read(FileKind::Pack, &name).expect("listed"), bytes);
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(backend.list(FileKind::Pack).expect("list"), vec![name]);
    }

    #[test]
    fn a_pack_that_outgrows_its_capacity_is_not_doubled() {
        // Capacity for 100 bytes; then a blob of 1 MiB and a trailer: amortized growth would
        // leave twice the pack's length allocated.
        let mut builder = PackBuilder::new(1, 100);
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
            pack.bytes().capacity() <= pack.bytes().len() + 64,
            "capacity {} for {} bytes",
            pack.bytes().capacity(),
            pack.bytes().len()
        );
    }
}
