//! Redis servers for tests: each test binary starts its own `redis-server` processes on free
//! ports (never a Redis that happens to be running), and a 3-master cluster for cluster tests.
//!
//! Each server runs under a small shell guard that reads our stdin pipe: when the test
//! process ends — normally, by panic or by abort — the pipe closes and the guard stops the
//! server, so no test leaves a Redis behind.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A `redis-server` child process.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    guard: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

fn redis_server_bin() -> PathBuf {
    which("redis-server").unwrap_or_else(|| {
        panic!("redis-server not found on PATH: run ./scripts/test, which installs it (apt-get install redis-server)")
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A free TCP port whose cluster-bus twin (+10000) is free too.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port(), &[])
    }

    /// Starts a server on `port` with extra arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        // The guard: run the server, wait for our stdin to close, then stop it.
        let script = format!(
            "'{}' {} >/dev/null 2>&1 & r=$!; trap 'kill $r 2>/dev/null' EXIT; while read -r _; do :; done",
            redis_server_bin().display(),
            quoted.join(" ")
        );
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let guard = child.stdin.take();
        let server = RedisServer {
            port,
            child,
            guard,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 16];
                use std::io::Read;
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                if let Ok(n) = s.read(&mut buf)
                    && buf[..n].starts_with(b"+PONG")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// Stops the server now (the port is free again once this returns).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.guard.take());
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A Redis Cluster: 3 masters, slots assigned by `redis-cli --cluster create`, each master
/// with `replicas` replicas (the tests use none; the chaos run of the load generator one each,
/// to fail over).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(0, 2000)
    }

    /// 3 masters with `replicas` replicas each; a node is failed after `node_timeout_ms`.
    pub fn start_with(replicas: usize, node_timeout_ms: u64) -> Self {
        let timeout = node_timeout_ms.to_string();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                let port = free_port();
                RedisServer::start_on(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        &timeout,
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_cli())
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        assert!(
            cluster.wait_ok(Duration::from_secs(20)),
            "redis cluster did not reach cluster_state:ok"
        );
        if replicas > 0 {
            assert!(
                cluster.wait_replicas_synced(Duration::from_secs(20)),
                "the replicas did not finish their first sync"
            );
        }
        cluster
    }

    /// Whether every node that answers reports `cluster_state:ok` within `within`.
    pub fn wait_ok(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        'outer: while Instant::now() < deadline {
            let mut answered = 0;
            for n in &self.nodes {
                let Some(info) = cli(n.port, &["cluster", "info"]) else {
                    continue;
                };
                answered += 1;
                if !info.contains("cluster_state:ok") {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'outer;
                }
            }
            if answered > 0 {
                return true;
            }
        }
        false
    }

    fn wait_replicas_synced(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let synced = self.nodes.iter().all(|n| {
                cli(n.port, &["info", "replication"]).is_some_and(|i| {
                    i.contains("role:master") || i.contains("master_link_status:up")
                })
            });
            if synced {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Ports of the nodes that answer and are masters.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|&p| cli(p, &["role"]).is_some_and(|r| r.starts_with("master")))
            .collect()
    }

    /// The process id of the node on `port` (`INFO server`), while it answers.
    pub fn pid(&self, port: u16) -> Option<u32> {
        cli(port, &["info", "server"])?
            .lines()
            .find_map(|l| l.trim().strip_prefix("process_id:"))?
            .parse()
            .ok()
    }

    /// Waits until every replica has every write its master acknowledged (replication is
    /// asynchronous: a master killed before that takes its last writes with it).
    pub fn wait_replicated(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let caught_up = self.masters().iter().all(|&m| {
                let Some(info) = cli(m, &["info", "replication"]) else {
                    return false;
                };
                let field = |l: &str, k: &str| {
                    l.split(',')
                        .find_map(|f| f.trim().strip_prefix(k).map(str::to_owned))
                };
                let offset = info.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("master_repl_offset:")
                        .map(str::to_owned)
                });
                let replicas: Vec<Option<String>> = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("offset="))
                    .map(|l| field(l, "offset="))
                    .collect();
                !replicas.is_empty() && replicas.iter().all(|r| *r == offset)
            });
            if caught_up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills a master with SIGKILL and waits until its replica is promoted and the cluster is
    /// ok again: its port and the time the takeover took.
    pub fn kill_master(&self, within: Duration) -> (u16, Duration) {
        let port = *self.masters().first().expect("a master answers");
        let pid = self.pid(port).expect("the master's pid");
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill -9");
        assert!(killed.success(), "kill -9 {pid}");
        let at = Instant::now();
        while at.elapsed() < within {
            if self.masters().len() == 3 && self.wait_ok(Duration::from_millis(10)) {
                return (port, at.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no replica took over from master :{port} within {within:?}");
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

fn redis_cli() -> PathBuf {
    which("redis-cli").expect("redis-cli on PATH")
}

/// `redis-cli -p PORT ARGS...`'s output, when the node answered.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new(redis_cli())
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
}

/// One single-node server shared by the tests of this binary (each test uses its own prefix).
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One cluster shared by the tests of this binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}
