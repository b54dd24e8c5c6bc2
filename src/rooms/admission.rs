//! Admission: whether a visitor may create a room, post or open one more
//! stream now. Token buckets in bounded maps and stream counts; plain data,
//! kept under the registry's one lock (see [`super::state`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::error::RoomError;
use crate::client::VisitorKey;

/// Visitors remembered at most per limiter; past that, the idle ones
/// (refilled) are forgotten, and if every one is busy the limiter starts
/// over. A flood of addresses cannot grow memory without bound.
pub const MAX_VISITORS: usize = 100_000;

/// The longest wait ever told (a rate can be tiny).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// How fast an allowance refills and how much it holds.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Rate {
    /// As governor's quota: the burst in whole requests (at least one),
    /// one more every `1 / per_second`.
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.ceil().clamp(1.0, u32::MAX as f64) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let period = Duration::try_from_secs_f64(1.0 / self.per_second)
            .unwrap_or(MAX_WAIT)
            .clamp(Duration::from_nanos(1), MAX_WAIT);
        Quota::with_period(period)
            .expect("the period is at least a nanosecond")
            .allow_burst(burst)
    }
}

type Limiter<C> = RateLimiter<
    VisitorKey,
    HashMapStateStore<VisitorKey>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// One allowance per visitor: `governor`'s keyed limiter (GCRA, which
/// behaves as a token bucket), bounded to [`MAX_VISITORS`].
pub struct Buckets<C: Clock = DefaultClock> {
    quota: Quota,
    clock: C,
    limiter: Limiter<C>,
}

impl Buckets {
    pub fn new(rate: Rate) -> Buckets {
        Buckets::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Buckets<C> {
    pub fn with_clock(rate: Rate, clock: C) -> Buckets<C> {
        let quota = rate.quota();
        Buckets {
            quota,
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes one request's worth, or says how long until there is one.
    pub fn take(&mut self, visitor: VisitorKey) -> Result<(), Duration> {
        if self.limiter.len() >= MAX_VISITORS {
            self.forget_idle();
        }
        self.limiter
            .check_key(&visitor)
            .map_err(|refused| refused.wait_time_from(self.clock.now()).min(MAX_WAIT))
    }

    /// Forgets the visitors whose allowance has refilled (a refill period
    /// ago, as governor counts): they hold nothing a fresh one would not.
    /// The sweeper calls this, so memory shrinks back as visitors go quiet.
    pub fn forget_idle(&mut self) {
        self.limiter.retain_recent();
        if self.limiter.len() >= MAX_VISITORS {
            self.limiter = RateLimiter::hashmap_with_clock(self.quota, self.clock.clone());
        }
        self.limiter.shrink_to_fit();
    }

    /// Visitors remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
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
            .take(visitor)
            .map_err(RoomError::RateLimited)
    }

    /// Whether this visitor may create a room now, `rooms` being live;
    /// takes its token.
    pub fn admit_room(&mut self, visitor: VisitorKey, rooms: usize) -> Result<(), RoomError> {
        if rooms >= self.limits.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        self.room_buckets
            .take(visitor)
            .map_err(RoomError::RateLimited)
    }

    /// Forgets what visitors left behind, giving memory back.
    pub fn forget_idle(&mut self) {
        self.post_buckets.forget_idle();
        self.room_buckets.forget_idle();
        shrink(&mut self.streams_by_visitor);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn buckets(burst: f64, per_second: f64) -> (Buckets<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let rate = Rate { burst, per_second };
        (Buckets::with_clock(rate, clock.clone()), clock)
    }

    fn visitor(last: u8) -> VisitorKey {
        VisitorKey::Address(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let (mut buckets, clock) = buckets(3.0, 2.0);
        for _ in 0..3 {
            assert!(buckets.take(visitor(1)).is_ok());
        }
        let wait = buckets.take(visitor(1)).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(buckets.take(visitor(2)).is_ok(), "visitors are separate");
        clock.advance(Duration::from_millis(500));
        assert!(buckets.take(visitor(1)).is_ok());
        assert!(buckets.take(visitor(1)).is_err());
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_addresses() {
        let (mut buckets, _clock) = buckets(2.0, 1.0);
        for i in 0..(MAX_VISITORS as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = buckets.take(VisitorKey::Address(ip));
        }
        assert!(buckets.len() <= MAX_VISITORS);
    }

    #[test]
    fn quiet_visitors_are_forgotten() {
        let (mut buckets, clock) = buckets(2.0, 1.0);
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            buckets.take(VisitorKey::Address(ip)).unwrap();
        }
        clock.advance(Duration::from_secs(1));
        buckets.take(visitor(1)).unwrap();
        buckets.take(visitor(1)).unwrap();
        // A period after refilling, the 10,000 are forgotten; visitor 1,
        // who spent its burst since, is not.
        clock.advance(Duration::from_secs(1));
        buckets.forget_idle();
        assert_eq!(buckets.len(), 1);
        // Forgetting changed nothing for the one still limited.
        assert!(buckets.take(visitor(1)).is_ok());
        assert!(buckets.take(visitor(1)).is_err());
    }
}
