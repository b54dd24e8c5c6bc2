//! One signal that the server's background tasks wait on, so the server can
//! stop. (Open streams learn it from their room: `Registry::close`.)

use tokio::sync::watch;

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
    /// Resolves once shutdown has started (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.0.wait_for(|started| *started).await;
    }
}
