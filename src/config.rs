//! The command line: every flag, its environment variable and its default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

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

    /// Events kept per room for history and resume (in memory and on disk).
    #[arg(long, env = "ROOMCAST_HISTORY", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history: u32,

    /// Open streams allowed at once; past it a new stream gets 503 with
    /// Retry-After. Default: what the open-file limit leaves after a reserve.
    #[arg(long, env = "ROOMCAST_MAX_STREAMS")]
    pub max_streams: Option<usize>,

    /// Open streams allowed at once for one visitor (session, else address);
    /// past it, 429.
    #[arg(long, env = "ROOMCAST_MAX_STREAMS_PER_VISITOR", default_value_t = 20)]
    pub max_streams_per_visitor: usize,

    /// Live rooms allowed at once; past it, creating one answers 503.
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Posts a visitor may make at once before the rate applies.
    #[arg(long, env = "ROOMCAST_POST_BURST", default_value_t = 20.0, value_parser = positive)]
    pub post_burst: f64,

    /// Posts per second a visitor's allowance refills by; past it, 429.
    #[arg(long, env = "ROOMCAST_POST_RATE", default_value_t = 2.0, value_parser = positive)]
    pub post_rate: f64,

    /// Rooms a visitor may create at once before the rate applies.
    #[arg(long, env = "ROOMCAST_ROOM_BURST", default_value_t = 5.0, value_parser = positive)]
    pub room_burst: f64,

    /// Rooms per second a visitor's allowance refills by (0.1: one per 10 s).
    #[arg(long, env = "ROOMCAST_ROOM_RATE", default_value_t = 0.1, value_parser = positive)]
    pub room_rate: f64,

    /// A proxy (address or CIDR, repeatable) whose X-Forwarded-For and
    /// X-Forwarded-Proto are believed; from anyone else they are ignored.
    #[arg(long = "trusted-proxy", env = "ROOMCAST_TRUSTED_PROXY", value_delimiter = ',', value_parser = network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Mark the session cookie Secure (also done on its own for requests a
    /// trusted proxy says came over HTTPS).
    #[arg(long, env = "ROOMCAST_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Seconds a stream may leave a write untaken before it is closed (its
    /// client resumes from history later).
    #[arg(long, env = "ROOMCAST_WRITE_TIMEOUT", default_value = "30", value_parser = seconds)]
    pub write_timeout: Duration,

    /// Seconds between keep-alive comments on open streams (fractions allowed).
    #[arg(long, env = "ROOMCAST_KEEP_ALIVE", default_value = "15", value_parser = seconds)]
    pub keep_alive: Duration,

    /// Seconds a member may be gone before "left" is announced (fractions allowed).
    #[arg(long, env = "ROOMCAST_LEAVE_GRACE", default_value = "5", value_parser = seconds)]
    pub leave_grace: Duration,

    /// Seconds a room with nobody connected lives on (fractions allowed).
    #[arg(long, env = "ROOMCAST_ROOM_TTL", default_value = "300", value_parser = seconds)]
    pub room_ttl: Duration,
}

impl Default for Config {
    /// The defaults above, without reading the command line or environment.
    fn default() -> Config {
        Config {
            bind: "127.0.0.1:3030".parse().expect("a valid literal address"),
            db: "roomcast.db".into(),
            redis: None,
            history: 1000,
            max_streams: None,
            trusted_proxies: Vec::new(),
            secure_cookies: false,
            max_streams_per_visitor: 20,
            max_rooms: 10_000,
            post_burst: 20.0,
            post_rate: 2.0,
            room_burst: 5.0,
            room_rate: 0.1,
            write_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
            leave_grace: Duration::from_secs(5),
            room_ttl: Duration::from_secs(300),
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
    fn default_matches_the_flags_defaults() {
        let parsed = Config::try_parse_from(["roomcast"]).unwrap();
        let default = Config::default();
        assert_eq!(parsed.bind, default.bind);
        assert_eq!(parsed.db, default.db);
        assert_eq!(
            parsed.max_streams_per_visitor,
            default.max_streams_per_visitor
        );
        assert_eq!(parsed.max_rooms, default.max_rooms);
        assert_eq!(parsed.post_burst, default.post_burst);
        assert_eq!(parsed.post_rate, default.post_rate);
        assert_eq!(parsed.room_burst, default.room_burst);
        assert_eq!(parsed.room_rate, default.room_rate);
        assert_eq!(parsed.history, default.history);
        assert_eq!(parsed.keep_alive, default.keep_alive);
        assert_eq!(parsed.write_timeout, default.write_timeout);
        assert_eq!(parsed.leave_grace, default.leave_grace);
        assert_eq!(parsed.room_ttl, default.room_ttl);
    }

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
    fn seconds_take_fractions_and_refuse_nonsense() {
        assert_eq!(seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e12"] {
            assert!(seconds(bad).is_err(), "{bad} accepted");
        }
        assert!(Config::try_parse_from(["roomcast", "--history", "0"]).is_err());
    }
}
