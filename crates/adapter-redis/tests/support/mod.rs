//! A real `redis-server` per test: on a free loopback port, persistence off, killed on drop.
//!
//! `redis-server` comes from the OS packages (`.ci/run` installs it when missing).

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness is checked meanwhile.
const READY_POLL: Duration = Duration::from_millis(10);

/// A running `redis-server`, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// A new server on a free port.
    pub fn start() -> Self {
        // Another process can take the port between our probe and the server's bind; then
        // the server exits and the next free port is tried.
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = Self::try_start_on(port) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// A new server on `port` (a restart on the port a stopped one had).
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port)
            .unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
    }

    fn try_start_on(port: u16) -> Option<Self> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: these tests run a real one \
                 (`apt-get install redis-server`, which .ci/run does when it is missing)"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let mut server = Self { child, port };
        server.wait_ready().then_some(server)
    }

    /// Polls PING until the server answers (true) or exits (false), within the deadline.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ping(self.addr()) {
                return true;
            }
            std::thread::sleep(READY_POLL);
        }
        panic!(
            "redis-server on port {} did not answer PING in {READY_DEADLINE:?}",
            self.port
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        url_on(self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as when Redis
    /// is overloaded or a network path stalls.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the server and waits until it is gone (its port is free again).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn url_on(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, READY_POLL * 10) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(READY_POLL * 10));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// A plain connection to look at and set the counters behind the store's back.
pub async fn raw_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test server answers")
}
