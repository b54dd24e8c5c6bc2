//! Counters for `GET /metrics` (Prometheus text format). Plain atomics,
//! bumped where things happen; no lock is taken to count.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use warp::http::{Method, StatusCode};

/// Upper bounds of the POST latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The statuses counted as rejections, each its own series.
const REJECTED: [u16; 10] = [400, 403, 404, 405, 411, 413, 415, 422, 429, 503];

#[derive(Default)]
pub struct Metrics {
    events_appended: AtomicU64,
    deliveries: AtomicU64,
    lagged_disconnects: AtomicU64,
    rejected: [AtomicU64; REJECTED.len()],
    post_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    post_count: AtomicU64,
    post_micros: AtomicU64,
}

/// Gauges read from the registry when scraped.
pub struct Gauges {
    /// Rooms this node holds (with Redis: has in its cache).
    pub rooms: usize,
    pub streams: usize,
    /// With Redis: whether this node reaches it.
    pub redis_up: Option<bool>,
}

impl Metrics {
    pub fn appended(&self, events: u64) {
        self.events_appended.fetch_add(events, Relaxed);
    }

    pub fn delivered(&self, events: u64) {
        self.deliveries.fetch_add(events, Relaxed);
    }

    pub fn lagged(&self) {
        self.lagged_disconnects.fetch_add(1, Relaxed);
    }

    /// Every response: rejections by status, and how long message posts took.
    pub fn responded(&self, method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
        if let Some(i) = REJECTED.iter().position(|&s| s == status.as_u16()) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
        if method == Method::POST && path.ends_with("/messages") {
            let secs = elapsed.as_secs_f64();
            if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
                self.post_buckets[i].fetch_add(1, Relaxed);
            }
            self.post_count.fetch_add(1, Relaxed);
            self.post_micros
                .fetch_add(elapsed.as_micros() as u64, Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "roomcast_streams_open",
            "gauge",
            "Open SSE streams.",
            gauges.streams as u64,
        );
        metric(
            "roomcast_rooms",
            "gauge",
            "Live rooms.",
            gauges.rooms as u64,
        );
        if let Some(up) = gauges.redis_up {
            metric(
                "roomcast_redis_up",
                "gauge",
                "1 while this node reaches Redis (with --redis).",
                u64::from(up),
            );
        }
        metric(
            "roomcast_events_appended_total",
            "counter",
            "History events stored and published.",
            self.events_appended.load(Relaxed),
        );
        metric(
            "roomcast_deliveries_total",
            "counter",
            "History events written to streams.",
            self.deliveries.load(Relaxed),
        );
        metric(
            "roomcast_lagged_disconnects_total",
            "counter",
            "Streams closed for falling too far behind.",
            self.lagged_disconnects.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP roomcast_rejected_requests_total Requests refused, by status.\n\
             # TYPE roomcast_rejected_requests_total counter"
        );
        for (status, count) in REJECTED.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "roomcast_rejected_requests_total{{status=\"{status}\"}} {}",
                count.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP roomcast_post_seconds Time to answer POST .../messages, refusals included.\n\
             # TYPE roomcast_post_seconds histogram"
        );
        let mut cumulative = 0;
        for (le, count) in LATENCY_BUCKETS.iter().zip(&self.post_buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(
                out,
                "roomcast_post_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let total = self.post_count.load(Relaxed);
        let _ = writeln!(out, "roomcast_post_seconds_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.post_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "roomcast_post_seconds_sum {sum}\nroomcast_post_seconds_count {total}"
        );
        out
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
            streams: 5,
            redis_up: Some(false),
        });
        for line in [
            "roomcast_streams_open 5",
            "roomcast_rooms 2",
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
