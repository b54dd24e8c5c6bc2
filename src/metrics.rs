//! Counters for `GET /metrics`, kept by `prometheus-client` (its counters
//! are plain atomics, bumped where things happen; no registry lock is taken
//! to count) and written out in its text exposition when scraped.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use warp::http::{Method, StatusCode};

/// Upper bounds of the POST latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The statuses counted as rejections, each its own series from the start.
const REJECTED: [u16; 10] = [400, 403, 404, 405, 411, 413, 415, 422, 429, 503];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    status: u16,
}

/// Why requests are refused, each its own series from the start: the
/// reasons `ApiError::reason` and the connection layer give.
const REASONS: [&str; 22] = [
    "malformed",
    "not_participant",
    "forbidden",
    "no_room",
    "conflict",
    "media_type",
    "invalid",
    "rate_limited",
    "guessing",
    "streams_per_visitor",
    "no_free_code",
    "shutting_down",
    "max_rooms",
    "max_streams",
    "busy",
    "unreachable",
    "store",
    "cross_site",
    "too_large",
    "not_found",
    "request_timeout",
    "connections_per_address",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByReason {
    reason: &'static str,
}

pub struct Metrics {
    events_appended: Counter,
    deliveries: Counter,
    lagged_disconnects: Counter,
    store_reads: Counter,
    rooms_loaded: Counter,
    rejected: Family<ByStatus, Counter>,
    refusals: Family<ByReason, Counter>,
    post_seconds: Histogram,
}

/// Gauges read from the registry when scraped.
pub struct Gauges {
    /// Rooms this node holds in memory (with Redis: has in its cache).
    pub rooms: usize,
    /// Rooms stored, in memory or not (the local backend's: Redis has
    /// its own count).
    pub rooms_stored: Option<usize>,
    pub streams: usize,
    /// Bytes of history held in memory (see `--total-memory-bytes`).
    pub history_bytes: usize,
    /// With Redis: whether this node reaches it.
    pub redis_up: Option<bool>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let rejected = Family::<ByStatus, Counter>::default();
        for status in REJECTED {
            // Made now, so every series is there, at 0, from the start.
            let _ = rejected.get_or_create(&ByStatus { status });
        }
        let refusals = Family::<ByReason, Counter>::default();
        for reason in REASONS {
            let _ = refusals.get_or_create(&ByReason { reason });
        }
        Metrics {
            refusals,
            events_appended: Counter::default(),
            deliveries: Counter::default(),
            lagged_disconnects: Counter::default(),
            store_reads: Counter::default(),
            rooms_loaded: Counter::default(),
            rejected,
            post_seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Metrics {
    pub fn appended(&self, events: u64) {
        self.events_appended.inc_by(events);
    }

    pub fn delivered(&self, events: u64) {
        self.deliveries.inc_by(events);
    }

    pub fn lagged(&self) {
        self.lagged_disconnects.inc();
    }

    /// A history read (or a stream's backlog) went to the store.
    pub fn read_from_store(&self) {
        self.store_reads.inc();
    }

    /// A room was read from where it is kept into memory.
    pub fn room_loaded(&self) {
        self.rooms_loaded.inc();
    }

    /// A request refused, for `reason` (see [`REASONS`]).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ByReason { reason }).inc();
    }

    /// Every response: rejections by status, and how long message posts
    /// took to answer (refused ones too).
    pub fn responded(&self, method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
        let status = status.as_u16();
        if REJECTED.contains(&status) {
            self.rejected.get_or_create(&ByStatus { status }).inc();
        }
        if method == Method::POST && path.ends_with("/messages") {
            self.post_seconds.observe(elapsed.as_secs_f64());
        }
    }

    /// The text exposition, with `gauges` as they are now.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut registry = Registry::default();
        let gauge = |value: usize| {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };
        registry.register(
            "roomcast_streams_open",
            "Open SSE streams",
            gauge(gauges.streams),
        );
        registry.register(
            "roomcast_rooms",
            "Rooms held in memory",
            gauge(gauges.rooms),
        );
        if let Some(stored) = gauges.rooms_stored {
            registry.register(
                "roomcast_rooms_stored",
                "Rooms stored, in memory or not",
                gauge(stored),
            );
        }
        registry.register(
            "roomcast_history_memory_bytes",
            "Bytes of history held in memory, all rooms",
            gauge(gauges.history_bytes),
        );
        if let Some(up) = gauges.redis_up {
            registry.register(
                "roomcast_redis_up",
                "1 while this node reaches Redis (with --redis)",
                gauge(usize::from(up)),
            );
        }
        let counters = [
            (
                "roomcast_history_store_reads",
                "History reads memory could not answer, sent to the store",
                &self.store_reads,
            ),
            (
                "roomcast_rooms_loaded",
                "Rooms read into memory when first asked for",
                &self.rooms_loaded,
            ),
            (
                "roomcast_events_appended",
                "History events stored and published",
                &self.events_appended,
            ),
            (
                "roomcast_deliveries",
                "History events written to streams",
                &self.deliveries,
            ),
            (
                "roomcast_lagged_disconnects",
                "Streams closed for falling too far behind",
                &self.lagged_disconnects,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "roomcast_rejected_requests",
            "Requests refused, by status",
            self.rejected.clone(),
        );
        registry.register(
            "roomcast_refusals",
            "Requests refused, by reason",
            self.refusals.clone(),
        );
        registry.register(
            "roomcast_post_seconds",
            "Time to answer POST .../messages, refusals included",
            self.post_seconds.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_series() {
        let metrics = Metrics::default();
        metrics.appended(1);
        metrics.delivered(2);
        let post = |ms| Duration::from_millis(ms);
        metrics.responded(
            &Method::POST,
            "/rooms/ABCD/messages",
            StatusCode::CREATED,
            post(3),
        );
        metrics.responded(
            &Method::POST,
            "/rooms/ABCD/messages",
            StatusCode::UNPROCESSABLE_ENTITY,
            post(1),
        );
        let text = metrics.render(Gauges {
            rooms: 2,
            rooms_stored: Some(3),
            streams: 5,
            history_bytes: 7,
            redis_up: Some(false),
        });
        for line in [
            "roomcast_streams_open 5",
            "roomcast_rooms 2",
            "roomcast_rooms_stored 3",
            "roomcast_rooms_loaded_total 0",
            "roomcast_history_memory_bytes 7",
            "roomcast_history_store_reads_total 0",
            "roomcast_redis_up 0",
            "roomcast_events_appended_total 1",
            "roomcast_deliveries_total 2",
            "roomcast_lagged_disconnects_total 0",
            "roomcast_rejected_requests_total{status=\"422\"} 1",
            "roomcast_post_seconds_bucket{le=\"0.001\"} 1",
            "roomcast_post_seconds_bucket{le=\"0.005\"} 2",
            "roomcast_post_seconds_bucket{le=\"+Inf\"} 2",
            "roomcast_post_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
