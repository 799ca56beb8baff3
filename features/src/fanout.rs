//! The upstream fan-out (SPEC §5), the one feature with no queue (it is
//! latency-bound): its settings, its upstream client and its driver. The driver owns
//! the requests and timers, feeds their events to `domain::fanout`'s state machine,
//! and returns on its answer, which drops every request still in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use domain::fanout::{Answer, Command, Event, Failure, Fanout, Policy};
use engine::metrics::Metrics;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// Settings of the fan-out routes.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutConfig {
    /// The upstream work server (GET).
    #[arg(long, env = "WORK_URL", default_value = "http://127.0.0.1:5001/work")]
    pub work_url: String,
    /// Upstream requests in flight at once across all fan-out routes; a fan-out that
    /// would exceed it is answered 503.
    #[arg(long, env = "FANOUT_MAX_INFLIGHT", default_value_t = 3_000)]
    pub max_inflight: usize,
    /// Upstream requests in flight at once for one client (by its IP address); past
    /// it, that client's fan-outs are answered 503 while others' still run. Behind a
    /// proxy every client has the proxy's address: raise it, or bound clients there.
    #[arg(long, env = "FANOUT_MAX_INFLIGHT_PER_CLIENT", default_value_t = 300)]
    pub max_inflight_per_client: usize,
    /// Longest a fan-out may take, in ms: `smart`'s deadline when none is given, and
    /// the cap of every `timeout`.
    #[arg(long, env = "FANOUT_MAX_MS", default_value_t = 30_000)]
    pub max_ms: u64,
    /// How long `smart` waits on its first request before firing two more, in ms.
    #[arg(long, env = "FANOUT_HEDGE_MS", default_value_t = 300)]
    pub hedge_ms: u64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}

/// A successful upstream answer: HTTP 200 with `{"time": <integer>}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Work {
    /// The upstream's figure.
    pub time: i64,
}

/// The fan-out would exceed `FANOUT_MAX_INFLIGHT`, or its client's
/// `FANOUT_MAX_INFLIGHT_PER_CLIENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// Every client's fan-outs together are at the bound.
    #[error("too many upstream requests in flight; try again shortly")]
    Everyone,
    /// This client's are.
    #[error("too many upstream requests in flight for this client; try again shortly")]
    Client,
}

/// Upstream requests in flight per client; a client with none has no entry.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// A client's share of the upstream requests in flight, given back on drop.
struct ClientShare<'a> {
    per_client: &'a PerClient,
    client: IpAddr,
    requests: usize,
}

impl PerClient {
    fn take(&self, client: IpAddr, requests: usize, max: usize) -> Result<ClientShare<'_>, Busy> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(client).or_default();
        if *count + requests > max {
            if *count == 0 {
                counts.remove(&client);
            }
            return Err(Busy::Client);
        }
        *count += requests;
        Ok(ClientShare {
            per_client: self,
            client,
            requests,
        })
    }
}

impl Drop for ClientShare<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .per_client
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(self.requests);
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// The fan-outs of a process: one client and one bound on upstream requests in flight.
#[derive(Debug, Clone)]
pub struct Fanouts {
    client: reqwest::Client,
    config: FanoutConfig,
    permits: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    in_flight: Gauge,
}

impl Fanouts {
    /// A client and a bound of `config.max_inflight` upstream requests; registers the
    /// `fanout_in_flight` gauge with `metrics` (once per process).
    pub fn new(config: FanoutConfig, metrics: &Metrics) -> Self {
        engine::http::install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.max_ms.min(5_000)))
            .pool_max_idle_per_host(256)
            .build()
            .unwrap_or_default();
        let permits = Arc::new(Semaphore::new(config.max_inflight));
        let in_flight = Gauge::default();
        metrics.register(
            "fanout_in_flight",
            "Upstream work requests in flight, as of the last scrape",
            in_flight.clone(),
        );
        Fanouts {
            client,
            config,
            permits,
            per_client: Arc::default(),
            in_flight,
        }
    }

    /// The settings.
    pub fn config(&self) -> &FanoutConfig {
        &self.config
    }

    /// Upstream requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.config.max_inflight - self.permits.available_permits()
    }

    /// Sets the `fanout_in_flight` gauge to now, for a scrape of `/metrics`.
    pub fn scrape(&self) {
        self.in_flight
            .set(i64::try_from(self.in_flight()).unwrap_or(i64::MAX));
    }

    /// Runs `policy` for `client` (when its address is known) until it answers or
    /// `limit` passes. Returning drops every request still in flight (their futures are
    /// dropped with `in_flight`).
    pub async fn run(
        &self,
        policy: Policy,
        limit: Duration,
        client: Option<IpAddr>,
    ) -> Result<Answer<Work>, Busy> {
        // All three permits up front: a fan-out either runs whole or is refused, so the
        // bounds hold without waiting and memory stays bounded under overload.
        let requests = domain::fanout::FANOUT;
        let _share = client
            .map(|c| {
                self.per_client
                    .take(c, requests, self.config.max_inflight_per_client)
            })
            .transpose()?;
        let _permits = self
            .permits
            .clone()
            .try_acquire_many_owned(requests as u32)
            .map_err(|_| Busy::Everyone)?;
        let deadline = tokio::time::sleep_until(Instant::now() + limit);
        tokio::pin!(deadline);
        let mut in_flight = FuturesUnordered::new();
        let mut hedge: Option<Pin<Box<Sleep>>> = None;
        let (mut machine, mut commands) = Fanout::start(policy);
        loop {
            for command in commands.drain(..) {
                match command {
                    Command::Fire(id) => {
                        let call = call(self.client.clone(), self.config.work_url.clone());
                        in_flight.push(async move { (id, call.await) });
                    }
                    Command::StartHedgeTimer(after) => {
                        hedge = Some(Box::pin(tokio::time::sleep(after)));
                    }
                    Command::Answer(answer) => return Ok(answer),
                }
            }
            let event = tokio::select! {
                // Finished requests first: a success that is ready when the deadline
                // also fires arrived within the timeout and must count.
                biased;
                Some((request, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    Event::Finished { request, outcome }
                }
                () = &mut deadline => Event::Deadline,
                () = async { if let Some(timer) = hedge.as_mut() { timer.await } }, if hedge.is_some() => {
                    hedge = None;
                    Event::HedgeTimer
                }
            };
            commands = machine.on_event(event);
        }
    }
}

/// One upstream call: success is HTTP 200 with `{"time": <integer>}`, anything else a
/// failure (logged, then reported to the machine without detail).
async fn call(client: reqwest::Client, url: String) -> Result<Work, Failure> {
    let outcome = async {
        let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("status {status}"));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice::<Work>(&body).map_err(|e| format!("body: {e}"))
    }
    .await;
    outcome.map_err(|reason| {
        tracing::debug!(%reason, "upstream work request failed");
        Failure
    })
}
