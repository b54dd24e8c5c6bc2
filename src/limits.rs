//! How large a request may be, each size defined once for every path that
//! reads requests (the fast path, hyper, warp's filters).

/// Largest request body accepted, in bytes; past it, 413.
pub const BODY_LIMIT: u64 = 16 * 1024;

/// The most header bytes a request may send; past it, 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// The most headers a request may send; past it, 431. (hyper's own limit.)
pub const MAX_HEADERS: usize = 100;

/// The longest request target accepted; past it, 414.
pub const MAX_URI: usize = 8 * 1024;

/// The most rooms one multiplexed stream (`GET /events?rooms=`) follows;
/// past it, 400.
pub const MAX_STREAM_ROOMS: usize = 50;

/// The events a room page shows as it opens (its newest); the page script
/// loads older ones as you scroll up.
pub const ROOM_PAGE_EVENTS: usize = 50;

/// The most events one history read may ask for (`limit`); past it, 400.
pub const MAX_HISTORY_LIMIT: usize = 500;

/// The most bytes of events one history response holds: past it, the
/// window ends early (the oldest of the newest, or the newest after
/// `since`, are left for the next read).
pub const MAX_HISTORY_BYTES: usize = 1024 * 1024;

/// How long a post's `Idempotency-Key` is remembered: a repeat within it
/// is answered with the message stored the first time.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
