//! The one thread that writes. It takes every queued change, applies them
//! to the store in one transaction (group commit: while one batch commits,
//! the next one queues up), then hands the batch to `on_commit` in order,
//! and only then answers each waiting request; then it serves the reads
//! (and the lookups of posts' keys) queued with the batch (so a read sees everything queued before it,
//! stored and published); the store's housekeeping comes last.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::error;
use tokio::sync::oneshot;

use super::{Change, KeptPost, Range, Store, StoreError};
use crate::model::{IdempotencyKey, Recorded, RoomCode, Words};
use crate::session::SessionId;

/// Changes waiting for the writer, at most; past that posts get a 503
/// rather than memory growing without bound.
pub const QUEUE_LIMIT: usize = 16_384;

/// Most changes in one transaction, so one commit never grows unbounded.
const BATCH_LIMIT: usize = 1024;

pub type Done = oneshot::Sender<Result<(), StoreError>>;

/// Where a read's events go.
pub type Reply = oneshot::Sender<Result<Vec<Recorded>, StoreError>>;

/// Reads waiting for the writer at most: past it a read is refused (503)
/// rather than fill the queue that writes need, and a crowd of readers
/// can hold up commits by this many reads at most.
pub const READS_LIMIT: usize = 32;

/// How many reads wait, shared by whoever queues them and the writer.
#[derive(Clone, Default)]
pub struct Reads(Arc<AtomicUsize>);

/// One waiting read's place, given back once the writer has served it
/// (not when its requester goes away: the job is still queued).
pub struct Ticket(Arc<AtomicUsize>);

impl Reads {
    /// A place for one more read, if fewer than [`READS_LIMIT`] wait.
    pub fn take(&self) -> Option<Ticket> {
        let taken = self.0.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket(self.0.clone());
        (taken < READS_LIMIT).then_some(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub enum Job {
    Write {
        change: Change,
        /// Told the outcome once the change is stored (or not).
        done: Option<Done>,
    },
    /// A room's events in a range, read once the changes queued before
    /// are stored.
    Read {
        code: RoomCode,
        query: Query,
        reply: Reply,
        ticket: Ticket,
    },
    /// Whether a post's `Idempotency-Key` was stored already, looked up
    /// once the changes queued before are stored.
    FindPost(FindPost),
    /// Any other read of the store (a room or a session taken into
    /// memory, the sweep's queries), run once the changes queued before
    /// are stored; it sends its own answer.
    Call(Call),
}

/// A read run on the writer thread: see [`Job::Call`].
pub type Call = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// What a read asks the store for.
pub enum Query {
    /// [`Store::events`].
    Range(Range),
    /// [`Store::search`]: the newest `limit` with `words` below `before`.
    Search {
        words: Words,
        before: u64,
        limit: usize,
    },
}

/// A lookup of [`Store::find_post`]. It takes no [`Ticket`]: each is a
/// post that waits on it, and posts are bounded by admission and the
/// queue's own limit.
pub struct FindPost {
    pub code: RoomCode,
    pub session: SessionId,
    pub key: IdempotencyKey,
    pub since_ms: u64,
    pub reply: oneshot::Sender<Result<Option<KeptPost>, StoreError>>,
}

/// What the writer takes from its queue at once.
#[derive(Default)]
struct Batch {
    changes: Vec<Change>,
    dones: Vec<Option<Done>>,
    reads: Vec<(RoomCode, Query, Reply, Ticket)>,
    finds: Vec<FindPost>,
    calls: Vec<Call>,
}

/// Starts the writer thread; it ends once every sender is dropped and the
/// queue is drained.
pub fn spawn(
    mut store: Box<dyn Store>,
    history: usize,
    mut on_commit: impl FnMut(&[Change]) + Send + 'static,
) -> (SyncSender<Job>, JoinHandle<()>) {
    let (tx, rx) = mpsc::sync_channel(QUEUE_LIMIT);
    let thread = std::thread::Builder::new()
        .name("roomcast-writer".into())
        .spawn(move || {
            while let Some(batch) = next_batch(&rx) {
                let Batch {
                    changes,
                    dones,
                    reads,
                    finds,
                    calls,
                } = batch;
                if !changes.is_empty() {
                    let result = store.apply(&changes, history);
                    match &result {
                        Ok(()) => on_commit(&changes),
                        Err(err) => error!("{} changes not stored: {err}", changes.len()),
                    }
                    for done in dones.into_iter().flatten() {
                        // The request may have gone away; the outcome stands.
                        let _ = done.send(result.clone());
                    }
                }
                for find in finds {
                    let found = store.find_post(&find.code, find.session, &find.key, find.since_ms);
                    let _ = find.reply.send(found);
                }
                for (code, query, reply, _ticket) in reads {
                    let read = match query {
                        Query::Range(range) => store.events(&code, range),
                        Query::Search {
                            words,
                            before,
                            limit,
                        } => store.search(&code, &words, before, limit),
                    };
                    let _ = reply.send(read);
                }
                for call in calls {
                    call(&mut *store);
                }
                store.tidy();
            }
        })
        .expect("the OS can start one more thread at start-up");
    (tx, thread)
}

/// Waits for one job, then takes whatever else is already queued.
fn next_batch(rx: &Receiver<Job>) -> Option<Batch> {
    let mut batch = Batch::default();
    let mut next = Some(rx.recv().ok()?);
    while let Some(job) = next.take() {
        match job {
            Job::Write { change, done } => {
                batch.changes.push(change);
                batch.dones.push(done);
            }
            Job::Read {
                code,
                query,
                reply,
                ticket,
            } => batch.reads.push((code, query, reply, ticket)),
            Job::FindPost(find) => batch.finds.push(find),
            Job::Call(call) => batch.calls.push(call),
        }
        let jobs = batch.changes.len() + batch.reads.len() + batch.finds.len() + batch.calls.len();
        if jobs < BATCH_LIMIT {
            next = rx.try_recv().ok();
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wait_at_most_the_limit_and_give_their_place_back() {
        let reads = Reads::default();
        let tickets: Vec<Ticket> = (0..READS_LIMIT).map(|_| reads.take().unwrap()).collect();
        assert!(reads.take().is_none(), "one past the limit");
        drop(tickets);
        assert!(reads.take().is_some(), "served reads give their place back");
    }
}
