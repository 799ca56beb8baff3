//! Server-report ingest and read latency on Redis + Postgres.
//!
//! 1. Ingest: C clients post N single reports (`POST /process_report`); prints
//!    reports/s accepted, then reports/s persisted (until the statistics count them).
//! 2. Reads: grows the data set with batches to each of the sizes given (reports over
//!    `--servers` servers) and times `GET /process_statistics`, the per-server
//!    variant and `GET /process_outliers` (p50/p99 of R requests) at each size.
//!
//! ```sh
//! cargo bench --bench reports_load -- --workers 2 --single 20000 --sizes 10000,100000,1000000
//! ```
//! Backends: `BENCH_DATABASE_URL` (a fresh `conveyor_bench_<id>` database is made on
//! that server and dropped) and `BENCH_REDIS_URL`.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// Worker pools (each its own consumers).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Concurrency of each worker pool.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Single reports posted in the ingest phase.
    #[arg(long, default_value_t = 20_000)]
    single: usize,
    /// Concurrent clients of the ingest phase.
    #[arg(long, default_value_t = 128)]
    clients: usize,
    /// Servers the reports are spread over.
    #[arg(long, default_value_t = 100_000)]
    servers: usize,
    /// Total report counts at which reads are timed.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    /// Requests per read measurement.
    #[arg(long, default_value_t = 30)]
    reads: usize,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn report(server: usize, seconds: i64) -> Value {
    let end = 1_621_246_353 + seconds;
    json!({
        "server_name": format!("server-{server:06}"),
        "start_time": "2021-05-17T10:12:33Z",
        "end_time": chrono::DateTime::from_timestamp(end, 0).map(|t| t.to_rfc3339()),
    })
}

fn duration_of(i: usize) -> i64 {
    // Deterministic spread 100–699 s, with a rare spike so some servers are outliers.
    if i.is_multiple_of(997) {
        5_000
    } else {
        100 + ((i * 7_919) % 600) as i64
    }
}

async fn wait_for_count(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        let body: Value = client
            .get(format!("{base}/process_statistics"))
            .send()
            .await?
            .json()
            .await?;
        let count = body["count"]
            .as_u64()
            .or_else(|| body["total"].as_u64())
            .unwrap_or(0);
        if count as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not persisted within an hour: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn time_reads(
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> anyhow::Result<(Duration, Duration, u16)> {
    let mut times = Vec::with_capacity(n);
    let mut status = 0;
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        status = response.status().as_u16();
        let _ = response.bytes().await?;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((p(0.5), p(0.99), status))
}

#[path = "common.rs"]
mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bench_db = common::BenchDatabase::create().await?;
    let mut config = bench_db.config();
    config.features.reports.min_total = 1;
    config.features.reports.min_per_server = 1;
    config.worker.concurrency = args.concurrency;
    let system = common::System::start(config, args.workers).await?;
    let base = system.base.clone();
    engine::http::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    println!(
        "workers={} concurrency={} single={} clients={} servers={}",
        args.workers, args.concurrency, args.single, args.clients, args.servers
    );

    // 1. Ingest of single reports.
    let started = Instant::now();
    let accepted = futures::stream::iter(0..args.single)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/process_report");
            async move {
                let body = report(i % args.servers, duration_of(i));
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 202)
            }
        })
        .buffer_unordered(args.clients)
        .filter(|ok| futures::future::ready(matches!(ok, Ok(true))))
        .count()
        .await;
    let accept_secs = started.elapsed().as_secs_f64();
    wait_for_count(&client, &base, accepted).await?;
    let persist_secs = started.elapsed().as_secs_f64();
    println!(
        "ingest: {accepted} accepted in {accept_secs:.2} s = {:.0} reports/s; persisted in {persist_secs:.2} s = {:.0} reports/s",
        accepted as f64 / accept_secs,
        accepted as f64 / persist_secs
    );

    // 2. Reads at growing sizes.
    let mut stored = accepted;
    println!(
        "{:>9} {:>22} {:>22} {:>22}",
        "reports", "statistics p50/p99 ms", "per-server p50/p99 ms", "outliers p50/p99 ms"
    );
    for &size in &args.sizes {
        let batch_size = 10_000;
        let started = Instant::now();
        while stored < size {
            let n = batch_size.min(size - stored);
            let batch: Vec<Value> = (stored..stored + n)
                .map(|i| report(i % args.servers, duration_of(i)))
                .collect();
            let response = client
                .post(format!("{base}/process_reports"))
                .json(&batch)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().as_u16() == 202,
                "batch refused: {}",
                response.text().await?
            );
            stored += n;
        }
        wait_for_count(&client, &base, stored).await?;
        let grow_secs = started.elapsed().as_secs_f64();
        let stats = time_reads(&client, &format!("{base}/process_statistics"), args.reads).await?;
        let one = time_reads(
            &client,
            &format!("{base}/process_statistics?server_name=server-000042"),
            args.reads,
        )
        .await?;
        let outliers = time_reads(
            &client,
            &format!("{base}/process_outliers"),
            args.reads.min(10),
        )
        .await?;
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        println!(
            "{stored:>9} {:>14.1}/{:<7.1} {:>14.1}/{:<7.1} {:>14.1}/{:<7.1}  (grew in {grow_secs:.1} s; statuses {} {} {})",
            ms(stats.0),
            ms(stats.1),
            ms(one.0),
            ms(one.1),
            ms(outliers.0),
            ms(outliers.1),
            stats.2,
            one.2,
            outliers.2
        );
    }

    system.stop().await?;
    bench_db.drop_now().await?;
    Ok(())
}
