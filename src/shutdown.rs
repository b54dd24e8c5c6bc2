//! One signal that every long-lived task and open stream waits on, so the
//! server can stop: warp's graceful shutdown waits for every connection, and
//! an SSE body that never ends would hold it open forever.

use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

/// Starts the shutdown; dropping it starts it too, so a crashed owner never
/// leaves streams running.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A cheap handle to learn that shutdown has started.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn start(&self) {
        // `send_replace` stores the value even if no handle is listening yet.
        self.0.send_replace(true);
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        self.start();
    }
}

impl Shutdown {
    pub fn has_started(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has started (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.0.wait_for(|started| *started).await;
    }

    /// The state now and then on every change (`true` once shutdown has
    /// started; the stream ends if the trigger is gone). `Sync`, as warp's SSE
    /// reply requires of everything inside a stream.
    pub fn into_stream(self) -> WatchStream<bool> {
        WatchStream::new(self.0)
    }
}
