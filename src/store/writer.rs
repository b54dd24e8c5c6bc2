//! The one thread that writes. It takes every queued change, applies them
//! to the store in one transaction (group commit: while one batch commits,
//! the next one queues up), then hands the batch to `on_commit` in order,
//! and only then answers each waiting request; the store's housekeeping
//! comes after the answers.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use log::error;
use tokio::sync::oneshot;

use super::{Change, Store, StoreError};

/// Changes waiting for the writer, at most; past that posts get a 503
/// rather than memory growing without bound.
pub const QUEUE_LIMIT: usize = 16_384;

/// Most changes in one transaction, so one commit never grows unbounded.
const BATCH_LIMIT: usize = 1024;

pub type Done = oneshot::Sender<Result<(), StoreError>>;

pub struct Job {
    pub change: Change,
    /// Told the outcome once the change is stored (or not).
    pub done: Option<Done>,
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
            while let Some((changes, dones)) = next_batch(&rx) {
                let result = store.apply(&changes, history);
                match &result {
                    Ok(()) => on_commit(&changes),
                    Err(err) => error!("{} changes not stored: {err}", changes.len()),
                }
                for done in dones.into_iter().flatten() {
                    // The request may have gone away; the outcome stands.
                    let _ = done.send(result.clone());
                }
                store.tidy();
            }
        })
        .expect("the OS can start one more thread at start-up");
    (tx, thread)
}

/// Waits for one job, then takes whatever else is already queued.
fn next_batch(rx: &Receiver<Job>) -> Option<(Vec<Change>, Vec<Option<Done>>)> {
    let first = rx.recv().ok()?;
    let mut changes = vec![first.change];
    let mut dones = vec![first.done];
    while changes.len() < BATCH_LIMIT {
        match rx.try_recv() {
            Ok(job) => {
                changes.push(job.change);
                dones.push(job.done);
            }
            Err(_) => break,
        }
    }
    Some((changes, dones))
}
