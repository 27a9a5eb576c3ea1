//! Groups of tree blobs (format 2): several small blobs compressed as one zstd frame and
//! sealed once, each still listed in the pack's trailer and the index under its own id.
//!
//! A tree lists one folder and is a few hundred bytes: alone, it compresses poorly and pays a
//! seal of its own. The trees one backup writes share names, owners and times, so together
//! they compress to about half (`docs/benchmarks.md`, "What the trees would cost encoded
//! otherwise"). A member is read by opening its group and cutting its range out, then checked
//! against its id like any blob; decoded groups are kept in a small cache, since a walk reads
//! the members of one group one after another.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chunker::{ChunkId, IdHasher};

use crate::blob::{self, BlobKind, BlobLocation, Encoding};
use crate::error::{Error, Result};
use crate::seal::Sealer;

/// Content at which a writer closes a group: the writer's choice, not part of the format.
/// Larger groups compress a little better and cost more to read one member of.
pub(crate) const GROUP_TARGET: usize = 128 * 1024;

/// Largest blob a writer puts in a group; larger trees are stored apart.
pub(crate) const GROUP_MEMBER_MAX: usize = GROUP_TARGET / 2;

/// Largest group content a reader decodes (`docs/format.md`, section 7.1): far above what a
/// writer makes (under [`GROUP_TARGET`] plus [`GROUP_MEMBER_MAX`]), and small enough that a
/// damaged group costs a reader little memory.
pub(crate) const MAX_GROUP_SIZE: usize = 1024 * 1024;

/// Decoded groups kept by a store: a folder walk reads the members of a group in turn.
const CACHED_GROUPS: usize = 8;

/// Associated data of a group's seal: the group is bound to the format and the kind of its
/// members; each member is bound to its id by the id check on every read.
fn group_ad(kind: BlobKind, format_major: u16) -> [u8; 11] {
    let mut ad = [0u8; 11];
    ad[..8].copy_from_slice(b"RSPLGRUP");
    ad[8..10].copy_from_slice(&format_major.to_le_bytes());
    ad[10] = kind.to_byte();
    ad
}

/// One member of a group: its id and its range in the group's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: ChunkId,
    pub(crate) offset: u32,
    pub(crate) length: u32,
}

/// Blobs gathered for the next group, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct GroupBuilder {
    members: Vec<Member>,
    content: Vec<u8>,
}

/// A group ready for a pack.
#[derive(Debug)]
pub(crate) enum SealedGroup {
    /// The members, sealed together: the sealed bytes and where each member is in them.
    Together {
        sealed: Vec<u8>,
        members: Vec<Member>,
    },
    /// Not worth a group (one member, or zstd does not shrink them): each member's id and
    /// content, to be stored as a blob of its own.
    Apart(Vec<(ChunkId, Vec<u8>)>),
}

impl GroupBuilder {
    /// Adds a blob. The caller keeps the content under [`MAX_GROUP_SIZE`] by sealing the group
    /// once it reaches [`GROUP_TARGET`], and adds only blobs far smaller than that.
    pub(crate) fn push(&mut self, id: ChunkId, data: &[u8]) {
        // Both fit in a u32: the caller keeps the content under GROUP_TARGET + GROUP_MEMBER_MAX.
        self.members.push(Member {
            id,
            offset: self.content.len() as u32,
            length: data.len() as u32,
        });
        self.content.extend_from_slice(data);
    }

    /// Bytes of content gathered.
    pub(crate) fn len(&self) -> usize {
        self.content.len()
    }

    /// Whether no blob was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The content of member `id`, if it is in this group.
    pub(crate) fn get(&self, id: &ChunkId) -> Option<Vec<u8>> {
        self.members.iter().find(|m| m.id == *id).map(|m| {
            let start = m.offset as usize;
            self.content[start..start + m.length as usize].to_vec()
        })
    }

    /// The ids of the members.
    pub(crate) fn ids(&self) -> Vec<ChunkId> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Compresses and seals the members as one group of `kind`, or hands them back to be
    /// stored apart when a group would not save anything.
    pub(crate) fn seal(
        self,
        sealer: &Sealer,
        format_major: u16,
        zstd_level: i32,
        kind: BlobKind,
    ) -> Result<SealedGroup> {
        let apart = |builder: Self| {
            let members = builder
                .members
                .iter()
                .map(|m| {
                    let start = m.offset as usize;
                    (
                        m.id,
                        builder.content[start..start + m.length as usize].to_vec(),
                    )
                })
                .collect();
            SealedGroup::Apart(members)
        };
        if self.members.len() < 2 || zstd_level == 0 {
            return Ok(apart(self));
        }
        let mut compressed = Vec::new();
        blob::compress_into(zstd_level, &self.content, &mut compressed)?;
        if compressed.len() >= self.content.len() {
            return Ok(apart(self));
        }
        let mut sealed = Vec::with_capacity(compressed.len() + sealer.overhead());
        sealer.seal_into(&mut sealed, &compressed, &group_ad(kind, format_major))?;
        Ok(SealedGroup::Together {
            sealed,
            members: self.members,
        })
    }
}

/// Opens and decompresses the group that holds the member at `location`, from `sealed`, its
/// stored bytes. The content is authentic (it opened under the repository's key) but not yet
/// checked against any member's id.
///
/// Errors: [`Error::Corrupt`] naming the pack and the group's offset.
pub(crate) fn open(
    sealer: &Sealer,
    format_major: u16,
    location: &BlobLocation,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let file = format!("packs/{}", location.pack);
    let damage = |reason: String| Error::corrupt(&file, location.offset, reason);
    let frame = sealer.open(
        sealed,
        &group_ad(location.kind, format_major),
        &file,
        location.offset,
    )?;
    let size = blob::single_frame_size(&frame, MAX_GROUP_SIZE as u64)
        .map_err(|reason| damage(format!("group: {reason}")))?;
    let content =
        blob::decompress(&frame, size).map_err(|e| damage(format!("group: zstd: {e}")))?;
    if content.len() != size {
        return Err(damage(format!(
            "group is {} bytes, its frame says {size}",
            content.len()
        )));
    }
    Ok(content)
}

/// Member `id` of `group` (the content [`open`] returned for `location`), checked against
/// its id.
///
/// Errors: [`Error::Corrupt`] naming the pack and the group's offset.
pub(crate) fn member(
    hasher: &IdHasher,
    id: &ChunkId,
    location: &BlobLocation,
    group: &[u8],
) -> Result<Vec<u8>> {
    let start = location.member_offset as usize;
    let content = start
        .checked_add(location.raw_length as usize)
        .and_then(|end| group.get(start..end))
        .ok_or_else(|| {
            Error::corrupt(
                format!("packs/{}", location.pack),
                location.offset,
                format!(
                    "blob {id} is listed at {start}..+{} of a group of {} bytes",
                    location.raw_length,
                    group.len()
                ),
            )
        })?;
    blob::verify(hasher, id, location, content.to_vec())
}

/// Decoded groups, most recently used last, each named by its pack, offset and length (a
/// pack's bytes never change: its name is their hash; a listing with another length is read
/// and opened as it says, so that a wrong one fails as it would without the cache).
#[derive(Debug, Default)]
pub(crate) struct GroupCache {
    groups: Mutex<VecDeque<CachedGroup>>,
}

/// A decoded group: its pack, its offset and length there, its content.
type CachedGroup = (ChunkId, u64, u32, Arc<Vec<u8>>);

impl GroupCache {
    fn groups(&self) -> MutexGuard<'_, VecDeque<CachedGroup>> {
        // Nothing panics while the lock is held; a poisoned cache is still a valid cache.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The content of the group at `location`, from the cache or by opening `sealed` (read
    /// by `read` only on a miss).
    pub(crate) fn get_or_open(
        &self,
        sealer: &Sealer,
        format_major: u16,
        location: &BlobLocation,
        read: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<Vec<u8>>> {
        debug_assert_eq!(location.encoding, Encoding::Grouped);
        let key = (location.pack, location.offset, location.length);
        {
            let mut groups = self.groups();
            let found = groups.iter().position(|(p, o, l, _)| (*p, *o, *l) == key);
            if let Some(found) = found.and_then(|at| groups.remove(at)) {
                let content = Arc::clone(&found.3);
                groups.push_back(found);
                return Ok(content);
            }
        }
        let content = Arc::new(open(sealer, format_major, location, &read()?)?);
        let mut groups = self.groups();
        if groups.len() >= CACHED_GROUPS {
            groups.pop_front();
        }
        groups.push_back((key.0, key.1, key.2, Arc::clone(&content)));
        Ok(content)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn location(members: &[Member], at: usize) -> BlobLocation {
        BlobLocation {
            pack: ChunkId::from_bytes([9; 32]),
            offset: 10,
            length: 0,
            raw_length: members[at].length,
            kind: BlobKind::Tree,
            encoding: Encoding::Grouped,
            member_offset: members[at].offset,
        }
    }

    #[test]
    fn every_member_reads_back_and_a_wrong_range_is_damage() {
        let hasher = IdHasher::Plain;
        let sealer = Sealer::Plain;
        let blobs: Vec<Vec<u8>> = (0..20u8)
            .map(|n| format!("tree {n} lists a.txt b.txt c.txt").into_bytes())
            .collect();
        let mut builder = GroupBuilder::default();
        for blob in &blobs {
            builder.push(hasher.hash(blob), blob);
        }
        assert_eq!(builder.get(&hasher.hash(&blobs[3])), Some(blobs[3].clone()));
        let SealedGroup::Together { sealed, members } =
            builder.seal(&sealer, 2, 3, BlobKind::Tree).unwrap()
        else {
            panic!("twenty similar trees make a group");
        };
        let group = open(&sealer, 2, &location(&members, 0), &sealed).unwrap();
        for (at, blob) in blobs.iter().enumerate() {
            let found = member(&hasher, &hasher.hash(blob), &location(&members, at), &group);
            assert_eq!(found.unwrap(), *blob);
        }
        // Another member's range, a range past the end, another kind, another major.
        let mut wrong = location(&members, 1);
        assert!(member(&hasher, &hasher.hash(&blobs[0]), &wrong, &group).is_err());
        wrong.member_offset = group.len() as u32;
        assert!(member(&hasher, &hasher.hash(&blobs[1]), &wrong, &group).is_err());
        let mut data = location(&members, 0);
        data.kind = BlobKind::Data;
        assert!(open(&sealer, 2, &data, &sealed).is_err());
        assert!(open(&sealer, 1, &location(&members, 0), &sealed).is_err());
    }

    #[test]
    fn one_member_or_incompressible_members_are_stored_apart() {
        let sealer = Sealer::Plain;
        let mut one = GroupBuilder::default();
        one.push(ChunkId::from_bytes([1; 32]), b"alone");
        assert!(matches!(
            one.seal(&sealer, 2, 3, BlobKind::Tree).unwrap(),
            SealedGroup::Apart(members) if members == [(ChunkId::from_bytes([1; 32]), b"alone".to_vec())]
        ));
        let mut noise = GroupBuilder::default();
        let mut state = 7u64;
        for n in 0..2u8 {
            let data: Vec<u8> = (0..64)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect();
            noise.push(ChunkId::from_bytes([n; 32]), &data);
        }
        assert!(matches!(
            noise.seal(&sealer, 2, 3, BlobKind::Tree).unwrap(),
            SealedGroup::Apart(members) if members.len() == 2
        ));
    }

    #[test]
    fn a_group_over_the_limit_is_damage() {
        let sealer = Sealer::Plain;
        let mut builder = GroupBuilder::default();
        let half = vec![0u8; MAX_GROUP_SIZE / 2 + 1];
        builder.push(ChunkId::from_bytes([1; 32]), &half);
        builder.push(ChunkId::from_bytes([2; 32]), &half);
        let SealedGroup::Together { sealed, members } =
            builder.seal(&sealer, 2, 3, BlobKind::Tree).unwrap()
        else {
            panic!("zeros make a group");
        };
        let err = open(&sealer, 2, &location(&members, 0), &sealed).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
    }

    #[test]
    fn the_cache_opens_a_group_once() {
        let sealer = Sealer::Plain;
        let mut builder = GroupBuilder::default();
        builder.push(ChunkId::from_bytes([1; 32]), &[5; 100]);
        builder.push(ChunkId::from_bytes([2; 32]), &[5; 100]);
        let SealedGroup::Together { sealed, members } =
            builder.seal(&sealer, 2, 3, BlobKind::Tree).unwrap()
        else {
            panic!("two compressible members make a group");
        };
        let cache = GroupCache::default();
        let reads = std::cell::Cell::new(0);
        for at in [0, 1, 0] {
            let content = cache
                .get_or_open(&sealer, 2, &location(&members, at), || {
                    reads.set(reads.get() + 1);
                    Ok(sealed.clone())
                })
                .unwrap();
            assert_eq!(content.len(), 200);
        }
        assert_eq!(reads.get(), 1);
    }
}
