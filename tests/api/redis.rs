//! A redis-server of a test's own, on a free port (Debian's package
//! redis-server). Shared by the API and browser tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long Redis may take to start before the test fails.
const START: Duration = Duration::from_secs(10);

const REDIS_SERVER: &str = "redis-server";

/// A redis-server of this test's own, persisting to a temporary folder so
/// a restart keeps what it had (as a production Redis should).
pub struct Redis {
    port: u16,
    dir: TempDir,
    process: Option<Child>,
}

impl Redis {
    /// Starts one, or says SKIPPED and returns `None` if there is none.
    pub fn start() -> Option<Redis> {
        let found = Command::new(REDIS_SERVER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            let required = std::env::var("ROOMCAST_REQUIRE_REDIS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "ROOMCAST_REQUIRE_REDIS=1 but {REDIS_SERVER} is missing (apt-get install redis-server)"
            );
            eprintln!(
                "SKIPPED: {REDIS_SERVER} is not installed (Debian package redis-server); \
                 the several-node tests did not run"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            port,
            dir: TempDir::new().unwrap(),
            process: None,
        };
        redis.run();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it answers PING.
    pub fn run(&mut self) {
        let process = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.process = Some(process);
        let deadline = Instant::now() + START;
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        conn.write_all(b"PING\r\n").is_ok()
            && conn.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Stops it the polite way (SIGTERM: it writes what it has); `run`
    /// starts it again on the same port and folder.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = process.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = process.wait();
        }
    }

    /// Freezes it (SIGSTOP), or thaws it (SIGCONT): commands sent while it
    /// is frozen wait in the socket and run when it thaws.
    pub fn freeze(&self, frozen: bool) {
        if let Some(process) = &self.process {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let pid = process.id().to_string();
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
