//! `spawn_app()`: the whole system on port 0 with a fresh database and queue namespace,
//! and a client with typed helpers.
//!
//! Two backend sets run the same tests:
//! - `Embedded`: a temporary SQLite file for job records and queues.
//! - `Production`: Postgres and Redis from `TEST_DATABASE_URL` and `TEST_REDIS_URL`,
//!   or, when those are unset, containers started with testcontainers when a Docker
//!   engine answers, or else throwaway servers started from the installed binaries
//!   (`servers`); a fresh database and a fresh queue prefix per test. With none of the
//!   three, these tests fail (never skip) and say what to install.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use conveyor::{Backends, Config, Role};
use engine::config::{BackendConfig, DeliveryConfig, HousekeepingConfig};
use features::FeaturesConfig;
use serde_json::{Value, json};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which backends a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stack {
    /// SQLite file for records and queues.
    Embedded,
    /// Postgres records, Redis queues.
    Production,
}

/// A running Conveyor and its client.
pub(crate) struct TestApp {
    pub(crate) address: String,
    /// A plain client: it sends only what a test adds.
    pub(crate) client: reqwest::Client,
    /// The client of the helpers below: it carries the app's `ADMIN_TOKEN`, when one
    /// is set, as an operator would.
    operator: reqwest::Client,
    pub(crate) backends: Backends,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _resources: Resources,
}

/// What a test's backends live in; dropped (and removed) with the test.
pub(crate) struct Resources {
    _dir: tempfile::TempDir,
    _containers: Vec<ContainerAsync<GenericImage>>,
}

impl Resources {
    /// Nothing of its own: for a second process over another test's backends.
    pub(crate) fn none() -> Resources {
        Resources {
            _dir: tempfile::tempdir().expect("temp dir"),
            _containers: Vec::new(),
        }
    }
}

/// Postgres (admin URL) and Redis for the production stack.
struct Servers {
    admin_url: String,
    redis_url: String,
    containers: Vec<ContainerAsync<GenericImage>>,
}

/// The servers of the production stack: `TEST_DATABASE_URL` and `TEST_REDIS_URL` when
/// set; else containers, when a Docker engine answers; else throwaway servers started
/// from the binaries installed here. With none of the three, the test fails (it never
/// skips) and says what to install.
async fn production_servers() -> Servers {
    if let (Ok(admin_url), Ok(redis_url)) = (
        std::env::var("TEST_DATABASE_URL"),
        std::env::var("TEST_REDIS_URL"),
    ) {
        return Servers {
            admin_url,
            redis_url,
            containers: Vec::new(),
        };
    }
    let docker = match start_containers().await {
        Ok(servers) => return servers,
        Err(err) => err,
    };
    match crate::servers::local_servers() {
        Ok(local) => Servers {
            admin_url: local.admin_url,
            redis_url: local.redis_url,
            containers: Vec::new(),
        },
        Err(local) => panic!(
            "the production-stack tests need Postgres and Redis, and found none: \
             set TEST_DATABASE_URL and TEST_REDIS_URL to running servers, or run a Docker \
             engine (testcontainers: {docker}), or install the PostgreSQL server and \
             redis-server (Debian: apt-get install postgresql redis-server) so that the \
             tests start their own ({local})"
        ),
    }
}

/// Postgres 16 (trust auth) and Redis 7 in containers, for machines with Docker.
async fn start_containers() -> Result<Servers, testcontainers::TestcontainersError> {
    let postgres = GenericImage::new("postgres", "16")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .start()
        .await?;
    let redis = GenericImage::new("redis", "7")
        .with_exposed_port(6379.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .start()
        .await?;
    let pg_port = postgres.get_host_port_ipv4(5432).await?;
    let redis_port = redis.get_host_port_ipv4(6379).await?;
    Ok(Servers {
        admin_url: format!("postgres://postgres@127.0.0.1:{pg_port}/postgres"),
        redis_url: format!("redis://127.0.0.1:{redis_port}"),
        containers: vec![postgres, redis],
    })
}

/// A fresh configuration for `stack`: its own database and queue namespace, and
/// delivery settings fast enough for tests (short backoff, short heartbeats).
pub(crate) async fn test_config(stack: Stack) -> (Config, Resources) {
    let dir = tempfile::tempdir().expect("temp dir");
    let suffix = ulid::Ulid::generate().to_string().to_lowercase();
    let mut containers = Vec::new();
    let (database_url, redis_url) = match stack {
        Stack::Embedded => (
            format!("sqlite://{}/conveyor.db?mode=rwc", dir.path().display()),
            None,
        ),
        Stack::Production => {
            let servers = production_servers().await;
            containers = servers.containers;
            (
                fresh_postgres_database(&servers.admin_url, &suffix).await,
                Some(servers.redis_url),
            )
        }
    };
    let config = Config {
        backends: BackendConfig {
            database_url,
            redis_url,
            queue_prefix: format!("t{suffix}"),
            database_max_connections: 8,
            ..BackendConfig::default()
        },
        delivery: DeliveryConfig {
            max_attempts: 3,
            backoff_base_ms: 50,
            backoff_max_ms: 200,
            backoff_jitter: 0.0,
            timeout_ms: 10_000,
            heartbeat_ms: 1_000,
            missed_heartbeats: 2,
            poll_ms: 200,
            promote_ms: 50,
            fetch_batch: 32,
            ..DeliveryConfig::default()
        },
        api: api::ApiConfig {
            bind_addr: "127.0.0.1:0".to_owned(),
            ..api::ApiConfig::default()
        },
        features: FeaturesConfig {
            math: features::math::MathConfig {
                // Small enough that the queued path is exercised by modest inputs.
                inline_max_bits: 10_000,
                wait_ms: 5_000,
                ..features::math::MathConfig::default()
            },
            // Off unless a test turns it on: a start-up backfill would add jobs to every
            // test's counts.
            rates: features::rates::RatesConfig {
                cron: "off".to_owned(),
                timeout_ms: 2_000,
                ..features::rates::RatesConfig::default()
            },
            ..FeaturesConfig::default()
        },
        worker: worker::WorkerConfig {
            concurrency: 8,
            queues: Vec::new(),
            shutdown_grace_ms: 10_000,
            restart_ms: 200,
            ..worker::WorkerConfig::default()
        },
        housekeeping: HousekeepingConfig {
            housekeeping_interval_secs: 1,
            ..HousekeepingConfig::default()
        },
    };
    (
        config,
        Resources {
            _dir: dir,
            _containers: containers,
        },
    )
}

/// Creates an empty database named after `suffix` on `admin_url`'s server.
async fn fresh_postgres_database(admin_url: &str, suffix: &str) -> String {
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(admin_url)
        .await
        .expect("TEST_DATABASE_URL must accept connections");
    let name = format!("conveyor_test_{suffix}");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}{query}")
}

/// A plain client; reqwest needs the process's TLS provider installed first.
pub(crate) fn http_client() -> reqwest::Client {
    engine::http::install_tls_provider();
    reqwest::Client::new()
}

/// The whole system (api, workers, scheduler) on `stack`.
pub(crate) async fn spawn_app(stack: Stack) -> TestApp {
    let (config, resources) = test_config(stack).await;
    spawn_with(config, resources, Role::All).await
}

/// `role` in this process over `config`; migrations are applied first.
pub(crate) async fn spawn_with(config: Config, resources: Resources, role: Role) -> TestApp {
    let backends = conveyor::connect(&config, true)
        .await
        .expect("backends connect");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let run = conveyor::run(
        role,
        config.clone(),
        backends.clone(),
        Some(listener),
        async move {
            let _ = rx.await;
        },
    );
    let handle = tokio::spawn(run);
    let operator = match config.api.admin_token() {
        Some(token) => {
            let mut headers = reqwest::header::HeaderMap::new();
            let bearer = format!("Bearer {}", token.expose());
            headers.insert(
                reqwest::header::AUTHORIZATION,
                bearer.parse().expect("a token is a header value"),
            );
            engine::http::install_tls_provider();
            reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("client")
        }
        None => http_client(),
    };
    TestApp {
        address,
        client: http_client(),
        operator,
        backends,
        shutdown: Some(tx),
        handle: Some(handle),
        _resources: resources,
    }
}

/// A worker pool running in this test's process over an app's backends.
pub(crate) struct Pool {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), engine::queue::QueueError>>,
}

impl Pool {
    /// Stops the pool and returns how it ended.
    pub(crate) async fn stop(self) -> Result<(), engine::queue::QueueError> {
        let _ = self.stop.send(());
        self.handle.await.expect("join the pool")
    }
}

impl TestApp {
    /// Starts another worker pool (all queues) on this app's backends.
    pub(crate) fn spawn_pool(&self, config: worker::WorkerConfig) -> Pool {
        let (stop, stopped) = oneshot::channel::<()>();
        let executor = self.executor();
        let handle = tokio::spawn(worker::run(
            self.backends.queue.clone(),
            executor,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Pool { stop, handle }
    }

    /// An executor over this app's backends and kinds, as its workers run them.
    pub(crate) fn executor(&self) -> std::sync::Arc<worker::executor::Executor> {
        worker::executor::Executor::new(
            self.backends.store.clone(),
            self.backends.queue.clone(),
            self.backends.registry.clone(),
            self.backends.queue.delivery().clone(),
            self.backends.metrics.clone(),
        )
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.operator.get(self.url(path)).send().await.expect("GET");
        read(response).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .operator
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .operator
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        read(response).await
    }

    /// Enqueues `system.noop` with these arguments and returns its job id.
    pub(crate) async fn enqueue_noop(&self, args: Value) -> String {
        let (status, body) = self.post("/jobs/noop", &args).await;
        assert_eq!(status, 202, "enqueue answered {body}");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    pub(crate) async fn job(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "GET /jobs/{id} answered {body}");
        body
    }

    /// Polls the job until its status is `status`, failing after `within`.
    pub(crate) async fn wait_for_status(&self, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(id).await;
            if job["status"] == status {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not become {status} within {within:?}; last seen {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the system as SIGTERM would and returns how the roles ended.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, body)
}

/// Runs a test body on both stacks, as two test functions.
#[macro_export]
macro_rules! on_both_stacks {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::helpers::Stack::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn production() {
                super::$name($crate::helpers::Stack::Production).await;
            }
        }
    };
}

/// The record of job `id`, which exists.
pub(crate) async fn stored(store: &engine::JobStore, id: engine::JobId) -> engine::JobRecord {
    let record = store.get(id).await.expect("read");
    record.expect("the job")
}

/// A new `system.noop` job with `args` (3 attempts), and its task as a retry would
/// carry it (no arguments). Nothing is pushed: no worker runs the job unless the test
/// delivers the task.
pub(crate) async fn new_noop(app: &TestApp, args: Value) -> engine::Task {
    let args = serde_json::from_value(args).expect("noop arguments");
    let job = engine::NewJob::of::<features::system::Noop>(&args, 3).expect("encodable");
    let created = app.backends.store.create(job).await.expect("create");
    let engine::store::Created::New(job) = created else {
        panic!("no idempotency key, so the job is new");
    };
    engine::Task::of(&job)
}

/// A TCP proxy to `target` on a port of its own, until [`Cut::cut`]: then it refuses
/// new connections and resets the ones it carries, as a stopped server would.
pub(crate) struct Cut {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cut {
    pub(crate) async fn proxy(target: String) -> Cut {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let carried = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                carried.lock().expect("lock").push(copy.abort_handle());
            }
        });
        tasks.lock().expect("lock").push(accept.abort_handle());
        Cut { port, tasks }
    }

    /// A proxy in front of `config`'s database, which `config` now connects through.
    pub(crate) async fn database(config: &mut Config) -> Cut {
        let url = reqwest::Url::parse(&config.backends.database_url).expect("a URL");
        let target = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().unwrap_or(5432)
        );
        let proxy = Cut::proxy(target).await;
        let mut through = url;
        through.set_host(Some("127.0.0.1")).expect("host");
        through.set_port(Some(proxy.port)).expect("port");
        config.backends.database_url = through.to_string();
        proxy
    }

    pub(crate) fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}
