//! Copying SQLite's write-ahead log into the database file, mostly on a
//! thread of its own.
//!
//! A checkpoint first syncs the log to disk, about 4 ms on this project's
//! machine. SQLite does it inside a commit by default, and then every
//! request in the batch waits for that sync. Here a helper thread with its
//! own connection copies and syncs the bulk while the writer goes on. Then
//! the writer copies only what was committed in the meantime, which needs
//! only a short sync, and leaves the log wholly copied, so the next commit
//! starts it over. A helper alone could never finish the job: under steady
//! load there is always a commit newer than the one it copied up to.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::warn;
use rusqlite::Connection;

/// Pages in the log past which it is copied (SQLite's own threshold).
const CHECKPOINT_PAGES: i32 = 1000;

pub struct Checkpoints {
    /// Pages in the log after the writer's last commit.
    pages: Arc<AtomicI32>,
    helper: Helper,
    /// Whether the helper is copying (or has copied) and the writer's
    /// share is still to do.
    helping: bool,
}

impl Checkpoints {
    /// Takes checkpoints out of the writer's commits on `writer` (its
    /// connection to the database at `path`) and starts the helper.
    pub fn start(writer: &mut Connection, path: &str) -> Result<Checkpoints, String> {
        let pages = Arc::new(AtomicI32::new(0));
        let seen = pages.clone();
        // Replaces SQLite's own checkpoints in commits with a count.
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, now| {
                seen.store(now, Ordering::Relaxed);
                Ok(())
            }))
            .map_err(|e| e.to_string())?;
        Ok(Checkpoints {
            pages,
            helper: Helper::start(path)?,
            helping: false,
        })
    }

    /// Called by the writer between batches, on its own connection.
    pub fn tidy(&mut self, writer: &Connection) {
        if !self.helping {
            if self.pages.load(Ordering::Relaxed) >= CHECKPOINT_PAGES {
                self.helping = self.helper.ask();
            }
        } else if self.helper.finished() {
            self.helping = false;
            // Whatever came since the helper began. A reader (a backup)
            // may hold some of it back; then the next round goes further.
            if let Err(err) = passive(writer) {
                warn!("checkpoint failed: {err}");
            }
        }
    }
}

/// The thread that does the bulk of each checkpoint.
struct Helper {
    ask: Option<SyncSender<()>>,
    finished: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn start(path: &str) -> Result<Helper, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let thread = std::thread::Builder::new()
            .name("roomcast-checkpoint".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    if let Err(err) = passive(&conn) {
                        warn!("checkpoint failed: {err}");
                    }
                    done.store(true, Ordering::Release);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Helper {
            ask: Some(ask),
            finished,
            thread: Some(thread),
        })
    }

    /// Starts a round; false if the thread is gone.
    fn ask(&self) -> bool {
        self.finished.store(false, Ordering::Release);
        self.ask
            .as_ref()
            .is_some_and(|ask| ask.try_send(()).is_ok())
    }

    fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.ask = None; // ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies what it can without waiting for anyone.
fn passive(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
