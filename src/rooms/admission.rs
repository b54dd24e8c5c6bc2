//! Admission: whether a visitor may create a room, post or open one more
//! stream now. Token buckets in bounded maps and stream counts; plain data,
//! kept under the registry's one lock (see [`super::state`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::error::RoomError;
use crate::client::VisitorKey;
use crate::session::SessionId;

/// Visitors remembered at most per limiter; past that, the idle ones
/// (refilled) are forgotten, and if every one is busy the limiter starts
/// over. A flood of addresses cannot grow memory without bound.
pub const MAX_VISITORS: usize = 100_000;

/// How many times a visitor's allowance an address gets over all its
/// sessions: enough for a few people behind one NAT to chat, not enough
/// for fresh sessions to multiply one person's allowance.
pub const PER_ADDRESS: f64 = 4.0;

/// How many times an address's miss allowance an IPv6 /48 gets.
const MISSES_PER_48: f64 = 16.0;

/// How long nobody may name a code once guessers fill the maps.
const FLOODED_FOR: Duration = Duration::from_secs(60);

/// The longest wait ever told (a rate can be tiny).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// How fast an allowance refills and how much it holds.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Rate {
    /// `n` times as much, burst and refill.
    fn times(self, n: f64) -> Rate {
        Rate {
            burst: self.burst * n,
            per_second: self.per_second * n,
        }
    }

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

/// What an allowance is kept for: a session, or an address (see
/// [`address_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charged {
    Session(SessionId),
    Address(IpAddr),
}

impl Charged {
    /// The one a visitor's own allowances are kept for: its session, else
    /// its address.
    fn visitor(visitor: VisitorKey) -> Charged {
        match visitor.session {
            Some(id) => Charged::Session(id),
            None => Charged::address(visitor.address),
        }
    }

    fn address(ip: IpAddr) -> Charged {
        Charged::Address(address_of(ip))
    }
}

type Limiter<C> =
    RateLimiter<Charged, HashMapStateStore<Charged>, C, NoOpMiddleware<<C as Clock>::Instant>>;

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
    pub fn take(&mut self, visitor: Charged) -> Result<(), Duration> {
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

    /// Whether it remembers as many visitors as it may.
    pub fn is_full(&self) -> bool {
        self.limiter.len() >= MAX_VISITORS
    }

    /// Forgets the visitors whose allowance has refilled, and never the
    /// others, however many (for allowances that must fail closed).
    pub fn forget_idle_keeping_all(&mut self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Visitors remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// The address an allowance is kept for: an IPv4 address, or an IPv6
/// address's /64 (one host commonly holds a whole /64, so counting
/// addresses inside it would count nothing).
pub fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// A network a miss is counted under: its first address and its length
/// (a /48's first address is also a /64's, so both make the key).
type Prefix = (IpAddr, u8);

/// What a miss from `ip` is counted under: its address (see
/// [`address_of`]), and for IPv6 its /48 too.
fn guessing_prefixes(ip: IpAddr) -> (Prefix, Option<Prefix>) {
    match address_of(ip) {
        IpAddr::V6(v6) => {
            let wide = IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into());
            ((IpAddr::V6(v6), 64), Some((wide, 48)))
        }
        v4 => ((v4, 32), None),
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
    /// Open streams per session and per address (only those with some).
    streams_by_visitor: HashMap<Charged, usize>,
    post_buckets: Buckets,
    /// Posts per address, over all its sessions.
    address_post_buckets: Buckets,
    /// Joins per address.
    join_buckets: Buckets,
    /// Rooms created per address.
    room_buckets: Buckets,
    /// Each address's allowance for naming codes that are no room.
    miss_buckets: Buckets,
    /// Each IPv6 /48's, over all its /64s.
    wide_miss_buckets: Buckets,
    /// While a flood of guessers fills the maps, nobody may name a code.
    flooded_until: Option<Instant>,
    /// Addresses whose miss allowance ran out, and until when every
    /// request of theirs that names a code is refused: whether a code is a
    /// room must not show in which requests are refused.
    barred: HashMap<Prefix, Instant>,
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
    /// Posts per visitor (session, else address); an address over all
    /// its sessions gets [`PER_ADDRESS`] times as much.
    pub post_rate: Rate,
    /// Joins per address.
    pub join_rate: Rate,
    /// Rooms created per address.
    pub room_rate: Rate,
    /// Codes named that are no room, per address.
    pub miss_rate: Rate,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            streams: 0,
            streams_by_visitor: HashMap::new(),
            post_buckets: Buckets::new(limits.post_rate),
            address_post_buckets: Buckets::new(limits.post_rate.times(PER_ADDRESS)),
            join_buckets: Buckets::new(limits.join_rate),
            room_buckets: Buckets::new(limits.room_rate),
            miss_buckets: Buckets::new(limits.miss_rate),
            wide_miss_buckets: Buckets::new(limits.miss_rate.times(MISSES_PER_48)),
            flooded_until: None,
            barred: HashMap::new(),
        }
    }

    /// Whether `ip` may name a code now: not while its miss allowance is
    /// spent (see [`Admission::missed`]), nor while a flood of guessers
    /// fills the maps that remember them.
    pub fn may_name_a_code(&mut self, ip: IpAddr) -> Result<(), RoomError> {
        let now = Instant::now();
        let mut wait = self
            .flooded_until
            .and_then(|until| until.checked_duration_since(now));
        let (own, wide) = guessing_prefixes(ip);
        for prefix in std::iter::once(own).chain(wide) {
            match self.barred.get(&prefix) {
                Some(until) if *until > now => wait = wait.max(Some(*until - now)),
                Some(_) => {
                    self.barred.remove(&prefix);
                }
                None => {}
            }
        }
        match wait {
            Some(wait) if !wait.is_zero() => Err(RoomError::Guessing(wait)),
            _ => Ok(()),
        }
    }

    /// `ip` named a code that is no room (or a private one without its
    /// key): spends from its miss allowance, and for IPv6 from its /48's
    /// too ([`MISSES_PER_48`] times as much: a /48 is 65,536 /64s, to be
    /// had for free). Once one is spent, this and every request naming a
    /// code from there is refused until it refills. Should a flood of
    /// prefixes fill the maps, every miss and every request naming a code
    /// is refused a while, rather than anyone's allowance forgotten.
    pub fn missed(&mut self, ip: IpAddr) -> Result<(), RoomError> {
        let now = Instant::now();
        let full = |this: &Admission| {
            this.barred.len() >= MAX_VISITORS
                || this.miss_buckets.is_full()
                || this.wide_miss_buckets.is_full()
        };
        if full(self) {
            self.barred.retain(|_, until| *until > now);
            self.miss_buckets.forget_idle_keeping_all();
            self.wide_miss_buckets.forget_idle_keeping_all();
            if full(self) {
                self.flooded_until = Some(now + FLOODED_FOR);
                return Err(RoomError::Guessing(FLOODED_FOR));
            }
        }
        let (own, wide) = guessing_prefixes(ip);
        let mut refused = None;
        if let Err(wait) = self.miss_buckets.take(Charged::Address(own.0)) {
            refused = Some((own, wait));
        }
        if let Some(wide) = wide {
            if let Err(wait) = self.wide_miss_buckets.take(Charged::Address(wide.0)) {
                refused = Some((wide, wait));
            }
        }
        let Some((prefix, wait)) = refused else {
            return Ok(());
        };
        self.barred.insert(prefix, now + wait);
        Err(RoomError::Guessing(wait))
    }

    /// Open streams over all rooms.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// What a visitor's streams are counted under, with the cap of each:
    /// its session (or address) at `--max-streams-per-visitor`, and for a
    /// session its address too, at [`PER_ADDRESS`] times that.
    fn stream_counts(&self, visitor: VisitorKey) -> [(Option<Charged>, usize); 2] {
        let cap = self.limits.max_streams_per_visitor;
        let by_address = visitor.session.map(|_| Charged::address(visitor.address));
        [
            (Some(Charged::visitor(visitor)), cap),
            (by_address, cap.saturating_mul(PER_ADDRESS as usize)),
        ]
    }

    /// Whether this visitor may open one more stream.
    pub fn admit_stream(&self, visitor: VisitorKey) -> Result<(), RoomError> {
        if self.streams >= self.limits.max_streams {
            return Err(RoomError::TooManyStreams);
        }
        for (counted, cap) in self.stream_counts(visitor) {
            let open = counted.and_then(|c| self.streams_by_visitor.get(&c).copied());
            if open.unwrap_or(0) >= cap {
                return Err(RoomError::TooManyStreamsForVisitor);
            }
        }
        Ok(())
    }

    /// Counts an open stream (given back by [`Admission::stream_closed`]).
    pub fn stream_opened(&mut self, visitor: VisitorKey) {
        self.streams += 1;
        for (counted, _) in self.stream_counts(visitor) {
            if let Some(counted) = counted {
                *self.streams_by_visitor.entry(counted).or_default() += 1;
            }
        }
    }

    pub fn stream_closed(&mut self, visitor: VisitorKey) {
        self.streams -= 1;
        for (counted, _) in self.stream_counts(visitor) {
            let Some(counted) = counted else { continue };
            if let Some(count) = self.streams_by_visitor.get_mut(&counted) {
                *count -= 1;
                if *count == 0 {
                    self.streams_by_visitor.remove(&counted);
                }
            }
        }
    }

    /// Whether this visitor may post now; takes its token, and for a
    /// session its address's too (a fresh session buys nothing).
    pub fn admit_post(&mut self, visitor: VisitorKey) -> Result<(), RoomError> {
        self.post_buckets
            .take(Charged::visitor(visitor))
            .map_err(RoomError::RateLimited)?;
        if visitor.session.is_some() {
            self.address_post_buckets
                .take(Charged::address(visitor.address))
                .map_err(RoomError::RateLimited)?;
        }
        Ok(())
    }

    /// Whether this visitor's address may join a room now; takes its token.
    pub fn admit_join(&mut self, visitor: VisitorKey) -> Result<(), RoomError> {
        self.join_buckets
            .take(Charged::address(visitor.address))
            .map_err(RoomError::RateLimited)
    }

    /// How many rooms memory holds at most (`--max-rooms`).
    pub fn max_rooms(&self) -> usize {
        self.limits.max_rooms
    }

    /// Whether this visitor's address may create a room now, `rooms` being
    /// live; takes its token.
    pub fn admit_room(&mut self, visitor: VisitorKey, rooms: usize) -> Result<(), RoomError> {
        if rooms >= self.limits.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        self.room_buckets
            .take(Charged::address(visitor.address))
            .map_err(RoomError::RateLimited)
    }

    /// Forgets what visitors left behind, giving memory back.
    pub fn forget_idle(&mut self) {
        self.post_buckets.forget_idle();
        self.address_post_buckets.forget_idle();
        self.join_buckets.forget_idle();
        self.room_buckets.forget_idle();
        self.miss_buckets.forget_idle_keeping_all();
        self.wide_miss_buckets.forget_idle_keeping_all();
        let now = Instant::now();
        self.barred.retain(|_, until| *until > now);
        shrink(&mut self.barred);
        shrink(&mut self.streams_by_visitor);
    }
}

#[cfg(test)]
mod tests;
