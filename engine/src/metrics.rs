//! Prometheus metrics shared by the roles of one process: the api records requests,
//! workers record jobs, features register their own, and `GET /metrics` renders them
//! all.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method: one of the standard methods, or `other`.
    pub method: &'static str,
    /// Status code.
    pub status: u16,
}

/// The label of `method`: a standard method by its name, anything else `other`, so
/// that a client inventing methods cannot grow the label set.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Labels of a finished delivery.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Job kind.
    pub kind: String,
    /// `succeeded`, `retrying`, `dead`, `duplicate`, `skipped`, `aborted`, `redelivered`.
    pub outcome: String,
}

/// Labels of a per-kind measure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Job kind.
    pub kind: String,
}

/// Labels of a per-queue measure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// Logical queue.
    pub queue: String,
}

/// Every metric of the process, cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    job_seconds: Family<KindLabels, Histogram>,
    queue_depth: Family<QueueLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("conveyor");
        let requests = Family::<RequestLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let job_seconds = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 18))) as fn() -> Histogram,
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register("jobs", "Task deliveries by kind and outcome", jobs.clone());
        registry.register(
            "job_duration_seconds",
            "Time of one attempt, by kind",
            job_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Tasks waiting per queue (ready and delayed), as of the last scrape",
            queue_depth.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            jobs,
            job_seconds,
            queue_depth,
        }
    }

    /// Counts one HTTP request.
    pub fn request(&self, method: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                status,
            })
            .inc();
    }

    /// Counts one delivery's outcome and, for attempts that ran, its duration.
    pub fn job(&self, kind: &str, outcome: &str, elapsed: Option<Duration>) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(elapsed) = elapsed {
            self.job_seconds
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Records a queue's depth.
    pub fn queue_depth(&self, queue: &str, depth: u64) {
        self.queue_depth
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Registers a metric of a feature, rendered with the others under the
    /// `conveyor_` prefix. Register each once per process, at start.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let metrics = Metrics::new();
        for i in 0..1_000 {
            metrics.request(&format!("M{i}"), 405);
        }
        metrics.request("GET", 200);
        let text = metrics.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("conveyor_http_requests_total"))
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("method=\"other\"") && l.ends_with(" 1000")),
            "{lines:?}"
        );
    }
}
