//! Index files: the durable list of blobs that one writer flush added, under `index/`.
//!
//! ```text
//! header  "RSPLINDX" | version u16
//! body    seal(packs)   (associated data: "RSPLINDX index file" | version u16)
//! ```
//! A file is named by the BLAKE3 of its bytes. The fast index (`index.redb`) is only a cache of
//! the union of these files.

use serde::{Deserialize, Serialize};

use chunker::ChunkId;

use crate::codec;
use crate::error::{Error, Result};
use crate::pack::{EntryRecord, EntryRecord2, PackEntry};
use crate::seal::Sealer;

const INDEX_MAGIC: &[u8; 8] = b"RSPLINDX";
/// The newest index file version this build reads: 1 (format 1), 2 (format 2: a compressed
/// body whose entries can be members of groups).
const INDEX_VERSION: u16 = 2;

/// One pack and the blobs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack's id (its name).
    pub pack: ChunkId,
    /// The pack's size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<PackEntry>,
}

#[derive(Serialize, Deserialize)]
struct PackRecord {
    pack: [u8; 32],
    size: u64,
    blobs: Vec<EntryRecord>,
}

#[derive(Serialize, Deserialize)]
struct PackRecord2 {
    pack: [u8; 32],
    size: u64,
    blobs: Vec<EntryRecord2>,
}

/// Splits `packs` into groups that each fit in one index file (at most `max_blobs` blobs,
/// unless a single pack holds more), in order: for writers that list many packs at once
/// (prune, repair).
pub fn index_file_batches(packs: Vec<IndexedPack>, max_blobs: usize) -> Vec<Vec<IndexedPack>> {
    let mut batches = Vec::new();
    let mut batch: Vec<IndexedPack> = Vec::new();
    let mut blobs = 0;
    for pack in packs {
        if blobs + pack.blobs.len() > max_blobs && !batch.is_empty() {
            batches.push(std::mem::take(&mut batch));
            blobs = 0;
        }
        blobs += pack.blobs.len();
        batch.push(pack);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Associated data of the body of an index file of `version`.
fn body_ad(version: u16) -> [u8; 21] {
    let mut ad = [0u8; 21];
    ad[..19].copy_from_slice(b"RSPLINDX index file");
    ad[19..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// Encodes an index file of `version` (see [`crate::pack::listing_version`]); returns its
/// name and bytes.
pub(crate) fn encode(
    sealer: &Sealer,
    version: u16,
    packs: &[IndexedPack],
) -> Result<(String, Vec<u8>)> {
    let body = if version >= 2 {
        let records: Vec<PackRecord2> = packs
            .iter()
            .map(|p| PackRecord2 {
                pack: *p.pack.as_bytes(),
                size: p.size,
                blobs: p.blobs.iter().map(EntryRecord2::from).collect(),
            })
            .collect();
        codec::encode_compressed(&records, "index file")?
    } else {
        let records: Vec<PackRecord> = packs
            .iter()
            .map(|p| PackRecord {
                pack: *p.pack.as_bytes(),
                size: p.size,
                blobs: p.blobs.iter().map(EntryRecord::from).collect(),
            })
            .collect();
        codec::encode(&records, "index file")?
    };
    let mut bytes = Vec::with_capacity(codec::HEADER_LEN + body.len() + sealer.overhead());
    codec::write_header(&mut bytes, INDEX_MAGIC, version);
    sealer.seal_into(&mut bytes, &body, &body_ad(version))?;
    Ok((blake3::hash(&bytes).to_hex().to_string(), bytes))
}

/// Decodes index file `name`; damage is an error naming `index/NAME`.
pub(crate) fn decode(sealer: &Sealer, name: &str, bytes: &[u8]) -> Result<Vec<IndexedPack>> {
    let file = format!("index/{name}");
    if blake3::hash(bytes).to_hex().as_str() != name {
        return Err(Error::corrupt(
            &file,
            0,
            "content does not match its name (the BLAKE3 of the file): the file was altered",
        ));
    }
    let version = codec::read_header(bytes, INDEX_MAGIC, INDEX_VERSION, &file)?;
    let offset = codec::HEADER_LEN as u64;
    let body = sealer.open(
        &bytes[codec::HEADER_LEN..],
        &body_ad(version),
        &file,
        offset,
    )?;
    let pack = |pack: [u8; 32], size: u64, blobs: Result<Vec<PackEntry>>| {
        Ok(IndexedPack {
            pack: ChunkId::from_bytes(pack),
            size,
            blobs: blobs?,
        })
    };
    if version >= 2 {
        let records: Vec<PackRecord2> = codec::decode_compressed(&body, &file, offset)?;
        records
            .into_iter()
            .map(|r| {
                let blobs = r.blobs.iter().map(|b| b.to_entry(&file, offset)).collect();
                pack(r.pack, r.size, blobs)
            })
            .collect()
    } else {
        let records: Vec<PackRecord> = codec::decode(&body, &file, offset)?;
        records
            .into_iter()
            .map(|r| {
                let blobs = r.blobs.iter().map(|b| b.to_entry(&file, offset)).collect();
                pack(r.pack, r.size, blobs)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(blobs: usize) -> IndexedPack {
        IndexedPack {
            pack: ChunkId::from_bytes([blobs as u8; 32]),
            size: 0,
            blobs: vec![
                PackEntry {
                    id: ChunkId::from_bytes([0; 32]),
                    kind: crate::blob::BlobKind::Data,
                    encoding: crate::blob::Encoding::Raw,
                    offset: 10,
                    length: 16,
                    raw_length: 0,
                    member_offset: 0,
                };
                blobs
            ],
        }
    }

    #[test]
    fn batches_stay_under_the_limit_and_keep_every_pack_in_order() {
        let sizes = [3, 4, 2, 9, 1, 1];
        let batches = index_file_batches(sizes.iter().map(|&n| pack(n)).collect(), 6);
        let counts: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|p| p.blobs.len()).collect())
            .collect();
        // A pack over the limit goes alone; no batch is empty.
        assert_eq!(counts, vec![vec![3], vec![4, 2], vec![9], vec![1, 1]]);
        assert!(index_file_batches(Vec::new(), 6).is_empty());
    }
}
