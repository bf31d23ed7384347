//! The empty-service reference: a tonic server (same tonic as the sidecar, default
//! multi-threaded runtime) serving only the standard `grpc.health.v1.Health/Check`, run as its
//! own process (`switchboard-load empty-server`) so it gets the same share of the machine the
//! sidecar gets. What the generator reaches against it is the most any gRPC service can do here.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::Context;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// `switchboard-load empty-server`: serves until stdin closes; prints `listening ADDR` first.
pub fn serve(addr: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening {}", listener.local_addr()?);
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                let stdin = std::io::stdin();
                while stdin
                    .lock()
                    .read_line(&mut line)
                    .map(|n| n > 0)
                    .unwrap_or(false)
                {
                    line.clear();
                }
            })
            .await;
        };
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), stdin_closed)
            .await?;
        Ok(())
    })
}

/// The reference server as a child process; stopped when dropped (its stdin closes).
pub struct EmptyServer {
    pub pid: u32,
    pub addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl EmptyServer {
    pub fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["empty-server", "--addr", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start the empty reference server")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("empty server said {line:?}"))?
            .parse()?;
        Ok(EmptyServer {
            pid: child.id(),
            addr,
            child,
            stdin,
        })
    }
}

impl Drop for EmptyServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
