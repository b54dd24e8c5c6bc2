//! The SSE body of one client: what it missed (history after its resume
//! point), the member list, then live updates until the client goes, the
//! room goes, the client falls too far behind, or the server shuts down.
//!
//! User text only ever travels inside the JSON `data:` line (serde escapes
//! CR and LF), never in `event:` or `id:`, so no message can forge a field.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use log::warn;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::Stream;
use warp::sse::Event as Frame;

use crate::metrics::Metrics;
use crate::model::{Recorded, Update};
use crate::rooms::{Presence, Subscription};
use crate::shutdown::Shutdown;

/// A client's stream of SSE frames. `Send + Sync + Unpin`, as warp's SSE
/// reply requires.
pub struct RoomStream {
    opening: std::vec::IntoIter<Frame>,
    live: BroadcastStream<Update>,
    shutdown: WatchStream<bool>,
    /// The newest history id this client has been sent.
    last_id: u64,
    ended: bool,
    /// Dropped with the stream, which is how the registry learns the
    /// client went away.
    presence: Presence,
    metrics: Arc<Metrics>,
}

impl RoomStream {
    pub fn new(subscription: Subscription, shutdown: Shutdown) -> RoomStream {
        let Subscription {
            since,
            missed,
            backlog,
            members,
            updates,
            presence,
            metrics,
        } = subscription;
        let gap = missed.map(|(from, to)| {
            Frame::default()
                .event("gap")
                .data(format!(r#"{{"from":{from},"to":{to}}}"#))
        });
        let last_id = backlog.last().map_or(since, |e| e.event.id);
        let opening: Vec<Frame> = gap
            .into_iter()
            .chain(backlog.iter().map(|e| event_frame(e)))
            .chain(std::iter::once(members_frame(&members)))
            .collect();
        RoomStream {
            opening: opening.into_iter(),
            live: BroadcastStream::new(updates),
            shutdown: shutdown.into_stream(),
            last_id,
            ended: false,
            presence,
            metrics,
        }
    }

    fn end(&mut self) -> Poll<Option<Result<Frame, Infallible>>> {
        self.ended = true;
        Poll::Ready(None)
    }
}

impl Stream for RoomStream {
    type Item = Result<Frame, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        // Shutdown first, so a busy room cannot hold the server open.
        loop {
            match Pin::new(&mut this.shutdown).poll_next(cx) {
                Poll::Ready(Some(false)) => continue,
                Poll::Ready(Some(true) | None) => return this.end(),
                Poll::Pending => break,
            }
        }
        if let Some(frame) = this.opening.next() {
            // The backlog's events count as deliveries; so does the
            // opening members frame, which keeps the count simple and cheap.
            this.metrics.delivered();
            return Poll::Ready(Some(Ok(frame)));
        }
        loop {
            let update = match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(update))) => update,
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(skipped)))) => {
                    // Skipping would lose messages silently; closing makes
                    // the client reconnect and resume from history by id.
                    warn!(
                        "closing a stream of {} that fell {skipped} updates behind",
                        this.presence.room()
                    );
                    this.metrics.lagged();
                    return this.end();
                }
                // The room was removed.
                Poll::Ready(None) => return this.end(),
            };
            match update {
                Update::Event(event) if event.event.id <= this.last_id => continue,
                Update::Event(event) => {
                    this.last_id = event.event.id;
                    this.metrics.delivered();
                    return Poll::Ready(Some(Ok(event_frame(&event))));
                }
                Update::Members(members) => {
                    return Poll::Ready(Some(Ok(members_frame(&members))));
                }
            }
        }
    }
}

fn event_frame(recorded: &Recorded) -> Frame {
    Frame::default()
        .id(recorded.event.id.to_string())
        .event(recorded.event.kind.as_str())
        .data(recorded.json.clone())
}

fn members_frame(members: &str) -> Frame {
    Frame::default().event("members").data(members)
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;
    use crate::model::{Name, Text};
    use crate::rooms::Registry;

    fn registry() -> Registry {
        crate::rooms::tests::registry(5000, 300_000)
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed_not_skipped() {
        let registry = registry();
        let code = registry.create_room().await.unwrap();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let subscription = registry.subscribe(&code, Some(0), None).unwrap();
        let mut stream = RoomStream::new(subscription, shutdown);
        let name = Name::parse("al").unwrap();
        for i in 0..1000 {
            let text = Text::parse(&format!("m{i}")).unwrap();
            registry.post(&code, &name, &text).await.unwrap();
        }
        let members = stream.next().await.unwrap().unwrap();
        assert!(members.to_string().contains("event:members"));
        assert!(stream.next().await.is_none(), "closed on lag");
        // The client resumes from history and gets every message.
        let resumed = registry.subscribe(&code, Some(0), None).unwrap();
        assert_eq!(resumed.backlog.len(), 1000);
    }

    #[tokio::test]
    async fn a_stream_ends_when_shutdown_starts() {
        let registry = registry();
        let code = registry.create_room().await.unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let subscription = registry.subscribe(&code, None, None).unwrap();
        let mut stream = RoomStream::new(subscription, shutdown);
        trigger.start();
        assert!(stream.next().await.is_none());
    }
}
