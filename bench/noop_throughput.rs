//! No-op throughput and latency of Conveyor's Redis path.
//!
//! Pushes N `system.noop` tasks, then drains them with W in-process workers, and
//! prints jobs/s for both phases. Modes:
//! - `pipeline` (default): the real thing. Each job has its record on Postgres; the
//!   workers claim, run and record every job (`queued → running → succeeded`).
//!   `--unbatched` writes every record on its own instead of group-committing them.
//! - `queue`: the queue alone. Tasks carry no record and the handler only counts;
//!   this is the ceiling the pipeline can reach.
//! - `latency`: light load. One task at a time, `--gap-ms` apart, with the workers
//!   already idle and waiting; prints the time from push to handler start
//!   (p50/p90/p99/max) over `--n` tasks.
//!
//! The last line printed is one JSON object with the figures, for `bench/compare.sh`.
//!
//! ```sh
//! cargo bench --bench noop_throughput -- --n 100000 --workers 2 --concurrency 32
//! cargo bench --bench noop_throughput -- --mode latency --n 2000
//! ```
//! Backends: `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; a fresh
//! database `conveyor_bench_<id>` is created on that server and dropped afterwards).
//! `BENCH_SCHEMA_SQL`, when set, is run on that database after the migrations, to
//! measure a schema variant (say, an index dropped) beside the migrated schema; the
//! JSON line of the `pipeline` and `queue` modes names it (`latency` reads no record).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use engine::queue::{ConsumerConfig, Handler};
use engine::store::Created;
use engine::{Envelope, Job, JobId, JobStatus, NewJob, Task, TaskId};
use features::system::Noop;
use futures::{FutureExt, StreamExt};

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
    /// `pipeline` (records on Postgres), `queue` (queue only) or `latency`.
    #[arg(long, default_value = "pipeline")]
    mode: String,
    /// Pipeline: write each record on its own (no group commit).
    #[arg(long)]
    unbatched: bool,
    /// Latency: pause between two pushes, in ms.
    #[arg(long, default_value_t = 5)]
    gap_ms: u64,
    /// Producers pushing at once.
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// Drain in this many child processes (each with `--workers` consumers) instead
    /// of in this process.
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// Internal: run as a drain-only child of the run with this id.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

#[path = "common.rs"]
mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(id) = &args.child {
        return child(&args, id).await;
    }
    let bench_db = common::BenchDatabase::create().await?;
    let id = bench_db.id.clone();
    let mut config = bench_db.config();
    config.delivery.fetch_batch = args.fetch_batch;
    let delivery = config.delivery.clone();
    let system = conveyor::connect(&config, true).await?;
    let schema_sql = std::env::var("BENCH_SCHEMA_SQL")
        .map(|sql| sql.trim().to_owned())
        .ok()
        .filter(|sql| !sql.is_empty());
    if let Some(sql) = &schema_sql {
        use sea_orm::ConnectionTrait;
        if let Err(err) = system.store.db().execute_unprepared(sql).await {
            // A variant that does not apply leaves no database behind.
            bench_db.drop_now().await?;
            return Err(anyhow::Error::from(err).context("BENCH_SCHEMA_SQL"));
        }
    }
    let queue = system.queue.clone();
    let store = if args.unbatched {
        system.store.clone().unbatched()
    } else {
        system.store.clone()
    };
    if args.mode == "latency" {
        let result = latency(&args, &queue).await;
        bench_db.drop_now().await?;
        return result;
    }

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
                let task = if pipeline {
                    let job = NewJob::of::<Noop>(&Default::default(), 5)?;
                    let Created::New(job) = store.create(job).await? else {
                        anyhow::bail!("a job without a key is always new");
                    };
                    store.first_task(&job)
                } else {
                    bare_task()
                };
                queue.push(&task, Duration::ZERO).await?;
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

    // Phase 2: drain, here or in child processes.
    let started;
    if args.processes > 0 {
        started = drain_in_processes(&args, &bench_db, pushed).await?;
    } else {
        let done = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        started = Instant::now();
        let mut consumers = drain(
            &args,
            &store,
            &system,
            &delivery,
            &id,
            done.clone(),
            stop_rx,
        );
        while done.load(Ordering::Relaxed) < pushed {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if started.elapsed() > Duration::from_secs(1_800) {
                anyhow::bail!("drain took over 30 minutes");
            }
        }
        let _ = stop_tx.send(true);
        while consumers.join_next().await.is_some() {}
    }
    let drain_secs = started.elapsed().as_secs_f64();
    println!(
        "drain:   {pushed} in {drain_secs:.2} s = {:.0} jobs/s",
        pushed as f64 / drain_secs
    );

    if pipeline {
        let counts = store.queue_counts().await?;
        println!("records: {counts:?}");
        let succeeded: u64 = counts
            .iter()
            .filter(|c| c.status == JobStatus::Succeeded)
            .map(|c| c.count)
            .sum();
        anyhow::ensure!(
            succeeded == pushed,
            "{succeeded} of {pushed} records say succeeded"
        );
    }
    let mut line = serde_json::json!({
        "system": "conveyor",
        "mode": if args.unbatched { format!("{}-unbatched", args.mode) } else { args.mode.clone() },
        "n": pushed,
        "enqueue_per_s": (pushed as f64 / enqueue_secs).round(),
        "process_per_s": (pushed as f64 / drain_secs).round(),
    });
    if let Some(sql) = schema_sql {
        line["schema_sql"] = sql.into();
    }
    println!("{line}");
    bench_db.drop_now().await?;
    Ok(())
}

/// A task of no job (the queue path alone: nothing reads a record).
fn bare_task() -> Task {
    Task {
        queue: Noop::KIND.queue.to_owned(),
        envelope: Envelope {
            job_id: JobId::generate(),
            task_id: TaskId::generate(),
            kind: Noop::KIND.name.to_owned(),
            args: None,
        },
    }
}

/// `args.workers` consumers in this process, counting finished tasks in `done`, until
/// `stop` says so.
fn drain(
    args: &Args,
    store: &engine::JobStore,
    system: &conveyor::Backends,
    delivery: &engine::config::DeliveryConfig,
    id: &str,
    done: Arc<AtomicU64>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<Result<(), engine::queue::QueueError>> {
    let pipeline = args.mode == "pipeline";
    let queue = &system.queue;
    let executor = worker::executor::Executor::new(
        store.clone(),
        queue.clone(),
        system.registry.clone(),
        delivery.clone(),
        system.metrics.clone(),
    );
    let mut consumers = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        let done = done.clone();
        let executor = executor.clone();
        let name = format!("bench-{id}-{}-{w}", std::process::id());
        let handler: Handler = {
            let name = name.clone();
            Arc::new(move |task| {
                let done = done.clone();
                let executor = executor.clone();
                let name = name.clone();
                async move {
                    if pipeline {
                        executor.execute(task, &name).await;
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
            paused: None,
        };
        consumers.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            queue.consume("default", consumer, handler, shutdown).await
        });
    }
    consumers
}

/// Redis keys of a multi-process drain: children report ready and finished counts;
/// the parent says go.
fn child_keys(id: &str) -> (String, String, String) {
    (
        format!("bench{id}:ready"),
        format!("bench{id}:go"),
        format!("bench{id}:done"),
    )
}

/// Spawns `args.processes` copies of this program as drain-only children, starts
/// the clock once all are connected, and waits until they have finished `pushed`
/// tasks; returns when the clock started.
async fn drain_in_processes(
    args: &Args,
    bench_db: &common::BenchDatabase,
    pushed: u64,
) -> anyhow::Result<Instant> {
    let (ready_key, go_key, done_key) = child_keys(&bench_db.id);
    let redis = redis::Client::open(bench_db.redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let exe = std::env::current_exe()?;
    let mut children = Children(Vec::new());
    for _ in 0..args.processes {
        children.0.push(
            std::process::Command::new(&exe)
                .args([
                    "--child",
                    &bench_db.id,
                    "--mode",
                    &args.mode,
                    "--workers",
                    &args.workers.to_string(),
                    "--concurrency",
                    &args.concurrency.to_string(),
                    "--fetch-batch",
                    &args.fetch_batch.to_string(),
                ])
                .args(args.unbatched.then_some("--unbatched"))
                .env("BENCH_CHILD_DATABASE_URL", &bench_db.url)
                .spawn()?,
        );
    }
    let wait_start = Instant::now();
    loop {
        let ready: Option<u64> = redis::cmd("GET")
            .arg(&ready_key)
            .query_async(&mut conn)
            .await?;
        if ready.unwrap_or(0) >= args.processes as u64 {
            break;
        }
        anyhow::ensure!(
            wait_start.elapsed() < Duration::from_secs(60),
            "the children did not connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let () = redis::cmd("SET")
        .arg(&go_key)
        .arg(1)
        .query_async(&mut conn)
        .await?;
    loop {
        let done: Option<u64> = redis::cmd("GET")
            .arg(&done_key)
            .query_async(&mut conn)
            .await?;
        if done.unwrap_or(0) >= pushed {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1_800),
            "drain took over 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let finished = started.elapsed();
    drop(children);
    let () = redis::cmd("DEL")
        .arg(&ready_key)
        .arg(&go_key)
        .arg(&done_key)
        .query_async(&mut conn)
        .await?;
    // The caller reads the elapsed time from the returned instant.
    Ok(Instant::now() - finished)
}

/// Child processes, killed when dropped (also when the parent fails early).
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A drain-only child: connects, says ready, waits for go, drains and reports its
/// count every 10 ms until killed.
async fn child(args: &Args, id: &str) -> anyhow::Result<()> {
    let url = std::env::var("BENCH_CHILD_DATABASE_URL")?;
    let redis_url =
        std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = common::BenchDatabase::config_for(&url, &redis_url, id);
    config.delivery.fetch_batch = args.fetch_batch;
    let system = conveyor::connect(&config, false).await?;
    let store = if args.unbatched {
        system.store.clone().unbatched()
    } else {
        system.store.clone()
    };
    let (ready_key, go_key, done_key) = child_keys(id);
    let redis = redis::Client::open(redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let _: u64 = redis::cmd("INCR")
        .arg(&ready_key)
        .query_async(&mut conn)
        .await?;
    loop {
        let go: Option<u64> = redis::cmd("GET")
            .arg(&go_key)
            .query_async(&mut conn)
            .await?;
        if go.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let _consumers = drain(
        args,
        &store,
        &system,
        &config.delivery,
        id,
        done.clone(),
        stop_rx,
    );
    let mut reported = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = done.load(Ordering::Relaxed);
        if now > reported {
            let _: u64 = redis::cmd("INCRBY")
                .arg(&done_key)
                .arg(now - reported)
                .query_async(&mut conn)
                .await?;
            reported = now;
        }
    }
}

/// Push-to-handler-start latency at light load: one task at a time into idle workers.
async fn latency(args: &Args, queue: &engine::Queue) -> anyhow::Result<()> {
    let pushed_at: Arc<std::sync::Mutex<std::collections::HashMap<TaskId, Instant>>> =
        Arc::default();
    let (sample_tx, mut samples) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut consumers = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        let handler: Handler = {
            let pushed_at = pushed_at.clone();
            let sample_tx = sample_tx.clone();
            Arc::new(move |task: Task| {
                let started = Instant::now();
                let pushed = pushed_at
                    .lock()
                    .map(|mut m| m.remove(&task.envelope.task_id))
                    .ok()
                    .flatten();
                if let Some(pushed) = pushed {
                    let _ = sample_tx.send(started - pushed);
                }
                async {}.boxed()
            })
        };
        let queue = queue.clone();
        let mut stop = stop_rx.clone();
        let consumer = ConsumerConfig {
            worker_name: format!("latency-{w}"),
            concurrency: args.concurrency,
            paused: None,
        };
        consumers.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            queue.consume("default", consumer, handler, shutdown).await
        });
    }
    // Let the consumers reach their idle wait before the first push.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::with_capacity(args.n as usize);
    for _ in 0..args.n {
        let task = bare_task();
        if let Ok(mut m) = pushed_at.lock() {
            m.insert(task.envelope.task_id, Instant::now());
        }
        queue.push(&task, Duration::ZERO).await?;
        let sample = tokio::time::timeout(Duration::from_secs(5), samples.recv())
            .await
            .map_err(|_| anyhow::anyhow!("a task was not started within 5 s"))?
            .ok_or_else(|| anyhow::anyhow!("the consumers stopped"))?;
        latencies.push(sample);
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let _ = stop_tx.send(true);
    while consumers.join_next().await.is_some() {}
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i].as_secs_f64() * 1_000.0
    };
    let (p50, p90, p99, max) = (at(0.5), at(0.9), at(0.99), at(1.0));
    println!(
        "latency over {} tasks: p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms",
        latencies.len()
    );
    println!(
        "{}",
        serde_json::json!({
            "system": "conveyor", "mode": "latency", "n": latencies.len(),
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
        })
    );
    Ok(())
}
