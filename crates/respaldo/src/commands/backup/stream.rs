//! Storing the chunks of a streamed file (one larger than the in-memory limit, or standard
//! input) on every core, while the next chunks are read and cut.
//!
//! A worker that cut and stored a large file one chunk at a time kept one core busy: a single
//! 1 GiB file, or the last large files of a tree, left the others idle. Here, while some core
//! has no file of its own, the worker reads and cuts, and hands batches of chunks to the
//! thread pool, which hashes, compresses and seals them on every core; a bounded number of
//! batches is in flight per stream, so its memory is bounded too. While every core has a file,
//! chunks are stored on the worker's thread, as before, without a copy
//! (`docs/benchmarks.md`, "Large files on every core").

use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc;

use chunk_store::ChunkId;
use chunker::{CutPoints, CutStream};

use super::pipeline::{Context, aborted};
use crate::error::Result;

/// Bytes of chunks handed to the thread pool at once: enough chunks of the default sizes
/// (512 KiB on average) for every core to take some.
const POOL_BATCH: usize = 2 * 1024 * 1024;
/// Batches of one stream handed to the pool and not yet stored. Two keep the pool busy while
/// the oldest one's last chunks finish; each costs [`POOL_BATCH`] bytes (and one largest chunk).
const BATCHES_IN_FLIGHT: usize = 2;

/// Chunks copied out of a stream's buffer (which the next chunk reuses), back to back.
#[derive(Default)]
struct ChunkBatch {
    data: Vec<u8>,
    /// Where each chunk ends in `data`.
    ends: Vec<usize>,
}

impl ChunkBatch {
    fn push(&mut self, chunk: &[u8]) {
        if self.data.capacity() == 0 {
            self.data.reserve_exact(POOL_BATCH);
        }
        // Exact: the batch is handed off once it reaches POOL_BATCH, so it grows past its
        // capacity at most once, by less than a chunk; doubling would hold twice the batch.
        if self.data.len() + chunk.len() > self.data.capacity() {
            self.data.reserve_exact(chunk.len());
        }
        self.data.extend_from_slice(chunk);
        self.ends.push(self.data.len());
    }

    fn chunks(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let chunk = &self.data[start..end];
                start = end;
                chunk
            })
            .collect()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }
}

/// A batch handed to the pool: the batch back (for reuse) and its chunks' ids, in order.
type Stored = (ChunkBatch, Result<Vec<ChunkId>>);

/// A batch in flight: where its ids go in the content, and the channel they come back on.
struct InFlight {
    first: usize,
    stored: mpsc::Receiver<Stored>,
}

/// Holds a batch's place in the content until its ids come back.
const PLACEHOLDER: ChunkId = ChunkId::from_bytes([0; 32]);

/// Stores every chunk of `stream` as data blobs, appending their ids to `content` in order;
/// returns the bytes read. The outer error is fatal (the repository failed), the inner one a
/// read error of the stream, after which `content` is empty (the blobs stored until then
/// stay, as those of any interrupted file do).
pub(super) fn store_stream<C: CutPoints, R: Read>(
    ctx: &Context<'_>,
    stream: &mut CutStream<'_, C, R>,
    content: &mut Vec<ChunkId>,
) -> Result<std::io::Result<u64>> {
    // Only from outside the pool: the scope's own code runs on this thread and blocks on the
    // batches, which a pool thread would wait for on its own queue (and, alone, forever).
    let may_hand_off = rayon::current_thread_index().is_none();
    // The scope's own code runs on this worker's thread, and only the batches go to the pool:
    // this thread may block on a batch without holding a pool thread.
    rayon::in_place_scope(|scope| {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut spare: Vec<ChunkBatch> = Vec::new();
        let mut filling = ChunkBatch::default();
        let mut read = 0u64;
        loop {
            let last = match stream.next_chunk() {
                Ok(Some(chunk)) => {
                    // Another stage failed: the backup is over, the rest of a large file need
                    // not be read.
                    if ctx.aborted() {
                        return Err(aborted());
                    }
                    read += chunk.len() as u64;
                    if filling.ends.is_empty() && !(may_hand_off && ctx.has_idle_cores()) {
                        ctx.store_chunk(chunk, content)?;
                        continue;
                    }
                    filling.push(chunk);
                    if filling.data.len() < POOL_BATCH {
                        continue;
                    }
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    // A batch that failed to store is a fatal error, which must not pass for
                    // this file's read error.
                    while !in_flight.is_empty() {
                        collect_oldest(&mut in_flight, &mut spare, content)?;
                    }
                    content.clear();
                    return Ok(Err(e));
                }
            };
            if in_flight.len() >= BATCHES_IN_FLIGHT {
                collect_oldest(&mut in_flight, &mut spare, content)?;
            }
            if !filling.ends.is_empty() {
                let batch = std::mem::replace(&mut filling, spare.pop().unwrap_or_default());
                let first = content.len();
                content.resize(first + batch.ends.len(), PLACEHOLDER);
                let (done, stored) = mpsc::sync_channel(1);
                scope.spawn(move |_| {
                    let ids = ctx.store_chunks_in_parallel(&batch.chunks());
                    // The receiver is gone only if this stream already failed.
                    let _ = done.send((batch, ids));
                });
                in_flight.push_back(InFlight { first, stored });
            }
            if last {
                while !in_flight.is_empty() {
                    collect_oldest(&mut in_flight, &mut spare, content)?;
                }
                return Ok(Ok(read));
            }
        }
    })
}

/// Waits for the oldest batch in flight, puts its ids in their place in `content` and keeps
/// its buffers.
fn collect_oldest(
    in_flight: &mut VecDeque<InFlight>,
    spare: &mut Vec<ChunkBatch>,
    content: &mut [ChunkId],
) -> Result<()> {
    let Some(oldest) = in_flight.pop_front() else {
        return Ok(());
    };
    // The sender is dropped without sending only if storing the batch panicked, and the
    // scope raises that panic again once it ends.
    let (mut batch, ids) = oldest.stored.recv().map_err(|_| aborted())?;
    let ids = ids?;
    content[oldest.first..oldest.first + ids.len()].copy_from_slice(&ids);
    batch.clear();
    spare.push(batch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::backup::excludes::Excludes;
    use crate::{InitOptions, KdfParams, NoProgress, Repository};
    use std::sync::atomic::Ordering;

    /// Incompressible test data of `len` bytes.
    fn noise(len: usize) -> Vec<u8> {
        crate::test_data::noise(len, 0x9E37_79B9_7F4A_7C15)
    }

    /// Reads `data`, and every `every` bytes makes the cores look busy or idle in turn, so
    /// that a stream's chunks go to the pool and to the worker's own thread by turns. Fails
    /// once `fail_at` bytes are read.
    struct Flipping<'a, 'c> {
        data: &'a [u8],
        position: usize,
        every: usize,
        fail_at: usize,
        ctx: &'a Context<'c>,
    }

    impl Read for Flipping<'_, '_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.position >= self.fail_at {
                return Err(std::io::Error::other("the disk went away"));
            }
            let n = buf
                .len()
                .min(self.data.len() - self.position)
                .min(64 * 1024);
            buf[..n].copy_from_slice(&self.data[self.position..self.position + n]);
            self.position += n;
            let busy = if (self.position / self.every).is_multiple_of(2) {
                0
            } else {
                rayon::current_num_threads()
            };
            self.ctx.busy_workers.store(busy, Ordering::Relaxed);
            Ok(n)
        }
    }

    fn repository() -> (Repository, [tempfile::TempDir; 2]) {
        let dirs = [tempfile::tempdir(), tempfile::tempdir()].map(|d| d.expect("a folder"));
        let options = InitOptions {
            password: Some("pw".into()),
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        };
        let repo = Repository::init(&dirs[0].path().join("repo"), &options, dirs[1].path())
            .expect("a repository");
        (repo, dirs)
    }

    /// The ids of `data`'s chunks, cut and hashed in one piece.
    fn chunk_ids(store: &chunk_store::ChunkStore, data: &[u8]) -> Vec<ChunkId> {
        store
            .chunker()
            .chunk_slice(data)
            .map(|chunk| store.blob_id(chunk))
            .collect()
    }

    #[test]
    fn chunks_stored_on_the_pool_and_inline_keep_their_order() {
        let (repo, _dirs) = repository();
        let store = repo.store();
        let excludes = Excludes::new(&[], &[], &[]).expect("no excludes");
        let ctx = Context::new(store, excludes, false, &NoProgress);
        // Many batches, more than can be in flight at once, with switches in between.
        let data = noise(5 * POOL_BATCH * BATCHES_IN_FLIGHT + 12_345);
        let expected = chunk_ids(store, &data);
        for every in [3 * POOL_BATCH / 2, 5 * POOL_BATCH, usize::MAX] {
            let reader = Flipping {
                data: &data,
                position: 0,
                every,
                fail_at: usize::MAX,
                ctx: &ctx,
            };
            let mut stream = store.chunker().stream(reader);
            let mut content = Vec::new();
            let read = store_stream(&ctx, &mut stream, &mut content)
                .expect("stored")
                .expect("read");
            assert_eq!(read, data.len() as u64);
            assert_eq!(content, expected, "switching every {every} bytes");
        }
        store.flush().expect("flushed");
        let restored: Vec<u8> = expected
            .iter()
            .flat_map(|id| store.get_blob(id).expect("a stored blob"))
            .collect();
        assert!(
            restored == data,
            "the chunks put back together are the data"
        );
    }

    #[test]
    fn a_stream_stored_from_a_pool_thread_does_not_wait_on_itself() {
        let (repo, _dirs) = repository();
        let store = repo.store();
        let excludes = Excludes::new(&[], &[], &[]).expect("no excludes");
        let ctx = Context::new(store, excludes, false, &NoProgress);
        let data = noise(3 * POOL_BATCH * BATCHES_IN_FLIGHT);
        // One thread: a batch handed to it from itself could never run.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a thread pool");
        let content = pool.install(|| {
            let mut stream = store.chunker().stream(data.as_slice());
            let mut content = Vec::new();
            store_stream(&ctx, &mut stream, &mut content)
                .expect("stored")
                .expect("read");
            content
        });
        let expected = chunk_ids(store, &data);
        assert_eq!(content, expected);
    }

    #[test]
    fn a_read_error_with_batches_in_flight_leaves_no_content() {
        let (repo, _dirs) = repository();
        let excludes = Excludes::new(&[], &[], &[]).expect("no excludes");
        let ctx = Context::new(repo.store(), excludes, false, &NoProgress);
        let data = noise(4 * POOL_BATCH * BATCHES_IN_FLIGHT);
        let reader = Flipping {
            data: &data,
            position: 0,
            every: usize::MAX,
            fail_at: 3 * POOL_BATCH * BATCHES_IN_FLIGHT,
            ctx: &ctx,
        };
        let mut stream = repo.store().chunker().stream(reader);
        let mut content = vec![PLACEHOLDER];
        let err = store_stream(&ctx, &mut stream, &mut content)
            .expect("the repository is fine")
            .expect_err("the read fails");
        assert_eq!(err.to_string(), "the disk went away");
        assert!(content.is_empty(), "{} ids left", content.len());
    }

    #[test]
    fn a_failed_backup_stops_reading_a_large_file() {
        let (repo, _dirs) = repository();
        let excludes = Excludes::new(&[], &[], &[]).expect("no excludes");
        let ctx = Context::new(repo.store(), excludes, false, &NoProgress);
        ctx.fail(&aborted());
        // Far more than the stream's read buffer (twice the largest chunk).
        let data = noise(16 * POOL_BATCH);
        let mut reader = data.as_slice();
        let mut stream = repo.store().chunker().stream(&mut reader);
        let mut content = Vec::new();
        assert!(store_stream(&ctx, &mut stream, &mut content).is_err());
        drop(stream);
        assert!(!reader.is_empty(), "the rest of the file is not read");
    }
}
