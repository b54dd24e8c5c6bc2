//! `cluster`: the `saturate` load over two nodes sharing the room through
//! a redis-server of the benchmark's own (Debian's package; without it the
//! row says SKIPPED, or fails under ROOMCAST_REQUIRE_REDIS=1, as in CI). Subscribers and posters alternate between the nodes,
//! so every message crosses Redis to reach half of its subscribers.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{saturate, Row, Target, LIFTED};

/// A redis-server on a free port, persisting as the README advises
/// (append-only file, fsync every second), in a temporary folder.
pub(super) struct Redis {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Redis {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// A redis-server for the row `name`, or the row saying it was
    /// SKIPPED (failed under ROOMCAST_REQUIRE_REDIS=1).
    pub(super) fn for_row(name: &str) -> Result<Redis, Row> {
        if let Some(redis) = Redis::start() {
            return Ok(redis);
        }
        let mut row = Row::new(name);
        println!("{name}: SKIPPED, redis-server is not installed (Debian package redis-server)");
        row.figure("skipped", "no redis-server");
        if std::env::var("ROOMCAST_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            row.failures
                .push("ROOMCAST_REQUIRE_REDIS=1 but redis-server is missing".into());
        }
        Err(row)
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Two nodes on one Redis, `subs` subscribers and the posters split between
/// them, for `secs`.
pub async fn two_nodes(binary: &str, subs: usize, secs: u64) -> Row {
    let redis = match Redis::for_row("cluster/2-nodes") {
        Ok(redis) => redis,
        Err(skipped) => return skipped,
    };
    let url = redis.url();
    let mut flags = LIFTED.to_vec();
    flags.extend(["--redis", &url]);
    let nodes = [Target::start(binary, &flags), Target::start(binary, &flags)];
    let row = saturate(
        "cluster/2-nodes",
        &[nodes[0].addr, nodes[1].addr],
        subs,
        secs,
    )
    .await;
    drop(nodes);
    drop(redis);
    row
}
