//! Sustained `GET /impression` load on Redis + Postgres, with the counts checked
//! exact afterwards.
//!
//! C clients send impressions for D seconds against an in-process api with W worker
//! pools; prints requests/s accepted, the lag between the last request and the last
//! count applied, and whether the counters equal the number of 200s.
//!
//! ```sh
//! cargo bench --bench ads_load -- --clients 200 --seconds 20 --workers 2
//! ```
//! Backends: `BENCH_DATABASE_URL` (a fresh `conveyor_bench_<id>` database is made and
//! dropped) and `BENCH_REDIS_URL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Worker pools.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Concurrency of each pool.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Distinct users the impressions are spread over.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

#[path = "common.rs"]
mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bench_db = common::BenchDatabase::create().await?;
    let mut config = bench_db.config();
    config.worker.concurrency = args.concurrency;
    let system = common::System::start(config, args.workers).await?;
    let base = system.base.clone();
    engine::http::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        let client = client.clone();
        let base = base.clone();
        let (ok, other) = (ok.clone(), other.clone());
        let users = args.users;
        tasks.spawn(async move {
            let mut i = c;
            while Instant::now() < stop_at {
                let url = format!(
                    "{base}/impression?sdk_version=bench&session_id=s&platform=ios&username=u{}&country_code=DE",
                    i % users
                );
                match client.get(url).send().await {
                    Ok(r) if r.status().as_u16() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
                i += 7;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let load_secs = started.elapsed().as_secs_f64();
    let last_request = Instant::now();
    let sent = ok.load(Ordering::Relaxed);
    println!(
        "clients={} seconds={} workers={}x{}: {sent} impressions accepted ({} not 200) = {:.0} req/s",
        args.clients,
        args.seconds,
        args.workers,
        args.concurrency,
        other.load(Ordering::Relaxed),
        sent as f64 / load_secs
    );
    let counted = loop {
        let body: Value = client
            .get(format!("{base}/statistics?sdk=bench"))
            .send()
            .await?
            .json()
            .await?;
        let counted = body["bench"]["impressions"].as_u64().unwrap_or(0);
        if counted >= sent || last_request.elapsed() > Duration::from_secs(600) {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "last count applied {:.2} s after the last request; counted {counted} of {sent}: {}",
        last_request.elapsed().as_secs_f64(),
        if counted == sent { "exact" } else { "MISMATCH" }
    );
    system.stop().await?;
    bench_db.drop_now().await?;
    Ok(())
}
