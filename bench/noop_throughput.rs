//! No-op throughput of Conveyor's Redis path.
//!
//! Pushes N `system.noop` tasks, then drains them with W in-process workers, and
//! prints jobs/s for both phases. Two modes:
//! - `pipeline` (default): the real thing. Each job has its record on Postgres; the
//!   workers claim, run and record every job (`queued → running → succeeded`).
//! - `queue`: the queue alone. Tasks carry no record and the handler only counts;
//!   this is the ceiling the pipeline can reach.
//!
//! ```sh
//! cargo bench --bench noop_throughput -- --n 100000 --workers 2 --concurrency 32
//! ```
//! Backends: `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; a fresh
//! database `conveyor_bench_<id>` is created on that server and dropped afterwards).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{FutureExt, StreamExt};
use jobs::JobKind;
use jobs::envelope::Envelope;
use jobs::queue::{ConsumerConfig, Handler};
use jobs::store::{Created, NewJob};

#[derive(Debug, Parser)]
struct Args {
    /// Tasks to push and drain.
    #[arg(long, default_value_t = 100_000)]
    n: u64,
    /// Workers (apalis consumers, each with its own name and fetch loop).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Tasks each worker runs at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Tasks fetched per round trip.
    #[arg(long, default_value_t = 32)]
    fetch_batch: usize,
    /// `pipeline` (records on Postgres) or `queue` (queue only).
    #[arg(long, default_value = "pipeline")]
    mode: String,
    /// Producers pushing at once.
    #[arg(long, default_value_t = 64)]
    producers: usize,
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
    let id = bench_db.id.clone();
    let mut config = bench_db.config();
    config.delivery.fetch_batch = args.fetch_batch;
    let delivery = config.delivery.clone();
    let system = conveyor::connect(&config, true).await?;
    let (queue, store) = (system.queue.clone(), system.store.clone());

    let pipeline = args.mode == "pipeline";
    let n = args.n;
    println!(
        "mode={} n={n} workers={} concurrency={} fetch_batch={}",
        args.mode, args.workers, args.concurrency, args.fetch_batch
    );

    // Phase 1: enqueue.
    let started = Instant::now();
    let pushed = futures::stream::iter(0..n)
        .map(|_| {
            let store = store.clone();
            let queue = queue.clone();
            async move {
                let envelope = if pipeline {
                    let Created::New(job) = store
                        .create(NewJob {
                            kind: JobKind::SystemNoop,
                            args: serde_json::json!({}),
                            max_attempts: 5,
                            idempotency_key: None,
                        })
                        .await?
                    else {
                        anyhow::bail!("a job without a key is always new");
                    };
                    Envelope::of(&job)
                } else {
                    let id = ulid::Ulid::generate().to_string();
                    Envelope {
                        job_id: id.clone(),
                        task_id: id,
                        kind: JobKind::SystemNoop.as_str().to_owned(),
                    }
                };
                queue.push(&envelope, Duration::ZERO).await?;
                Ok(())
            }
        })
        .buffer_unordered(args.producers)
        .fold(0u64, |count, result: anyhow::Result<()>| async move {
            if let Err(err) = result {
                eprintln!("push failed: {err:#}");
                count
            } else {
                count + 1
            }
        })
        .await;
    let enqueue_secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue: {pushed} in {enqueue_secs:.2} s = {:.0} jobs/s",
        pushed as f64 / enqueue_secs
    );

    // Phase 2: drain.
    let done = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let executor = worker::executor::Executor::new(
        store.clone(),
        queue.clone(),
        delivery.clone(),
        worker::handlers::Context {
            metrics: jobs::metrics::Metrics::new(),
            ..worker::handlers::Context::default()
        },
    );
    let started = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        let done = done.clone();
        let executor = executor.clone();
        let name = format!("bench-{id}-{w}");
        let handler: Handler = {
            let name = name.clone();
            Arc::new(move |envelope| {
                let done = done.clone();
                let executor = executor.clone();
                let name = name.clone();
                async move {
                    if pipeline {
                        executor.execute(envelope, &name).await;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                .boxed()
            })
        };
        let queue = queue.clone();
        let mut stop = stop_rx.clone();
        let consumer = ConsumerConfig {
            worker_name: name,
            concurrency: args.concurrency,
        };
        consumers.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            queue.consume("default", consumer, handler, shutdown).await
        });
    }
    while done.load(Ordering::Relaxed) < pushed {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if started.elapsed() > Duration::from_secs(1_800) {
            anyhow::bail!("drain took over 30 minutes");
        }
    }
    let drain_secs = started.elapsed().as_secs_f64();
    println!(
        "drain:   {pushed} in {drain_secs:.2} s = {:.0} jobs/s",
        pushed as f64 / drain_secs
    );
    let _ = stop_tx.send(true);
    while consumers.join_next().await.is_some() {}

    if pipeline {
        let counts = store.queue_counts().await?;
        println!("records: {counts:?}");
    }
    queue.vacuum("default").await?;
    bench_db.drop_now().await?;
    Ok(())
}
