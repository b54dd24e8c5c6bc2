//! Admission: whether a visitor may create a room, post or open one more
//! stream now. Token buckets in bounded maps and stream counts; plain data,
//! kept under the registry's one lock (see [`super::state`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::error::RoomError;
use crate::client::VisitorKey;

/// Visitors remembered at most per map; past that, the idle ones (full
/// buckets) are forgotten, and if every one is busy the map starts over.
/// A flood of addresses cannot grow memory without bound.
pub const MAX_VISITORS: usize = 100_000;

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One token bucket per visitor.
#[derive(Debug)]
pub struct Buckets {
    rate: Rate,
    buckets: HashMap<VisitorKey, Bucket>,
}

impl Buckets {
    pub fn new(rate: Rate) -> Buckets {
        Buckets {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, visitor: VisitorKey, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_VISITORS && !self.buckets.contains_key(&visitor) {
            self.forget_idle(now);
        }
        let Rate { burst, per_second } = self.rate;
        let bucket = self.buckets.entry(visitor).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refill = now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Duration::from_secs_f64(wait.min(86_400.0)))
        }
    }

    /// Drops the buckets that have refilled to their burst: they hold
    /// nothing a fresh bucket would not. The sweeper calls this, so the map
    /// shrinks back as visitors go quiet.
    pub fn forget_idle(&mut self, now: Instant) {
        let Rate { burst, per_second } = self.rate;
        self.buckets.retain(|_, b| {
            let refill = now.saturating_duration_since(b.updated).as_secs_f64() * per_second;
            b.tokens + refill < burst
        });
        if self.buckets.len() >= MAX_VISITORS {
            self.buckets.clear();
        }
        shrink(&mut self.buckets);
    }
}

/// Gives back a map's spare room once it holds under a quarter of what it
/// could (the quarter leaves slack, so a map near a boundary does not
/// reallocate back and forth).
pub fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// The limits on who may do what, with what each visitor has used.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    /// Open streams over all rooms.
    streams: usize,
    /// Open streams per visitor (only visitors with some).
    streams_by_visitor: HashMap<VisitorKey, usize>,
    post_buckets: Buckets,
    room_buckets: Buckets,
}

/// The limits, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open streams allowed at once, over all rooms.
    pub max_streams: usize,
    /// Open streams allowed at once for one visitor.
    pub max_streams_per_visitor: usize,
    /// Live rooms allowed at once.
    pub max_rooms: usize,
    /// Posts per visitor.
    pub post_rate: Rate,
    /// Rooms created per visitor.
    pub room_rate: Rate,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            streams: 0,
            streams_by_visitor: HashMap::new(),
            post_buckets: Buckets::new(limits.post_rate),
            room_buckets: Buckets::new(limits.room_rate),
        }
    }

    /// Open streams over all rooms.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// Whether this visitor may open one more stream.
    pub fn admit_stream(&self, visitor: VisitorKey) -> Result<(), RoomError> {
        if self.streams >= self.limits.max_streams {
            return Err(RoomError::TooManyStreams);
        }
        let visitor_streams = self.streams_by_visitor.get(&visitor).copied().unwrap_or(0);
        if visitor_streams >= self.limits.max_streams_per_visitor {
            return Err(RoomError::TooManyStreamsForVisitor);
        }
        Ok(())
    }

    /// Counts an open stream (given back by [`Admission::stream_closed`]).
    pub fn stream_opened(&mut self, visitor: VisitorKey) {
        self.streams += 1;
        *self.streams_by_visitor.entry(visitor).or_default() += 1;
    }

    pub fn stream_closed(&mut self, visitor: VisitorKey) {
        self.streams -= 1;
        if let Some(count) = self.streams_by_visitor.get_mut(&visitor) {
            *count -= 1;
            if *count == 0 {
                self.streams_by_visitor.remove(&visitor);
            }
        }
    }

    /// Whether this visitor may post now; takes its token.
    pub fn admit_post(&mut self, visitor: VisitorKey) -> Result<(), RoomError> {
        self.post_buckets
            .take(visitor, Instant::now())
            .map_err(RoomError::RateLimited)
    }

    /// Whether this visitor may create a room now, `rooms` being live;
    /// takes its token.
    pub fn admit_room(&mut self, visitor: VisitorKey, rooms: usize) -> Result<(), RoomError> {
        if rooms >= self.limits.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        self.room_buckets
            .take(visitor, Instant::now())
            .map_err(RoomError::RateLimited)
    }

    /// Forgets what visitors left behind, giving memory back.
    pub fn forget_idle(&mut self, now: Instant) {
        self.post_buckets.forget_idle(now);
        self.room_buckets.forget_idle(now);
        shrink(&mut self.streams_by_visitor);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn buckets(burst: f64, per_second: f64) -> Buckets {
        Buckets::new(Rate { burst, per_second })
    }

    fn visitor(last: u8) -> VisitorKey {
        VisitorKey::Address(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut buckets = buckets(3.0, 2.0);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take(visitor(1), start).is_ok());
        }
        let wait = buckets.take(visitor(1), start).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(
            buckets.take(visitor(2), start).is_ok(),
            "visitors are separate"
        );
        let later = start + Duration::from_millis(500);
        assert!(buckets.take(visitor(1), later).is_ok());
        assert!(buckets.take(visitor(1), later).is_err());
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_addresses() {
        let mut buckets = buckets(2.0, 1.0);
        let now = Instant::now();
        for i in 0..(MAX_VISITORS as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = buckets.take(VisitorKey::Address(ip), now);
        }
        assert!(buckets.buckets.len() <= MAX_VISITORS);
    }

    #[test]
    fn quiet_visitors_are_forgotten_and_the_map_shrinks() {
        let mut buckets = buckets(2.0, 1.0);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            buckets.take(VisitorKey::Address(ip), now).unwrap();
        }
        buckets.take(visitor(1), now).unwrap();
        buckets.take(visitor(1), now).unwrap();
        let grown = buckets.buckets.capacity();
        // A second later the 10,000 have refilled; visitor 1 has not.
        buckets.forget_idle(now + Duration::from_secs(1));
        assert_eq!(buckets.buckets.len(), 1);
        assert!(buckets.buckets.capacity() < grown / 4);
        // Forgetting changed nothing for the one still limited.
        let later = now + Duration::from_secs(1);
        assert!(buckets.take(visitor(1), later).is_ok());
        assert!(buckets.take(visitor(1), later).is_err());
    }
}
