//! The node's one reader: a loop of blocking XREADs over the logs of every
//! room this node has in its cache, each from the last id it delivered, so
//! each room is read once per node however many streams it has here. What
//! it reads goes to a [`Follower`] (the node's cache of rooms), and from
//! there down the room's broadcast channel.
//!
//! It has its own connection (a blocking read would hold up every other
//! command on a shared one). When Redis goes away it retries with backoff
//! and, once back, goes on from the same ids: open streams stay open and
//! catch up on what was posted meanwhile.

use std::future::Future;
use std::time::Duration;

use redis::streams::StreamReadReply;
use redis::AsyncConnectionConfig;

use std::sync::Arc;

use bytes::Bytes;
use tokio_stream::StreamExt;

use super::client::{log_key, room_of_frames, room_of_log, wake_key, Redis, FRAMES_PATTERN};
use super::entries::recorded;
use crate::model::{Recorded, RoomCode};
use crate::shutdown::Shutdown;

/// What the reader feeds: the rooms it follows, and where their events go.
pub trait Follower {
    /// The rooms to follow, each with the last id delivered.
    fn cursors(&self) -> Vec<(RoomCode, u64)>;

    /// Events read from a room's log, in id order.
    fn deliver(&self, code: &RoomCode, events: Vec<Arc<Recorded>>);

    /// A frame that is not history, published for a room.
    fn deliver_frame(&self, code: &RoomCode, frame: Bytes);
}

/// How long one XREAD waits for news, so rooms that left the cache stop
/// being read soon after (new rooms wake the reader at once).
const BLOCK: Duration = Duration::from_secs(1);

/// Most entries taken from one room per read.
const BATCH: usize = 1000;

/// The wait between reconnection attempts: doubling from the first to the
/// second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Follows the rooms' logs until shutdown.
pub async fn run(redis: Redis, follower: impl Follower, mut shutdown: Shutdown) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(4)));
    let wake = wake_key(redis.node());
    // Entries of the wake stream seen so far; "0" takes the newest at once.
    let mut woken = "0".to_string();
    loop {
        let client = &redis.inner.client;
        let connect = || client.get_multiplexed_async_connection_with_config(&config);
        let connecting = connected(&redis, "connecting the reader", connect, &mut shutdown);
        let Some(mut connection) = connecting.await else {
            return;
        };
        loop {
            let rooms = follower.cursors();
            let mut read = redis::cmd("XREAD");
            read.arg("COUNT").arg(BATCH);
            read.arg("BLOCK").arg(BLOCK.as_millis() as u64);
            read.arg("STREAMS").arg(&wake);
            for (code, _) in &rooms {
                read.arg(log_key(code));
            }
            read.arg(&woken);
            for (_, last) in &rooms {
                read.arg(format!("0-{last}"));
            }
            let reply = tokio::select! {
                reply = read.query_async::<Option<StreamReadReply>>(&mut connection) => reply,
                _ = shutdown.wait() => return,
            };
            let Ok(reply) = redis.note("reading rooms", reply) else {
                break; // Reconnect, then go on from the same ids.
            };
            for stream in reply.map(|r| r.keys).unwrap_or_default() {
                if stream.key == wake {
                    if let Some(last) = stream.ids.last() {
                        woken = last.id.clone();
                    }
                    continue;
                }
                let Some(code) = room_of_log(&stream.key) else {
                    continue;
                };
                let events = stream.ids.iter().filter_map(|e| recorded(&code, e));
                follower.deliver(&code, events.collect());
            }
        }
    }
}

/// Hands every room's frames that are not history (published by any node)
/// to `follower`, until shutdown. Its own connection, in pub/sub mode: one
/// pattern subscription for every room, so nothing changes as rooms come
/// and go (a frame for a room not cached here is dropped). A frame sent
/// while the connection is down is lost, as such frames may be.
pub async fn follow_frames(redis: Redis, follower: impl Follower, mut shutdown: Shutdown) {
    loop {
        let client = &redis.inner.client;
        let subscribe = || async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(FRAMES_PATTERN).await?;
            Ok(pubsub)
        };
        let subscribing = connected(&redis, "following frames", subscribe, &mut shutdown);
        let Some(mut pubsub) = subscribing.await else {
            return;
        };
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = shutdown.wait() => return,
            };
            // The connection dropped: subscribe again.
            let Some(message) = message else { break };
            if let Some(code) = room_of_frames(message.get_channel_name()) {
                let frame = Bytes::copy_from_slice(message.get_payload_bytes());
                follower.deliver_frame(&code, frame);
            }
        }
    }
}

/// What `connect` makes, retried with backoff while Redis cannot be
/// reached (each failure noted); `None` once shutdown starts.
async fn connected<T, Fut>(
    redis: &Redis,
    what: &str,
    connect: impl Fn() -> Fut,
    shutdown: &mut Shutdown,
) -> Option<T>
where
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let mut backoff = BACKOFF.0;
    loop {
        let attempt = tokio::select! {
            attempt = connect() => attempt,
            _ = shutdown.wait() => return None,
        };
        if let Ok(made) = redis.note(what, attempt) {
            return Some(made);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return None,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}
