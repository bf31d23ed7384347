//! Redis for the run: started by the tool (the test harness of `tests/it/redis_server.rs`:
//! `redis-server` on a free port, `--save "" --appendonly no`, stopped when we exit) unless a URL
//! is given; its counters (`INFO commandstats`, `INFO cpu`, memory); and the raw reference,
//! `redis-benchmark` running an EVALSHA of the check script as `benches/store.rs` does.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, bail};

#[path = "../../tests/it/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

pub use redis_server::{RedisCluster, RedisServer};

/// The check script, the raw EVALSHA of the reference (same as `benches/store.rs`).
const CHECK_LUA: &str = include_str!("../../src/store/lua/check.lua");

/// Where Redis is.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// From `redis://host:port[/db]` (no password, single node).
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("redis://")
            .context("only redis://host:port URLs are supported")?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        if hostport.contains('@') {
            bail!("Redis URLs with credentials are not supported by the load generator");
        }
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
        Ok(Endpoint {
            url: url.to_owned(),
            host: host.to_owned(),
            port: port.parse().context("port")?,
        })
    }

    fn cli(&self) -> Command {
        let mut c = Command::new("redis-cli");
        c.args(["-h", &self.host, "-p", &self.port.to_string()]);
        c
    }

    /// `INFO <section>` as key → value.
    pub fn info(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let out = self
            .cli()
            .args(["INFO", section])
            .output()
            .context("redis-cli")?;
        if !out.status.success() {
            bail!("redis-cli INFO failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// Calls per command (`cmdstat_evalsha` → `evalsha`) since the server started.
    pub fn command_calls(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self
            .info("commandstats")?
            .into_iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?.to_owned();
                let calls = v
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name, calls))
            })
            .collect())
    }

    /// Commands the server processed (`total_commands_processed`).
    pub fn total_commands(&self) -> anyhow::Result<u64> {
        self.info("stats")?
            .get("total_commands_processed")
            .context("total_commands_processed")?
            .parse()
            .context("total_commands_processed")
    }

    /// CPU seconds Redis has used (user + system, main thread and others).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let info = self.info("cpu")?;
        let get = |k: &str| -> f64 {
            info.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(get("used_cpu_sys") + get("used_cpu_user"))
    }

    /// Memory Redis holds for data (`used_memory`), MiB.
    pub fn used_memory_mib(&self) -> anyhow::Result<f64> {
        Ok(self
            .info("memory")?
            .get("used_memory")
            .and_then(|v| v.parse::<f64>().ok())
            .context("used_memory")?
            / (1024.0 * 1024.0))
    }

    /// Keys in the selected database.
    pub fn dbsize(&self) -> anyhow::Result<u64> {
        let out = self.cli().arg("DBSIZE").output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("(integer) ")
            .parse()
            .context("DBSIZE")
    }

    /// `redis-server`'s version.
    pub fn version(&self) -> String {
        self.info("server")
            .ok()
            .and_then(|i| i.get("redis_version").cloned())
            .unwrap_or_else(|| "?".into())
    }

    /// Requests per second of `redis-benchmark` running EVALSHA of the check script (on keys
    /// that do not exist: the script's cheapest path) with `clients` connections.
    pub fn raw_evalsha(&self, clients: usize, requests: usize) -> anyhow::Result<f64> {
        let load = self
            .cli()
            .args(["SCRIPT", "LOAD", CHECK_LUA])
            .output()
            .context("redis-cli SCRIPT LOAD")?;
        let sha = String::from_utf8_lossy(&load.stdout).trim().to_owned();
        if sha.len() != 40 {
            bail!("SCRIPT LOAD returned {sha:?}");
        }
        let digest = "ab".repeat(32);
        let out = Command::new("redis-benchmark")
            .args(["-h", &self.host, "-p", &self.port.to_string()])
            .args([
                "-c",
                &clients.to_string(),
                "-n",
                &requests.to_string(),
                "-q",
            ])
            .args([
                "EVALSHA",
                &sha,
                "3",
                "bench:{x}:v",
                "bench:{x}:b",
                "bench:{x}:vf",
                "1767225600000",
                &digest,
                "2",
                "",
                "0",
                "86400000",
            ])
            .output()
            .context("redis-benchmark (apt-get install redis-tools)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        // Progress lines end in '\r'; the last one reads
        // "EVALSHA ...: 98449.41 requests per second, p50=0.343 msec".
        let last = text
            .rsplit('\r')
            .find(|l| l.contains("requests per second"))
            .unwrap_or("");
        last.split(" requests per second")
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("could not read redis-benchmark output: {text}"))
    }
}

/// Starts `redis-server` on a free port (the test harness's guarded process).
pub fn start_server() -> RedisServer {
    RedisServer::start()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let e = Endpoint::from_url("redis://127.0.0.1:6390/0").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 6390));
        assert_eq!(Endpoint::from_url("redis://h").unwrap().port, 6379);
        assert!(Endpoint::from_url("redis+cluster://a:1,b:2").is_err());
        assert!(Endpoint::from_url("redis://:pw@h:1").is_err());
    }
}
