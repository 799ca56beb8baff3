//! Load on the fan-out routes against the sandbox's unreliable work server.
//!
//! Starts `conveyor sandbox` and `conveyor api` (release binaries, loopback only), then
//! for each route runs C concurrent clients for D seconds and prints requests/s,
//! status counts, p50/p99 latency, the p99 overshoot past the timeout, and the api's
//! peak memory (VmHWM).
//!
//! ```sh
//! cargo build --release && cargo bench --bench fanout_load -- --clients 1000 --seconds 10
//! ```

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients per route.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Seconds of load per route.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The `timeout` query parameter, in ms.
    #[arg(long, default_value_t = 800)]
    timeout_ms: u64,
    /// Api port (loopback).
    #[arg(long, default_value_t = 5090)]
    api_port: u16,
    /// Sandbox port (loopback).
    #[arg(long, default_value_t = 5091)]
    sandbox_port: u16,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary() -> std::path::PathBuf {
    let here = std::env::current_exe().expect("current exe");
    // target/release/deps/fanout_load-… → target/release/conveyor
    here.parent()
        .and_then(|deps| deps.parent())
        .map(|release| release.join("conveyor"))
        .expect("target dir")
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = binary();
    anyhow::ensure!(
        bin.exists(),
        "build the binary first: cargo build --release ({})",
        bin.display()
    );
    let dir = tempfile::tempdir()?;
    let sandbox = Command::new(&bin)
        .arg("sandbox")
        .env(
            "SANDBOX_BIND_ADDR",
            format!("127.0.0.1:{}", args.sandbox_port),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let api = Command::new(&bin)
        .arg("api")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/load.db?mode=rwc", dir.path().display()),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{}", args.api_port))
        .env(
            "WORK_URL",
            format!("http://127.0.0.1:{}/work", args.sandbox_port),
        )
        .env("FANOUT_MAX_INFLIGHT", (args.clients * 3).to_string())
        // Every simulated client shares one address: the per-client bound would be
        // the only thing measured.
        .env(
            "FANOUT_MAX_INFLIGHT_PER_CLIENT",
            (args.clients * 3).to_string(),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let api_pid = api.id();
    let _children = Children(vec![sandbox, api]);
    // The api role does not migrate; a migrate run prepares the database first.
    let status = Command::new(&bin)
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/load.db?mode=rwc", dir.path().display()),
        )
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(status.success(), "migrate failed");

    engine::http::install_tls_provider();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let base = format!("http://127.0.0.1:{}", args.api_port);
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "clients={} seconds={} timeout={} ms (sandbox: 100–600 ms, 10% 500, 5% 429, 5% bad JSON, 5% hang)",
        args.clients, args.seconds, args.timeout_ms
    );
    println!(
        "{:<16} {:>8} {:>9} {:>8} {:>8} {:>11}  statuses",
        "route", "req", "req/s", "p50_ms", "p99_ms", "over_p99_ms"
    );
    for route in ["all", "first", "within-timeout", "smart"] {
        let url = format!("{base}/api/{route}?timeout={}", args.timeout_ms);
        let samples = Arc::new(Mutex::new(Vec::<(u16, Duration)>::new()));
        let stop_at = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.clients {
            let client = client.clone();
            let url = url.clone();
            let samples = samples.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < stop_at {
                    let sent = Instant::now();
                    let status = match client.get(&url).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    mine.push((status, sent.elapsed()));
                }
                samples.lock().await.extend(mine);
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        let samples = samples.lock().await;
        let mut latencies: Vec<Duration> = samples.iter().map(|(_, d)| *d).collect();
        latencies.sort_unstable();
        let timeout = Duration::from_millis(args.timeout_ms);
        let mut over: Vec<Duration> = latencies
            .iter()
            .map(|d| d.saturating_sub(timeout))
            .collect();
        over.sort_unstable();
        let mut statuses = BTreeMap::new();
        for (status, _) in samples.iter() {
            *statuses.entry(*status).or_insert(0u64) += 1;
        }
        println!(
            "{route:<16} {:>8} {:>9.0} {:>8} {:>8} {:>11}  {statuses:?}",
            samples.len(),
            samples.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50).as_millis(),
            percentile(&latencies, 0.99).as_millis(),
            percentile(&over, 0.99).as_millis(),
        );
    }
    match peak_rss_kib(api_pid) {
        Some(kib) => println!("api peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("api peak memory: unavailable"),
    }
    Ok(())
}
