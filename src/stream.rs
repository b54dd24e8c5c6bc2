//! The SSE body of one client: what it missed (history after its resume
//! point), the member list, then live updates until the client goes, the
//! room goes, the client falls too far behind, or the server shuts down
//! (the room says so in band: [`Update::Close`]).
//!
//! Frames are encoded once per event ([`Recorded`](crate::model::Recorded)'s `frame`) and shared by
//! every stream; a stream with several frames ready sends them as one
//! chunk, so a busy room costs one write per client, not one per event.
//! User text only ever travels inside the JSON `data:` line (serde escapes
//! CR and LF), never in `event:` or `id:`, so no message can forge a field.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use log::warn;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::cursor;
use crate::metrics::Metrics;
use crate::model::{sse_frame, Recorded, RoomCode, Update};
use crate::rooms::{Opening, StreamGuard, Subscription};

/// Most bytes gathered into one chunk before it is handed to the socket.
const CHUNK_LIMIT: usize = 64 * 1024;

/// The comment sent on idle streams so proxies keep them open.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Carries a stream from its handler, through warp (whose body type cannot
/// hold it), to the connection, which sends it as the response body.
#[derive(Clone)]
pub struct Handoff(Arc<std::sync::OnceLock<RoomStream>>);

impl Handoff {
    pub fn new(stream: RoomStream) -> Handoff {
        Handoff(Arc::new(std::sync::OnceLock::from(stream)))
    }

    /// The stream, once every other copy of the hand-off is gone.
    pub fn take(self) -> Option<RoomStream> {
        Arc::try_unwrap(self.0).ok()?.into_inner()
    }
}

/// A client's stream of SSE bytes, as an HTTP response body: one room's,
/// or several rooms' multiplexed.
pub struct RoomStream {
    /// What each room sends first (gap, backlog, members), still to go:
    /// encoded a chunk at a time as the connection takes it, so a resume
    /// of many rooms from far back never sits in memory whole.
    opening: VecDeque<Replay>,
    follows: Vec<Follow>,
    /// Set for a multiplexed stream: each event's `id:` is the cursor over
    /// every room it follows (`ABCD:57,EFGH:12`), not the room's own id.
    cursor: bool,
    /// Where the next gathering starts, so no room waits behind a busy one.
    turn: usize,
    keep_alive: Duration,
    /// Fires at the latest `last_sent + keep_alive`; re-armed lazily, so a
    /// busy stream never touches the timer.
    idle: Pin<Box<Sleep>>,
    last_sent: Instant,
    /// Set when the stream must end after what is gathered is sent.
    ending: bool,
    ended: bool,
    /// Dropped with the stream, which is how the registry learns the
    /// client went away.
    guard: StreamGuard,
    metrics: Arc<Metrics>,
}

/// One room's opening, still to send.
struct Replay {
    /// The room's place in `follows`.
    at: usize,
    missed: Option<(u64, u64)>,
    backlog: std::vec::IntoIter<Arc<Recorded>>,
    members: Bytes,
}

/// One room a stream follows.
struct Follow {
    code: RoomCode,
    live: BroadcastStream<Update>,
    /// The newest history id of this room the client has been sent.
    last_id: u64,
    /// The last `members` frame sent for this room: one the same again
    /// (the news of this very stream's opening, say) is not sent twice.
    members: Bytes,
}

impl RoomStream {
    /// A stream of the subscription's rooms: the single-room stream when it
    /// follows one room and `multiplexed` is false, else each event carries
    /// the cursor over all of them.
    pub fn new(subscription: Subscription, keep_alive: Duration, multiplexed: bool) -> RoomStream {
        let Subscription {
            openings,
            guard,
            metrics,
        } = subscription;
        let mut stream = RoomStream {
            opening: VecDeque::with_capacity(openings.len()),
            follows: Vec::with_capacity(openings.len()),
            cursor: multiplexed,
            turn: 0,
            keep_alive,
            idle: Box::pin(tokio::time::sleep(keep_alive)),
            last_sent: Instant::now(),
            ending: false,
            ended: false,
            guard,
            metrics,
        };
        // Every room's starting point is known before anything is sent:
        // the cursor of the first backlog event names them all.
        for (at, (code, opening)) in openings.into_iter().enumerate() {
            let Opening {
                since,
                missed,
                backlog,
                members,
                updates,
            } = opening;
            stream.follows.push(Follow {
                code,
                live: BroadcastStream::new(updates),
                last_id: since,
                members: Bytes::new(),
            });
            stream.opening.push_back(Replay {
                at,
                missed,
                backlog: backlog.into_iter(),
                members,
            });
        }
        stream
    }

    /// Adds what is left of the opening to `chunk`, up to [`CHUNK_LIMIT`].
    fn replay(&mut self, chunk: &mut Chunk) {
        let mut delivered = 0;
        while chunk.len() < CHUNK_LIMIT {
            let Some(replay) = self.opening.front_mut() else {
                break;
            };
            let at = replay.at;
            if let Some((from, to)) = replay.missed.take() {
                let code = &self.follows[at].code;
                chunk.push(&sse_frame(
                    None,
                    "gap",
                    &format!(r#"{{"room":"{code}","from":{from},"to":{to}}}"#),
                ));
            } else if let Some(event) = replay.backlog.next() {
                self.push_event(at, &event, chunk);
                delivered += 1;
            } else {
                chunk.push(&replay.members);
                self.follows[at].members = replay.members.clone();
                self.opening.pop_front();
            }
        }
        self.metrics.delivered(delivered);
    }

    /// Adds one history event of the room followed at `at` to `chunk`,
    /// as is on a single-room stream, or under the new cursor.
    fn push_event(&mut self, at: usize, event: &Recorded, chunk: &mut Chunk) {
        self.follows[at].last_id = event.event.id;
        if !self.cursor {
            chunk.push(&event.frame);
            return;
        }
        let mut line = String::with_capacity(5 + self.follows.len() * 12);
        line.push_str("id: ");
        cursor::write(&mut line, self.follows.iter().map(|f| (&f.code, f.last_id)));
        line.push('\n');
        // The shared frame past its own `id:` line.
        let rest = event
            .frame
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        chunk.extend(line.as_bytes());
        chunk.extend(&event.frame[rest..]);
    }

    /// Gathers every update that is ready, from every room, into `chunk`.
    fn gather(&mut self, cx: &mut Context<'_>, chunk: &mut Chunk) {
        let rooms = self.follows.len();
        for step in 0..rooms {
            let at = (self.turn + step) % rooms;
            self.gather_room(at, cx, chunk);
            if self.ending || chunk.len() >= CHUNK_LIMIT {
                break;
            }
        }
        self.turn = (self.turn + 1) % rooms.max(1);
    }

    /// Gathers the ready updates of the room followed at `at`.
    fn gather_room(&mut self, at: usize, cx: &mut Context<'_>, chunk: &mut Chunk) {
        while chunk.len() < CHUNK_LIMIT {
            let update = match Pin::new(&mut self.follows[at].live).poll_next(cx) {
                Poll::Pending => return,
                Poll::Ready(Some(Ok(update))) => update,
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(skipped)))) => {
                    // Skipping would lose messages silently; closing makes
                    // the client reconnect and resume from history by id.
                    warn!(
                        "closing a stream of {} that fell {skipped} updates behind",
                        self.follows[at].code
                    );
                    self.metrics.lagged();
                    self.ending = true;
                    return;
                }
                Poll::Ready(None) => {
                    self.ending = true; // the room was removed
                    return;
                }
            };
            match update {
                Update::Events(events) => {
                    // What the backlog already gave is skipped.
                    let since = self.follows[at].last_id;
                    let mut delivered = 0;
                    for event in events.iter().filter(|e| e.event.id > since) {
                        self.push_event(at, event, chunk);
                        delivered += 1;
                    }
                    self.metrics.delivered(delivered);
                }
                Update::Members(frame) => {
                    if frame != self.follows[at].members {
                        chunk.push(&frame);
                        self.follows[at].members = frame;
                    }
                }
                Update::Frame(frame, from) => {
                    if !from.is_some_and(|from| self.guard.is_of(from)) {
                        chunk.push(&frame);
                    }
                }
                // Leaving one room (or a session ending) ends the stream:
                // a multiplexed client reconnects with the rooms it has.
                Update::Left(session) if self.guard.is_of(session) => {
                    self.ending = true;
                    return;
                }
                Update::Left(_) => {}
                Update::Close => {
                    self.ending = true;
                    return;
                }
            }
        }
    }
}

impl http_body::Body for RoomStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let mut chunk = Chunk::default();
        if !this.opening.is_empty() {
            // Live updates wait in their channels until it is all sent.
            this.replay(&mut chunk);
        } else if !this.ending {
            this.gather(cx, &mut chunk);
        }
        if let Some(bytes) = chunk.into_bytes() {
            return this.send(bytes);
        }
        if this.ending {
            this.ended = true;
            return Poll::Ready(None);
        }
        loop {
            if this.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = this.last_sent + this.keep_alive;
            if due <= Instant::now() {
                this.idle.as_mut().reset(Instant::now() + this.keep_alive);
                return this.send(Bytes::from_static(KEEP_ALIVE));
            }
            // Something was sent since the timer was set: wait the rest.
            this.idle.as_mut().reset(due);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl RoomStream {
    /// Hands `bytes` to the connection; the keep-alive clock starts over.
    fn send(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.last_sent = Instant::now();
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

/// Frames gathered for one write: a single frame is passed on as is (no
/// copy); several are joined.
#[derive(Default)]
struct Chunk {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.joined
            .as_ref()
            .map_or_else(|| self.first.as_ref().map_or(0, Bytes::len), BytesMut::len)
    }

    /// Adds bytes made for this stream alone.
    fn extend(&mut self, bytes: &[u8]) {
        match (&mut self.joined, self.first.take()) {
            (Some(joined), _) => joined.extend_from_slice(bytes),
            (None, first) => {
                let first = first.unwrap_or_default();
                let mut joined = BytesMut::with_capacity(first.len() + bytes.len() * 4);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(bytes);
                self.joined = Some(joined);
            }
        }
    }

    fn push(&mut self, frame: &Bytes) {
        match (&mut self.joined, &self.first) {
            (Some(joined), _) => joined.extend_from_slice(frame),
            (None, Some(first)) => {
                let mut joined = BytesMut::with_capacity(first.len() + frame.len() * 4);
                joined.extend_from_slice(first);
                joined.extend_from_slice(frame);
                self.joined = Some(joined);
            }
            (None, None) => self.first = Some(frame.clone()),
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self.joined {
            Some(joined) => Some(joined.freeze()),
            None => self.first,
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::model::{Name, RoomCode, Text};
    use crate::rooms::tests::someone;
    use crate::rooms::Registry;
    use crate::session::{Participation, SessionId};

    fn registry() -> Registry {
        crate::rooms::tests::registry(5000, 300_000)
    }

    /// A room with al in it, and a silent follower's stream on it past its
    /// opening.
    async fn live_stream() -> (Registry, RoomCode, SessionId, RoomStream) {
        let registry = registry();
        let code = registry.create_room(someone()).await.unwrap();
        let al = join(&registry, &code).await;
        let subscription = registry.subscribe(&code, None, someone()).await.unwrap();
        let mut stream = RoomStream::new(subscription, Duration::from_secs(60), false);
        next_text(&mut stream).await.unwrap(); // the opening
        (registry, code, al, stream)
    }

    /// A member, "al", in `code`.
    async fn join(registry: &Registry, code: &RoomCode) -> SessionId {
        let al = Participation {
            name: Name::parse("al").unwrap(),
            watch: false,
        };
        let joined = registry.join(code, None, &al, None, someone()).await;
        joined.unwrap().0
    }

    async fn next_text(stream: &mut RoomStream) -> Option<String> {
        let frame = stream.frame().await?.unwrap();
        Some(String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed_not_skipped() {
        let registry = registry();
        let code = registry.create_room(someone()).await.unwrap();
        let subscription = registry.subscribe(&code, Some(0), someone()).await.unwrap();
        let mut stream = RoomStream::new(subscription, Duration::from_secs(60), false);
        let al = join(&registry, &code).await;
        for i in 0..1000 {
            let text = Text::parse(&format!("m{i}")).unwrap();
            registry
                .post(&code, al, &text, None, someone())
                .await
                .unwrap();
        }
        let opening = next_text(&mut stream).await.unwrap();
        assert!(opening.contains("event: members"));
        assert!(next_text(&mut stream).await.is_none(), "closed on lag");
        // The client resumes from history and gets every message (and al's
        // join: notices are kept beside the messages, not instead).
        let resumed = registry.subscribe(&code, Some(0), someone()).await.unwrap();
        assert_eq!(resumed.openings[0].1.backlog.len(), 1001);
    }

    #[tokio::test]
    async fn a_long_resume_goes_out_a_chunk_at_a_time_whole_and_in_order() {
        let registry = registry();
        let code = registry.create_room(someone()).await.unwrap();
        let al = join(&registry, &code).await;
        let long = "x".repeat(900);
        for i in 0..300 {
            let text = Text::parse(&format!("m{i} {long}")).unwrap();
            registry
                .post(&code, al, &text, None, someone())
                .await
                .unwrap();
        }
        let subscription = registry.subscribe(&code, Some(0), someone()).await.unwrap();
        let mut stream = RoomStream::new(subscription, Duration::from_secs(60), false);
        let mut chunks = Vec::new();
        loop {
            let chunk = next_text(&mut stream).await.unwrap();
            let done = chunk.contains("event: members");
            chunks.push(chunk);
            if done {
                break;
            }
        }
        // About 300 KB of backlog: never encoded as one piece.
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        for chunk in &chunks {
            assert!(
                chunk.len() < CHUNK_LIMIT + 2048,
                "a chunk of {}",
                chunk.len()
            );
        }
        let all = chunks.concat();
        let mut at = 0;
        for i in 0..300 {
            let found = all[at..]
                .find(&format!("\"text\":\"m{i} "))
                .expect("every message, in order");
            at += found + 1;
        }
    }

    #[tokio::test]
    async fn ready_frames_go_out_together_in_order() {
        let (registry, code, al, mut stream) = live_stream().await;
        for i in 1..=3 {
            let text = Text::parse(&format!("m{i}")).unwrap();
            registry
                .post(&code, al, &text, None, someone())
                .await
                .unwrap();
        }
        let chunk = next_text(&mut stream).await.unwrap();
        let ids: Vec<&str> = chunk
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .collect();
        assert_eq!(ids, ["2", "3", "4"], "after al's join");
    }

    #[tokio::test]
    async fn a_stream_sends_what_came_before_the_close_then_ends() {
        let (registry, code, al, mut stream) = live_stream().await;
        let text = Text::parse("last words").unwrap();
        registry
            .post(&code, al, &text, None, someone())
            .await
            .unwrap();
        registry.close();
        let chunk = next_text(&mut stream).await.unwrap();
        assert!(chunk.contains("last words"), "{chunk}");
        assert!(next_text(&mut stream).await.is_none());
        assert!(registry.subscribe(&code, None, someone()).await.is_err());
    }
}
