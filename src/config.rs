//! The command line: every flag, its environment variable and its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::model::RoomCode;
use crate::rooms::admission::{Limits, Rate};
use crate::rooms::{Bounds, Settings};
use crate::site::Origin;

/// roomcast: a real-time multi-room web chat over plain HTTP
/// (POST up, Server-Sent Events down).
#[derive(Debug, Clone, Parser)]
#[command(name = "roomcast", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ROOMCAST_BIND", default_value = "127.0.0.1:3030")]
    pub bind: SocketAddr,

    /// Where rooms and history are kept: an SQLite file, created if
    /// missing; `:memory:` keeps everything in memory (gone at exit).
    #[arg(long, env = "ROOMCAST_DB", default_value = "roomcast.db")]
    pub db: String,

    /// Share rooms with other roomcast nodes through Redis at this URL
    /// (redis://host:port/db) instead of keeping them in `--db`.
    #[arg(long, env = "ROOMCAST_REDIS")]
    pub redis: Option<String>,

    /// Messages kept per room for history and resume (on disk, or in
    /// Redis), and beside them as many join/leave notices: a notice never
    /// pushes a message out.
    #[arg(long, env = "ROOMCAST_HISTORY", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history: u32,

    /// Events of one room held in memory at most (its newest); older ones
    /// are read from the store when a resume or a history read needs them.
    #[arg(long, env = "ROOMCAST_ROOM_MEMORY_EVENTS", default_value_t = 1000)]
    pub room_memory_events: usize,

    /// Bytes one room's history may take in memory (K, M and G suffixes:
    /// powers of 1024).
    #[arg(long, env = "ROOMCAST_ROOM_MEMORY_BYTES", default_value = "1M", value_parser = bytes)]
    pub room_memory_bytes: usize,

    /// Bytes all rooms' history may take in memory; past it, the oldest
    /// event held in any room goes first.
    #[arg(long, env = "ROOMCAST_TOTAL_MEMORY_BYTES", default_value = "256M", value_parser = bytes)]
    pub total_memory_bytes: usize,

    /// Open streams allowed at once; past it a new stream gets 503 with
    /// Retry-After. Default: what the open-file limit leaves after a reserve.
    #[arg(long, env = "ROOMCAST_MAX_STREAMS")]
    pub max_streams: Option<usize>,

    /// Open streams allowed at once for one visitor (session, else address);
    /// past it, 429.
    #[arg(long, env = "ROOMCAST_MAX_STREAMS_PER_VISITOR", default_value_t = 20)]
    pub max_streams_per_visitor: usize,

    /// Rooms held in memory at once (stored rooms nobody uses are not);
    /// past it, creating one answers 503, and opening a stored one lets
    /// go of the one asked for least lately (503 if all are in use).
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Posts a visitor may make at once before the rate applies.
    #[arg(long, env = "ROOMCAST_POST_BURST", default_value_t = 20.0, value_parser = positive)]
    pub post_burst: f64,

    /// Posts per second a visitor's allowance refills by; past it, 429.
    #[arg(long, env = "ROOMCAST_POST_RATE", default_value_t = 2.0, value_parser = positive)]
    pub post_rate: f64,

    /// Joins one address may make at once (over all its sessions) before
    /// the rate applies.
    #[arg(long, env = "ROOMCAST_JOIN_BURST", default_value_t = 40.0, value_parser = positive)]
    pub join_burst: f64,

    /// Joins per second an address's allowance refills by.
    #[arg(long, env = "ROOMCAST_JOIN_RATE", default_value_t = 1.0, value_parser = positive)]
    pub join_rate: f64,

    /// Rooms a visitor may create at once before the rate applies.
    #[arg(long, env = "ROOMCAST_ROOM_BURST", default_value_t = 5.0, value_parser = positive)]
    pub room_burst: f64,

    /// Rooms per second a visitor's allowance refills by (0.1: one per 10 s).
    #[arg(long, env = "ROOMCAST_ROOM_RATE", default_value_t = 0.1, value_parser = positive)]
    pub room_rate: f64,

    /// Codes an address may name that are no room (or a private room
    /// without its key) at once; past it, every request of theirs naming a
    /// code answers 429 until the allowance refills.
    #[arg(long, env = "ROOMCAST_MISS_BURST", default_value_t = 10.0, value_parser = positive)]
    pub miss_burst: f64,

    /// Misses per second the allowance refills by (0.1: one per 10 s).
    #[arg(long, env = "ROOMCAST_MISS_RATE", default_value_t = 0.1, value_parser = positive)]
    pub miss_rate: f64,

    /// A proxy (address or CIDR, repeatable) whose X-Forwarded-For and
    /// X-Forwarded-Proto are believed; from anyone else they are ignored.
    #[arg(long = "trusted-proxy", env = "ROOMCAST_TRUSTED_PROXY", value_delimiter = ',', value_parser = network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// This site's address as visitors reach it (https://chat.example.com):
    /// invite links carry it, and a browser's Origin must name it. Without
    /// it, a trusted proxy's X-Forwarded-Proto and X-Forwarded-Host tell,
    /// else links stay relative (the page makes them whole).
    #[arg(long, env = "ROOMCAST_PUBLIC_URL", value_parser = Origin::parse)]
    pub public_url: Option<Origin>,

    /// Serve HTTPS, with HTTP/2 and HTTP/1.1 chosen by ALPN, with this
    /// certificate chain (PEM, the server's certificate first); needs
    /// `--tls-key`. Without it, plain HTTP/1.1. Cookies are then Secure.
    #[arg(long, env = "ROOMCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "ROOMCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Mark the session cookie Secure (also done on its own for requests a
    /// trusted proxy says came over HTTPS).
    #[arg(long, env = "ROOMCAST_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Open connections one client address may hold; past it a new one is
    /// answered 503 with Retry-After and closed. (Not counted for a trusted
    /// proxy's connections: behind one, it must cap them.)
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Seconds a request may take to arrive whole, head and body, on any
    /// path; past it, 408 and the connection is closed (also the longest a
    /// kept-alive connection may sit idle).
    #[arg(long, env = "ROOMCAST_REQUEST_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub request_timeout: Duration,

    /// Seconds shutdown (SIGTERM, Ctrl-C) waits for open connections to
    /// finish before it closes them; everything answered 201 is stored
    /// either way.
    #[arg(long, env = "ROOMCAST_SHUTDOWN_TIMEOUT", default_value = "5", value_parser = seconds)]
    pub shutdown_timeout: Duration,

    /// Seconds a stream may leave a write untaken before it is closed (its
    /// client resumes from history later).
    #[arg(long, env = "ROOMCAST_WRITE_TIMEOUT", default_value = "30", value_parser = seconds)]
    pub write_timeout: Duration,

    /// Seconds between keep-alive comments on open streams (fractions allowed).
    #[arg(long, env = "ROOMCAST_KEEP_ALIVE", default_value = "15", value_parser = seconds)]
    pub keep_alive: Duration,

    /// Seconds a room lives on with nobody connected and nothing said
    /// (fractions allowed; default 30 days). Then it ends: its messages
    /// are gone, and its code answers "ended" for `--ended-ttl`.
    #[arg(long, env = "ROOMCAST_ROOM_TTL", default_value = "2592000", value_parser = seconds)]
    pub room_ttl: Duration,

    /// Seconds a room (or a session) stays in memory once nobody uses it
    /// (fractions allowed; default 5 minutes). It stays stored, and is read
    /// back the next time someone opens, joins or posts to it.
    #[arg(long, env = "ROOMCAST_UNLOAD_AFTER", default_value = "300", value_parser = seconds)]
    pub unload_after: Duration,

    /// Seconds an ended room's code answers "Room ABCD ended on DATE" and
    /// is given to no new room (fractions allowed; default as long as
    /// `--room-ttl`).
    #[arg(long, env = "ROOMCAST_ENDED_TTL", value_parser = seconds)]
    pub ended_ttl: Option<Duration>,

    /// Codes in use (rooms, and ended rooms' reserved codes) below which
    /// new rooms get four-letter codes; from it on, five letters. Default:
    /// half of the 456,976 four-letter codes, so a guess is never more
    /// likely to hit a room than not.
    #[arg(long, env = "ROOMCAST_SHORT_CODES", default_value_t = RoomCode::SHORT_CODES / 2)]
    pub short_codes: usize,

    /// Seconds a session (a browser's cookie, a script's token, and every
    /// name it holds) is kept after its last use (default 30 days).
    #[arg(long, env = "ROOMCAST_SESSION_TTL", default_value = "2592000", value_parser = seconds)]
    pub session_ttl: Duration,
}

impl Default for Config {
    /// The defaults the flags declare (and the `ROOMCAST_*` environment,
    /// as for the binary), without reading the command line.
    fn default() -> Config {
        Config::parse_from(["roomcast"])
    }
}

impl Config {
    /// The registry's settings; `max_streams` is asked for only when no
    /// `--max-streams` was given.
    pub fn settings(&self, max_streams: impl FnOnce() -> usize) -> Settings {
        Settings {
            history: Bounds {
                keep: self.history as usize,
                room_events: self.room_memory_events,
                room_bytes: self.room_memory_bytes,
                total_bytes: self.total_memory_bytes,
            },
            room_ttl: self.room_ttl,
            ended_ttl: self.ended_ttl.unwrap_or(self.room_ttl),
            short_codes: self.short_codes,
            unload_after: self.unload_after,
            session_ttl: self.session_ttl,
            limits: Limits {
                max_streams: self.max_streams.unwrap_or_else(max_streams),
                max_streams_per_visitor: self.max_streams_per_visitor,
                max_rooms: self.max_rooms,
                post_rate: Rate {
                    burst: self.post_burst,
                    per_second: self.post_rate,
                },
                join_rate: Rate {
                    burst: self.join_burst,
                    per_second: self.join_rate,
                },
                room_rate: Rate {
                    burst: self.room_burst,
                    per_second: self.room_rate,
                },
                miss_rate: Rate {
                    burst: self.miss_burst,
                    per_second: self.miss_rate,
                },
            },
        }
    }
}

/// `10.0.0.0/8`, or one address (`10.0.0.1`).
fn network(input: &str) -> Result<ipnet::IpNet, String> {
    input
        .parse::<ipnet::IpNet>()
        .or_else(|_| input.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{input:?} is not an address or a CIDR block"))
}

/// A positive, finite number (a burst or a rate).
fn positive(input: &str) -> Result<f64, String> {
    match input.parse::<f64>() {
        Ok(value) if value > 0.0 && value.is_finite() => Ok(value),
        _ => Err(format!("{input:?} is not a positive number")),
    }
}

/// A number of bytes, with K, M or G for powers of 1024 (`256M`).
fn bytes(input: &str) -> Result<usize, String> {
    let (digits, unit) = match input.char_indices().last() {
        Some((at, 'K' | 'k')) => (&input[..at], 1 << 10),
        Some((at, 'M' | 'm')) => (&input[..at], 1 << 20),
        Some((at, 'G' | 'g')) => (&input[..at], 1 << 30),
        _ => (input, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{input:?} is not a number of bytes (say 65536, 64K or 1M)"))
}

/// A positive number of seconds; fractions let tests use short timers.
fn seconds(input: &str) -> Result<Duration, String> {
    let secs: f64 = input
        .parse()
        .map_err(|_| format!("{input:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 31_536_000.0) {
        return Err(format!(
            "{input} is out of range: give more than 0 and at most a year"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let config = Config::try_parse_from([
            "roomcast",
            "--trusted-proxy",
            "10.0.0.0/8,::1",
            "--trusted-proxy",
            "192.168.1.7",
        ])
        .unwrap();
        let shown: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]);
        assert!(Config::try_parse_from(["roomcast", "--trusted-proxy", "nope"]).is_err());
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_together() {
        let both = ["roomcast", "--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let config = Config::try_parse_from(both).unwrap();
        assert_eq!(config.tls_cert, Some(PathBuf::from("c.pem")));
        assert!(Config::try_parse_from(["roomcast", "--tls-cert", "c.pem"]).is_err());
        assert!(Config::try_parse_from(["roomcast", "--tls-key", "k.pem"]).is_err());
    }

    #[test]
    fn seconds_take_fractions_and_refuse_nonsense() {
        assert_eq!(seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e12"] {
            assert!(seconds(bad).is_err(), "{bad} accepted");
        }
        assert!(Config::try_parse_from(["roomcast", "--history", "0"]).is_err());
    }

    #[test]
    fn sizes_take_suffixes_and_refuse_nonsense() {
        assert_eq!(bytes("65536").unwrap(), 65536);
        assert_eq!(bytes("64K").unwrap(), 65536);
        assert_eq!(bytes("1m").unwrap(), 1 << 20);
        assert_eq!(bytes("2G").unwrap(), 2 << 30);
        for bad in ["", "M", "-1", "1.5M", "1T", "99999999999999999999G"] {
            assert!(bytes(bad).is_err(), "{bad:?} accepted");
        }
    }
}
