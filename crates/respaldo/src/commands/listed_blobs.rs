//! Every copy of a blob that the index files list, in one table sorted by blob id: what
//! `check` and `prune` hold of the whole repository.
//!
//! One row of 64 bytes per copy, and 5 more to find rows by blob and by pack, instead of a
//! vector of entries per pack and hash maps over the blobs beside it (`docs/benchmarks.md`,
//! "What `check` and `prune` hold per blob"). The copies of one blob are adjacent, in pack
//! order, so "every copy of this blob" is a range.

use std::collections::HashMap;
use std::ops::Range;

use chunk_store::{BlobKind, ChunkId, Encoding, IndexedPack, PackEntry};

use crate::error::{Error, Result};

/// One copy of a blob: where it is, and in which pack (a position in [`ListedBlobs::packs`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobCopy {
    pub id: ChunkId,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    pub member_offset: u32,
    pub pack: u32,
    pub kind: BlobKind,
    pub encoding: Encoding,
}

impl BlobCopy {
    fn new(entry: &PackEntry, pack: u32) -> Self {
        Self {
            id: entry.id,
            offset: entry.offset,
            length: entry.length,
            raw_length: entry.raw_length,
            member_offset: entry.member_offset,
            pack,
            kind: entry.kind,
            encoding: entry.encoding,
        }
    }

    /// The copy as its pack lists it.
    pub fn entry(&self) -> PackEntry {
        PackEntry {
            id: self.id,
            kind: self.kind,
            encoding: self.encoding,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            member_offset: self.member_offset,
        }
    }
}

/// A pack some index file lists.
#[derive(Debug, Clone)]
pub(crate) struct ListedPack {
    pub id: ChunkId,
    /// Its size as the first index file listing it says.
    pub size: u64,
    /// The index files listing it (positions in [`ListedBlobs::index_files`]), in the order
    /// they were added; the first one's listing of its blobs is the one kept.
    pub index_files: Vec<u32>,
}

/// Gathers index files one at a time: each file's listing becomes rows as it is added, so
/// that the listings of all the files are never held beside the table.
#[derive(Default)]
pub(crate) struct ListedBlobsBuilder {
    index_files: Vec<String>,
    packs: Vec<ListedPack>,
    numbers: HashMap<ChunkId, u32>,
    copies: Vec<BlobCopy>,
}

impl ListedBlobsBuilder {
    /// Adds index file `name` and the packs it lists. A pack an earlier file listed keeps
    /// that listing of its blobs; this file is only noted among those listing it.
    pub fn add_file(&mut self, name: String, packs: Vec<IndexedPack>) -> Result<()> {
        let file = to_u32(self.index_files.len(), "index files")?;
        self.index_files.push(name);
        for pack in packs {
            if let Some(&number) = self.numbers.get(&pack.pack) {
                self.packs[number as usize].index_files.push(file);
                continue;
            }
            // One more must fit too: `finish` counts the packs in a u32.
            to_u32(self.packs.len() + 1, "packs")?;
            let number = self.packs.len() as u32;
            self.numbers.insert(pack.pack, number);
            self.packs.push(ListedPack {
                id: pack.pack,
                size: pack.size,
                index_files: vec![file],
            });
            to_u32(self.copies.len() + pack.blobs.len(), "blobs")?;
            self.copies
                .extend(pack.blobs.iter().map(|e| BlobCopy::new(e, number)));
        }
        Ok(())
    }

    /// The table: packs in id order, copies in (blob id, pack) order.
    pub fn finish(self) -> ListedBlobs {
        let Self {
            index_files,
            packs: added,
            numbers: _,
            mut copies,
        } = self;
        // Packs in id order, so that "the first pack" means the same on every run.
        let mut order: Vec<u32> = (0..added.len() as u32).collect();
        order.sort_unstable_by_key(|n| added[*n as usize].id);
        let mut renumber = vec![0u32; added.len()];
        for (new, old) in order.iter().enumerate() {
            renumber[*old as usize] = new as u32;
        }
        let mut added: Vec<Option<ListedPack>> = added.into_iter().map(Some).collect();
        let packs: Vec<ListedPack> = order
            .iter()
            .filter_map(|n| added[*n as usize].take())
            .collect();
        for copy in &mut copies {
            copy.pack = renumber[copy.pack as usize];
        }
        drop(renumber);
        // The offset last, so that two copies in one pack (a pack listing a blob twice) keep
        // the order they lie in.
        copies.sort_unstable_by(|a, b| {
            (a.id.cmp(&b.id))
                .then(a.pack.cmp(&b.pack))
                .then(a.offset.cmp(&b.offset))
        });

        // Each pack's copies, in blob id order (a stable counting sort by pack).
        let mut pack_starts = vec![0u32; packs.len() + 1];
        for copy in &copies {
            pack_starts[copy.pack as usize + 1] += 1;
        }
        for i in 1..pack_starts.len() {
            pack_starts[i] += pack_starts[i - 1];
        }
        let mut by_pack = vec![0u32; copies.len()];
        let mut next = pack_starts.clone();
        for (i, copy) in copies.iter().enumerate() {
            let slot = &mut next[copy.pack as usize];
            by_pack[*slot as usize] = i as u32;
            *slot += 1;
        }
        drop(next);

        let directory = Directory::new(&copies);
        ListedBlobs {
            index_files,
            packs,
            copies,
            directory,
            by_pack,
            pack_starts,
        }
    }
}

fn to_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        Error::invalid(format!(
            "the index files list more than {} {what}, more than `check` and `prune` can hold \
             at once; nothing was changed",
            u32::MAX
        ))
    })
}

/// Where the copies of each run of blob ids start: ids are hashes, so their leading bits
/// spread them evenly and a lookup searches a handful of rows.
struct Directory {
    /// Bits of the id's first four bytes used (0 to 24).
    bits: u32,
    /// `starts[b]..starts[b + 1]` are the copies whose leading bits are `b`.
    starts: Vec<u32>,
}

impl Directory {
    fn new(copies: &[BlobCopy]) -> Self {
        // About four copies per bucket: 1 byte a copy, and a search of two or three rows.
        let bits = (copies.len() / 4).max(1).ilog2().min(24);
        let mut starts = vec![0u32; (1usize << bits) + 1];
        for copy in copies {
            starts[Self::bucket_of(bits, &copy.id) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        Self { bits, starts }
    }

    fn bucket_of(bits: u32, id: &ChunkId) -> usize {
        // The first bytes as a number whose order is the ids' (byte by byte), so that the
        // buckets follow the sorted copies.
        let head = id.as_bytes()[..4]
            .iter()
            .fold(0u32, |n, b| (n << 8) | u32::from(*b));
        // `checked_shr` because a shift by 32 (no bits used) overflows.
        head.checked_shr(32 - bits).unwrap_or(0) as usize
    }

    fn bucket(&self, id: &ChunkId) -> Range<usize> {
        let b = Self::bucket_of(self.bits, id);
        self.starts[b] as usize..self.starts[b + 1] as usize
    }
}

/// Every copy the index files list; see the module documentation.
pub(crate) struct ListedBlobs {
    index_files: Vec<String>,
    packs: Vec<ListedPack>,
    copies: Vec<BlobCopy>,
    directory: Directory,
    by_pack: Vec<u32>,
    pack_starts: Vec<u32>,
}

impl ListedBlobs {
    /// The index files added, in the order they were added.
    pub fn index_files(&self) -> &[String] {
        &self.index_files
    }

    /// The packs listed, in id order: a copy's `pack` is a position here.
    pub fn packs(&self) -> &[ListedPack] {
        &self.packs
    }

    /// The position of pack `id`, if listed.
    pub fn pack_position(&self, id: &ChunkId) -> Option<u32> {
        self.packs
            .binary_search_by(|p| p.id.cmp(id))
            .ok()
            .map(|p| p as u32)
    }

    /// Every copy, in (blob id, pack) order: a copy's number is its position here.
    pub fn copies(&self) -> &[BlobCopy] {
        &self.copies
    }

    /// The number of blob `id`'s first copy (in pack order), if an index file lists it: the
    /// row where what a command learns of the blob as a whole is kept.
    pub fn first_copy(&self, id: &ChunkId) -> Option<usize> {
        let copies = self.copies_of(id);
        (!copies.is_empty()).then_some(copies.start)
    }

    /// The numbers of blob `id`'s copies, in pack order (empty when no index file lists it).
    pub fn copies_of(&self, id: &ChunkId) -> Range<usize> {
        let bucket = self.directory.bucket(id);
        let rows = &self.copies[bucket.clone()];
        let start = rows.partition_point(|c| c.id < *id);
        let end = start + rows[start..].partition_point(|c| c.id == *id);
        bucket.start + start..bucket.start + end
    }

    /// The numbers of the copies pack `pack` (a position) holds, in blob id order.
    pub fn copies_in(&self, pack: u32) -> impl ExactSizeIterator<Item = usize> + '_ {
        let range =
            self.pack_starts[pack as usize] as usize..self.pack_starts[pack as usize + 1] as usize;
        self.by_pack[range].iter().map(|i| *i as usize)
    }

    /// The numbers of the copies pack `pack` (a position) holds, in the order they lie in
    /// it (the order its index file lists them, for a pack a backup wrote).
    pub fn copies_in_place_order(&self, pack: u32) -> Vec<usize> {
        let mut rows: Vec<usize> = self.copies_in(pack).collect();
        // The members of a group share its offset: in the order of their content.
        rows.sort_unstable_by_key(|i| (self.copies[*i].offset, self.copies[*i].member_offset));
        rows
    }

    /// Each copy of pack `pack` (a position), in place order, with its share of the pack's
    /// stored bytes: a blob stored alone counts its sealed length; the members of a group
    /// share the group's sealed length in proportion to their content (rounded down).
    pub fn stored_shares_in(&self, pack: u32) -> Vec<(usize, u64)> {
        let rows = self.copies_in_place_order(pack);
        let same_group = |a: &usize, b: &usize| {
            let (a, b) = (&self.copies[*a], &self.copies[*b]);
            a.encoding == Encoding::Grouped
                && b.encoding == Encoding::Grouped
                && a.offset == b.offset
        };
        let mut shares = Vec::with_capacity(rows.len());
        for run in rows.chunk_by(same_group) {
            let raw_total: u64 = run
                .iter()
                .map(|i| u64::from(self.copies[*i].raw_length))
                .sum();
            for &i in run {
                let copy = &self.copies[i];
                let length = u64::from(copy.length);
                let share = match run.len() {
                    1 => length,
                    n if raw_total == 0 => length / n as u64,
                    // At most length: raw_length <= raw_total.
                    _ => {
                        (u128::from(length) * u128::from(copy.raw_length) / u128::from(raw_total))
                            as u64
                    }
                };
                shares.push((i, share));
            }
        }
        shares
    }

    /// The entries of pack `pack` (a position), in the order they lie in it.
    pub fn entries_in(&self, pack: u32) -> Vec<PackEntry> {
        self.copies_in_place_order(pack)
            .into_iter()
            .map(|i| self.copies[i].entry())
            .collect()
    }

    /// The ranges of copies of each distinct blob, in id order.
    pub fn blobs(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let first = self.copies.get(start)?;
            let end = start
                + self.copies[start..]
                    .iter()
                    .take_while(|c| c.id == first.id)
                    .count();
            let range = start..end;
            start = end;
            Some(range)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u64) -> ChunkId {
        ChunkId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn entry(blob: u64, offset: u64) -> PackEntry {
        PackEntry {
            id: id(blob),
            kind: BlobKind::Data,
            encoding: Encoding::Raw,
            offset,
            length: 10 + blob as u32,
            raw_length: 10,
            member_offset: 0,
        }
    }

    fn pack(n: u64, blobs: &[u64]) -> IndexedPack {
        IndexedPack {
            pack: id(1_000_000 + n),
            size: 1000 + n,
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| entry(*b, 100 * i as u64))
                .collect(),
        }
    }

    #[test]
    fn members_of_a_group_share_its_stored_bytes_by_their_content() {
        let member = |blob: u64, member_offset: u32, raw_length: u32| PackEntry {
            kind: BlobKind::Tree,
            encoding: Encoding::Grouped,
            offset: 10,
            length: 300,
            raw_length,
            member_offset,
            ..entry(blob, 10)
        };
        let lone = entry(4, 310);
        let mut builder = ListedBlobsBuilder::default();
        let listing = IndexedPack {
            pack: id(1_000_001),
            size: 1000,
            // Listed out of place order: the shares come in place order.
            blobs: vec![
                lone,
                member(3, 400, 0),
                member(1, 0, 100),
                member(2, 100, 300),
            ],
        };
        builder.add_file("a".into(), vec![listing]).unwrap();
        let listed = builder.finish();
        let shares: Vec<(ChunkId, u64)> = listed
            .stored_shares_in(0)
            .into_iter()
            .map(|(i, share)| (listed.copies()[i].id, share))
            .collect();
        assert_eq!(
            shares,
            [
                (id(1), 75),
                (id(2), 225),
                (id(3), 0),
                (id(4), u64::from(lone.length))
            ]
        );
    }

    #[test]
    fn every_copy_is_found_by_blob_and_by_pack() {
        let mut builder = ListedBlobsBuilder::default();
        builder
            .add_file("a".into(), vec![pack(1, &[1, 2, 3]), pack(2, &[3, 4])])
            .unwrap();
        // Pack 2 again (its first listing stays), and pack 3.
        builder
            .add_file("b".into(), vec![pack(2, &[9]), pack(3, &[4, 1])])
            .unwrap();
        let listed = builder.finish();

        assert_eq!(listed.index_files(), ["a", "b"]);
        assert_eq!(listed.packs().len(), 3);
        assert!(listed.packs().windows(2).all(|w| w[0].id < w[1].id));
        let p2 = listed.pack_position(&id(1_000_002)).unwrap();
        assert_eq!(listed.packs()[p2 as usize].index_files, [0, 1]);
        assert_eq!(listed.packs()[p2 as usize].size, 1002);
        assert_eq!(listed.copies().len(), 7);

        for (blob, packs) in [
            (1, vec![1, 3]),
            (2, vec![1]),
            (3, vec![1, 2]),
            (4, vec![2, 3]),
        ] {
            let mut found: Vec<ChunkId> = listed
                .copies_of(&id(blob))
                .map(|i| {
                    assert_eq!(listed.copies()[i].id, id(blob));
                    listed.packs()[listed.copies()[i].pack as usize].id
                })
                .collect();
            let in_order = found.windows(2).all(|w| w[0] < w[1]);
            assert!(in_order, "copies of blob {blob} are in pack order");
            found.sort();
            let mut expected: Vec<ChunkId> = packs.iter().map(|p| id(1_000_000 + p)).collect();
            expected.sort();
            assert_eq!(found, expected, "copies of blob {blob}");
        }
        assert!(
            listed.copies_of(&id(9)).is_empty(),
            "pack 2's second listing is ignored"
        );
        assert!(listed.copies_of(&id(5)).is_empty());

        for (n, blobs) in [(1, &[1, 2, 3][..]), (3, &[4, 1][..])] {
            let position = listed.pack_position(&id(1_000_000 + n)).unwrap();
            assert_eq!(
                listed.entries_in(position),
                pack(n, blobs).blobs,
                "pack {n}"
            );
        }
        assert_eq!(
            listed.first_copy(&id(4)),
            Some(listed.copies_of(&id(4)).start)
        );
        assert_eq!(listed.first_copy(&id(5)), None);
        let ranges: Vec<Range<usize>> = listed.blobs().collect();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 7);
    }

    #[test]
    fn a_blob_a_pack_lists_twice_keeps_both_copies_in_place_order() {
        let mut builder = ListedBlobsBuilder::default();
        let mut twice = pack(1, &[7, 8]);
        twice.blobs.push(entry(7, 500));
        builder.add_file("a".into(), vec![twice.clone()]).unwrap();
        let listed = builder.finish();
        let offsets: Vec<u64> = listed
            .copies_of(&id(7))
            .map(|i| listed.copies()[i].offset)
            .collect();
        assert_eq!(offsets, [0, 500]);
        assert_eq!(listed.entries_in(0), twice.blobs);
    }

    #[test]
    fn lookups_agree_with_a_map_at_every_directory_size() {
        for blobs in [0u64, 1, 2, 5, 100, 5000] {
            let mut builder = ListedBlobsBuilder::default();
            let numbers: Vec<u64> = (0..blobs).collect();
            for (n, part) in numbers.chunks(7).enumerate() {
                builder
                    .add_file(format!("f{n}"), vec![pack(n as u64, part)])
                    .unwrap();
            }
            let listed = builder.finish();
            for blob in 0..blobs + 50 {
                let range = listed.copies_of(&id(blob));
                assert_eq!(
                    range.len(),
                    usize::from(blob < blobs),
                    "{blobs} blobs: {blob}"
                );
            }
            assert_eq!(listed.blobs().count() as u64, blobs);
        }
    }
}
