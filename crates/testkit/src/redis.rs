//! A real `redis-server` for tests, on a free loopback port, killed when
//! dropped.
//!
//! `scripts/test.sh` installs the Debian package. No mock: what is tested is
//! the code against the store it will really meet (the session store's Lua
//! scripts, the node's degraded mode when Redis dies). No persistence, its
//! working directory a temporary one, so nothing outlives the test. This is
//! the tests' one way to start Redis; `sessionlab up --mode redis` has its
//! own in the lab, which logs into the run folder and records the pid.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`; see the module docs.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start on a free port and wait until it accepts connections.
    pub fn start() -> RedisServer {
        RedisServer::start_on(crate::free_port())
    }

    /// Start on `port` (to bring a killed server back where clients expect
    /// it) and wait until it accepts connections.
    pub fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(sessionlab_wire::redis_server::scratch_args(port))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let mut server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = server.child.try_wait().expect("waiting for redis-server");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "redis-server did not start on port {port} ({exited:?})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL it and wait until it is gone.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
