//! Admission's tests: buckets, per-address sharing, the miss allowance.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::*;

fn buckets(burst: f64, per_second: f64) -> (Buckets<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let rate = Rate { burst, per_second };
    (Buckets::with_clock(rate, clock.clone()), clock)
}

fn visitor(last: u8) -> Charged {
    Charged::Address(IpAddr::from([10, 0, 0, last]))
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
        let _ = buckets.take(Charged::Address(ip));
    }
    assert!(buckets.len() <= MAX_VISITORS);
}

/// A rate that refills next to never, with this burst.
fn slow(burst: f64) -> Rate {
    Rate {
        burst,
        per_second: 0.001,
    }
}

fn limits() -> Limits {
    Limits {
        max_streams: 1000,
        max_streams_per_visitor: 2,
        max_rooms: 10,
        post_rate: slow(2.0),
        join_rate: slow(3.0),
        room_rate: slow(1.0),
        miss_rate: slow(10.0),
    }
}

#[test]
fn fresh_sessions_from_one_address_share_its_allowances() {
    let mut admission = Admission::new(limits());
    let address = IpAddr::from([10, 0, 0, 1]);
    let fresh = || VisitorKey {
        session: Some(SessionId::random()),
        address,
    };
    // Posts: each session its own 2, the address 4 times that, 8.
    let posted = (0..20)
        .filter(|_| admission.admit_post(fresh()).is_ok())
        .count();
    assert_eq!(posted, 8);
    // Joins and rooms are the address's alone.
    let joined = (0..20)
        .filter(|_| admission.admit_join(fresh()).is_ok())
        .count();
    assert_eq!(joined, 3);
    let made = (0..20)
        .filter(|_| admission.admit_room(fresh(), 0).is_ok())
        .count();
    assert_eq!(made, 1);
    // Streams: 2 a session, 8 an address.
    let mut open = 0;
    for _ in 0..20 {
        let visitor = fresh();
        while admission.admit_stream(visitor).is_ok() {
            admission.stream_opened(visitor);
            open += 1;
        }
    }
    assert_eq!(open, 8);
    let elsewhere = VisitorKey::address(IpAddr::from([10, 0, 0, 2]));
    assert!(admission.admit_post(elsewhere).is_ok(), "another address");
    assert!(admission.admit_stream(elsewhere).is_ok());
}

#[test]
fn an_address_that_spends_its_misses_may_name_no_code_until_refilled() {
    let mut admission = Admission::new(Limits {
        miss_rate: slow(2.0),
        ..limits()
    });
    let guesser = IpAddr::from([10, 0, 0, 1]);
    assert!(admission.missed(guesser).is_ok());
    assert!(admission.missed(guesser).is_ok());
    assert!(admission.may_name_a_code(guesser).is_ok());
    assert!(matches!(
        admission.missed(guesser),
        Err(RoomError::Guessing(_))
    ));
    assert!(matches!(
        admission.may_name_a_code(guesser),
        Err(RoomError::Guessing(_))
    ));
    assert!(admission
        .may_name_a_code(IpAddr::from([10, 0, 0, 2]))
        .is_ok());
    // One IPv6 host is its /64.
    let host: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let neighbour: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    assert_eq!(address_of(host), address_of(neighbour));
    assert_ne!(
        address_of(host),
        address_of("2001:db8:1:3::1".parse().unwrap())
    );
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(address_of(mapped), guesser);
}

#[test]
fn an_ipv6_48_shares_a_wider_miss_allowance_and_a_flood_fails_closed() {
    let mut admission = Admission::new(Limits {
        miss_rate: slow(2.0),
        ..limits()
    });
    // 40 /64s of one /48, each within its own allowance of 2: the /48's
    // 16 times 2 runs out first, and bars the whole /48.
    let in_48 = |i: u16| IpAddr::from([0x2001, 0xdb8, 7, i, 0, 0, 0, 1]);
    let allowed = (0..40)
        .filter(|i| admission.missed(in_48(*i)).is_ok())
        .count();
    assert_eq!(allowed, 32);
    assert!(admission.may_name_a_code(in_48(1000)).is_err(), "the /48");
    let elsewhere = IpAddr::from([0x2001, 0xdb8, 8, 0, 0, 0, 0, 1]);
    assert!(admission.may_name_a_code(elsewhere).is_ok());
    // The /64 that starts the /48 is barred alone.
    let first_64 = IpAddr::from([0x2001, 0xdb8, 9, 0, 0, 0, 0, 1]);
    for _ in 0..2 {
        assert!(admission.missed(first_64).is_ok());
    }
    assert!(admission.missed(first_64).is_err());
    let next_64 = IpAddr::from([0x2001, 0xdb8, 9, 1, 0, 0, 0, 1]);
    assert!(admission.may_name_a_code(next_64).is_ok());
    // A flood of addresses fills the map: then nobody may guess, rather
    // than every allowance being forgotten.
    for i in 0..(MAX_VISITORS as u32 + 10) {
        let _ = admission.missed(IpAddr::from(i.to_be_bytes()));
    }
    assert!(admission
        .may_name_a_code(IpAddr::from([198, 51, 100, 1]))
        .is_err());
}

#[test]
fn quiet_visitors_are_forgotten() {
    let (mut buckets, clock) = buckets(2.0, 1.0);
    for i in 0..10_000u32 {
        let ip = IpAddr::from(i.to_be_bytes());
        buckets.take(Charged::Address(ip)).unwrap();
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
