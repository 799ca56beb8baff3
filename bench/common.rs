//! What the benchmark programs share: a throwaway Postgres database and the Redis URL.
// Each benchmark program compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// The allocator of the `conveyor` binary (`src/main.rs`): a benchmark that runs the
/// workers or the api in its own process measures them as they are deployed, not
/// under glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fresh database `conveyor_bench_<id>` on `BENCH_DATABASE_URL`'s server (default:
/// the local one), dropped by [`BenchDatabase::drop_now`].
pub(crate) struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    /// The new database's URL.
    pub(crate) url: String,
    /// `BENCH_REDIS_URL`, default the local Redis.
    pub(crate) redis_url: String,
    /// A lowercase ULID, also fit for a queue prefix.
    pub(crate) id: String,
}

impl BenchDatabase {
    /// Creates the database.
    pub(crate) async fn create() -> anyhow::Result<Self> {
        let admin_url = std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let redis_url =
            std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let id = ulid::Ulid::generate().to_string().to_lowercase();
        let name = format!("conveyor_bench_{id}");
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), String::new()), |(b, q)| {
                (b, format!("?{q}"))
            });
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = format!("{server}/{name}{query}");
        Ok(BenchDatabase {
            admin,
            name,
            url,
            redis_url,
            id,
        })
    }

    /// A Conveyor configuration (defaults and environment) on this database and Redis,
    /// with a queue prefix of its own.
    pub(crate) fn config(&self) -> conveyor::Config {
        Self::config_for(&self.url, &self.redis_url, &self.id)
    }

    /// The configuration of run `id` on these backends (also for child processes).
    pub(crate) fn config_for(url: &str, redis_url: &str, id: &str) -> conveyor::Config {
        use clap::Parser;
        #[derive(Parser)]
        struct ConfigOnly {
            #[command(flatten)]
            config: conveyor::Config,
        }
        let mut config = ConfigOnly::parse_from(["bench"]).config;
        config.backends.database_url = url.to_owned();
        config.backends.redis_url = Some(redis_url.to_owned());
        config.backends.queue_prefix = format!("bench{id}");
        config.backends.database_max_connections = 32;
        config
    }

    /// Drops the database, closing whatever still uses it, and deletes the run's keys
    /// from Redis (its queues, apalis's worker registrations, the run's own keys: all
    /// named after the run's prefix, `bench<id>`) and its queues from apalis's list.
    pub(crate) async fn drop_now(self) -> anyhow::Result<()> {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        let mut conn = redis::Client::open(self.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let keys: Vec<String> = {
            use futures::TryStreamExt;
            use redis::AsyncCommands;
            conn.scan_match::<_, String>(format!("bench{}*", self.id))
                .await?
                .try_collect()
                .await?
        };
        for chunk in keys.chunks(1_000) {
            redis::cmd("DEL")
                .arg(chunk)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        // apalis-redis also lists every queue a worker registered on in one shared set.
        const APALIS_QUEUES: &str = "core:apalis:queues:list";
        let registered: Vec<String> = redis::cmd("ZRANGE")
            .arg(APALIS_QUEUES)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let ours = format!("bench{}-", self.id);
        let ours: Vec<&String> = registered.iter().filter(|q| q.starts_with(&ours)).collect();
        if !ours.is_empty() {
            redis::cmd("ZREM")
                .arg(APALIS_QUEUES)
                .arg(ours)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// An api and `workers` worker pools running in this process over `config`.
pub(crate) struct System {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// The connected backends.
    pub(crate) backends: conveyor::Backends,
    stop: tokio::sync::watch::Sender<bool>,
    roles: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl System {
    /// Connects (with migrations), then starts the api on port 0 and the workers.
    pub(crate) async fn start(config: conveyor::Config, workers: usize) -> anyhow::Result<Self> {
        let backends = conveyor::connect(&config, true).await?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut roles = vec![tokio::spawn(conveyor::run(
            conveyor::Role::Api,
            config.clone(),
            backends.clone(),
            Some(listener),
            until_stopped(),
        ))];
        for _ in 0..workers {
            roles.push(tokio::spawn(conveyor::run(
                conveyor::Role::Worker,
                config.clone(),
                backends.clone(),
                None,
                until_stopped(),
            )));
        }
        Ok(System {
            base,
            backends,
            stop,
            roles,
        })
    }

    /// Stops every role gracefully and waits for them.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for role in self.roles {
            role.await??;
        }
        Ok(())
    }
}
