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

use std::time::Duration;

use redis::streams::StreamReadReply;
use redis::AsyncConnectionConfig;

use std::sync::Arc;

use super::client::{decode, log_key, room_of_log, wake_key, Redis};
use crate::model::{Recorded, RoomCode};
use crate::shutdown::Shutdown;

/// What the reader feeds: the rooms it follows, and where their events go.
pub trait Follower {
    /// The rooms to follow, each with the last id delivered.
    fn cursors(&self) -> Vec<(RoomCode, u64)>;

    /// Events read from a room's log, in id order.
    fn deliver(&self, code: &RoomCode, events: Vec<Arc<Recorded>>);
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
    let mut backoff = BACKOFF.0;
    loop {
        let connecting = redis
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let connected = tokio::select! {
            connected = connecting => connected,
            _ = shutdown.wait() => return,
        };
        let mut connection = match redis.note("connecting the reader", connected) {
            Ok(connection) => connection,
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
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
                let events = stream.ids.iter().filter_map(|e| decode(&code, e));
                follower.deliver(&code, events.collect());
            }
        }
    }
}
