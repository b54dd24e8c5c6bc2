use super::*;
use crate::model::{Event, Name, Text};

fn code(c: &str) -> RoomCode {
    RoomCode::parse(c).unwrap()
}

fn event(room: &str, id: u64, kind: Kind) -> Arc<Recorded> {
    let text = (kind == Kind::Message).then(|| Text::parse(&format!("m{id}")).unwrap());
    let name = Name::parse("al").unwrap();
    Arc::new(Recorded::new(Event::new(
        id,
        kind,
        &code(room),
        &name,
        text.as_ref(),
    )))
}

fn from_store(id: u64) -> Recorded {
    Recorded::new(event("ABCD", id, Kind::Message).event.clone())
}

fn bounds(keep: usize) -> Bounds {
    Bounds {
        keep,
        room_events: usize::MAX,
        room_bytes: usize::MAX,
        total_bytes: usize::MAX,
    }
}

fn ids(ring: &Ring) -> Vec<u64> {
    ring.after(0).map(|e| e.event.id).collect()
}

/// `m` for a message, `n` for a notice: ids 1, 2, … in order.
fn room_of(shape: &str) -> Vec<Arc<Recorded>> {
    (shape.chars().enumerate())
        .map(|(i, c)| {
            event(
                "ABCD",
                i as u64 + 1,
                if c == 'm' { Kind::Message } else { Kind::Join },
            )
        })
        .collect()
}

#[test]
fn notices_never_push_a_message_out() {
    let mut ring = Ring::default();
    // Two messages, then a crowd of notices.
    ring.keep(&room_of("mmnnnnnnnn"), &bounds(2));
    assert_eq!(
        ids(&ring),
        [1, 2, 9, 10],
        "both messages stay, the newest 2 notices beside them"
    );
}

#[test]
fn a_message_that_goes_takes_the_notices_before_it() {
    let mut ring = Ring::default();
    ring.keep(&room_of("nmnmnm"), &bounds(2));
    // Message 2 went, and notice 1 with it; notice 3 sits after it and stays.
    assert_eq!(ids(&ring), [3, 4, 5, 6]);
    assert!(
        ring.holds_after(0),
        "the rule let them go from the store too"
    );
}

#[test]
fn memory_bounds_forget_the_oldest_and_send_reads_to_the_store() {
    let mut ring = Ring::default();
    let mut tight = bounds(100);
    tight.room_events = 3;
    ring.keep(&room_of("mmmmm"), &tight);
    assert_eq!(ids(&ring), [3, 4, 5]);
    assert!(!ring.holds_after(1), "2 is in the store only");
    assert!(ring.holds_after(2));
    assert!(ring.holds_newest_before(u64::MAX, 3));
    assert!(!ring.holds_newest_before(u64::MAX, 4));
    // Paging back: below 4, memory holds one (3), not the two asked for.
    assert!(ring.holds_newest_before(4, 1) && !ring.holds_newest_before(4, 2));
    let below: Vec<u64> = ring.newest_before(5, 1).map(|e| e.event.id).collect();
    assert_eq!(below, [4]);

    let one = cost(&event("ABCD", 1, Kind::Message));
    tight.room_bytes = 2 * one;
    ring.keep(&[event("ABCD", 6, Kind::Message)], &tight);
    assert_eq!(ids(&ring), [5, 6]);
    assert_eq!(ring.bytes(), 2 * one);
}

#[test]
fn a_restored_room_reads_the_store_until_memory_has_it() {
    let mut ring = Ring::forgetting(40);
    assert!(!ring.holds_after(39) && ring.holds_after(40));
    let stored: Vec<Recorded> = (38..=40).map(from_store).collect();
    ring.restore(stored, false, &bounds(100));
    assert!(ring.holds_after(37) && !ring.holds_after(36));
    let mut all = Ring::forgetting(2);
    all.restore((1..=2).map(from_store).collect(), true, &bounds(100));
    assert!(all.holds_after(0) && all.holds_newest_before(u64::MAX, 10));
}

#[test]
fn past_the_total_the_oldest_event_of_any_room_goes_first() {
    struct R(Ring);
    impl AsMut<Ring> for R {
        fn as_mut(&mut self) -> &mut Ring {
            &mut self.0
        }
    }
    let one = cost(&event("ABCD", 1, Kind::Message));
    let mut all = bounds(100);
    all.total_bytes = 4 * one;
    let mut rings: HashMap<RoomCode, R> = HashMap::new();
    let mut budget = Budget::default();
    let mut add = |rings: &mut HashMap<RoomCode, R>, room: &str, id: u64| {
        let ring = &mut rings.entry(code(room)).or_insert(R(Ring::default())).0;
        let before = ring.bytes();
        ring.keep(&[event(room, id, Kind::Message)], &all);
        let after = ring.bytes();
        let bytes = (before, after);
        budget.took(
            &code(room),
            [id].into_iter(),
            bytes,
            Age::Newest,
            rings,
            &all,
        );
        budget.bytes
    };
    // A quiet room spoke first; a busy one after.
    add(&mut rings, "QUIE", 1);
    add(&mut rings, "QUIE", 2);
    for id in 1..=3 {
        add(&mut rings, "BUSY", id);
    }
    assert_eq!(ids(&rings[&code("QUIE")].0), [2], "its oldest went first");
    assert_eq!(ids(&rings[&code("BUSY")].0), [1, 2, 3]);
    assert!(!rings[&code("QUIE")].0.holds_after(0));
    assert_eq!(add(&mut rings, "BUSY", 4), 4 * one);
    assert_eq!(ids(&rings[&code("QUIE")].0), Vec::<u64>::new());
}

/// Memory and the SQLite store apply one rule: on a long mixed run, what
/// memory holds is what the store keeps.
#[test]
fn memory_keeps_what_the_store_keeps() {
    use crate::store::sqlite::{SqliteStore, IN_MEMORY};
    use crate::store::{Change, Range, Store};
    let mut store = SqliteStore::open(IN_MEMORY).unwrap();
    let room = code("ABCD");
    let create = Change::CreateRoom {
        code: room.clone(),
        key: None,
        at_ms: 1,
    };
    store.apply(&[create], 7).unwrap();
    // A mixed run: bursts of notices between runs of messages.
    let mut seed = 7u64;
    let events: Vec<Arc<Recorded>> = (1..=400)
        .map(|id| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let kind = if (seed >> 33).is_multiple_of(3) {
                Kind::Message
            } else {
                Kind::Leave
            };
            event("ABCD", id, kind)
        })
        .collect();
    let mut ring = Ring::default();
    for batch in events.chunks(9) {
        let changes: Vec<Change> = (batch.iter())
            .map(|event| Change::Append {
                key: None,
                code: room.clone(),
                event: event.clone(),
                at_ms: 2,
            })
            .collect();
        store.apply(&changes, 7).unwrap();
        ring.keep(batch, &bounds(7));
        let all = Range {
            after: Some(0),
            before: u64::MAX,
            limit: usize::MAX,
        };
        let stored: Vec<u64> = store
            .events(&room, all)
            .unwrap()
            .iter()
            .map(|e| e.event.id)
            .collect();
        assert_eq!(ids(&ring), stored);
    }
    let messages = ring
        .after(0)
        .filter(|e| e.event.kind == Kind::Message)
        .count();
    assert_eq!((messages, ring.len()), (7, 14));
}

struct Held(Ring);

impl AsMut<Ring> for Held {
    fn as_mut(&mut self) -> &mut Ring {
        &mut self.0
    }
}

/// At start the most recently active room is restored first, and each
/// after it is older: past the total, the least active room's oldest go.
#[test]
fn rooms_restored_at_start_let_the_least_active_go_first() {
    let one = cost(&event("ABCD", 1, Kind::Message));
    let mut all = bounds(100);
    all.total_bytes = 5 * one;
    let mut rings: HashMap<RoomCode, Held> = HashMap::new();
    let mut budget = Budget::default();
    let mut fits = Vec::new();
    for room in ["BUSY", "QUIE"] {
        let mut ring = Ring::forgetting(3);
        let stored = (1..=3).map(|id| Recorded::new(event(room, id, Kind::Message).event.clone()));
        ring.restore(stored.collect(), true, &all);
        let after = ring.bytes();
        rings.insert(code(room), Held(ring));
        let ids = [1, 2, 3].into_iter();
        fits.push(budget.took(&code(room), ids, (0, after), Age::Oldest, &mut rings, &all));
    }
    assert_eq!(fits, [true, false]);
    assert_eq!(ids(&rings[&code("BUSY")].0), [1, 2, 3]);
    assert_eq!(ids(&rings[&code("QUIE")].0), [2, 3]);
    // A new event anywhere now takes the quiet room's oldest first.
    let ring = &mut rings.get_mut(&code("BUSY")).unwrap().0;
    let before = ring.bytes();
    ring.keep(&[event("BUSY", 4, Kind::Message)], &all);
    let bytes = (before, ring.bytes());
    budget.took(
        &code("BUSY"),
        [4].into_iter(),
        bytes,
        Age::Newest,
        &mut rings,
        &all,
    );
    assert_eq!(ids(&rings[&code("QUIE")].0), [3]);
    assert_eq!(ids(&rings[&code("BUSY")].0), [1, 2, 3, 4]);
}

/// Notices the rule takes from the middle of a ring leave no entries
/// behind in the budget's order.
#[test]
fn the_budget_forgets_events_the_rule_let_go() {
    let mut rings: HashMap<RoomCode, Held> = HashMap::new();
    rings.insert(code("ABCD"), Held(Ring::default()));
    let mut budget = Budget::default();
    let keep = bounds(2);
    for id in 1..=20_000 {
        let kind = if id == 1 { Kind::Message } else { Kind::Join };
        let ring = &mut rings.get_mut(&code("ABCD")).unwrap().0;
        let before = ring.bytes();
        ring.keep(&[event("ABCD", id, kind)], &keep);
        let bytes = (before, ring.bytes());
        budget.took(
            &code("ABCD"),
            [id].into_iter(),
            bytes,
            Age::Newest,
            &mut rings,
            &keep,
        );
    }
    assert_eq!(ids(&rings[&code("ABCD")].0), [1, 19_999, 20_000]);
    assert!(budget.order.len() < 5000, "{} entries", budget.order.len());
}

#[test]
fn a_delete_takes_the_changes_memory_holds_even_without_the_message() {
    // Memory holds ids 3 on: message 1 only the store has.
    let mut ring = Ring::forgetting(2);
    let change = |id, kind| {
        let mut event = event("ABCD", id, kind).event.clone();
        event.target = Some(1);
        event.text = (kind == Kind::Edit).then(|| "secret words".to_string());
        Arc::new(Recorded::new(event))
    };
    let notice = event("ABCD", 4, Kind::Join);
    let kept = [change(3, Kind::Edit), notice, change(5, Kind::Reaction)];
    ring.keep(&kept, &bounds(100));
    assert_eq!(ids(&ring), [3, 4, 5]);
    ring.keep(&[change(6, Kind::Delete)], &bounds(100));
    assert_eq!(ids(&ring), [4, 6], "its edit and reaction went with it");
}
