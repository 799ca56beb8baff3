//! `GET /work`: an unreliable upstream. Most answers are `{"time": <ms>}` after
//! 100–600 ms; a seeded share are 500s, 429s, invalid JSON, or hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::SandboxConfig;

/// What one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `{"time": ms}` after `ms`.
    Answer(u64),
    /// HTTP 500 after `ms`.
    ServerError(u64),
    /// HTTP 429 after `ms`.
    TooManyRequests(u64),
    /// HTTP 200 with a body that is not JSON, after `ms`.
    InvalidJson(u64),
    /// No answer for `ms`, then `{"time": ms}`.
    Hang(u64),
}

/// The seeded source of behaviours, shared by all requests.
#[derive(Debug, Clone)]
pub struct WorkServer {
    rng: Arc<Mutex<StdRng>>,
    config: SandboxConfig,
}

impl WorkServer {
    /// A server whose sequence of behaviours is fixed by `config.seed`.
    pub fn new(config: &SandboxConfig) -> Self {
        WorkServer {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(config.seed))),
            config: config.clone(),
        }
    }

    /// The next request's behaviour.
    pub fn next(&self) -> Behaviour {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = &self.config;
        let (low, high) = (
            c.work_min_ms.min(c.work_max_ms),
            c.work_max_ms.max(c.work_min_ms),
        );
        let delay = rng.random_range(low..=high);
        let roll: f64 = rng.random();
        let mut threshold = c.work_500;
        if roll < threshold {
            return Behaviour::ServerError(delay);
        }
        threshold += c.work_429;
        if roll < threshold {
            return Behaviour::TooManyRequests(delay);
        }
        threshold += c.work_invalid_json;
        if roll < threshold {
            return Behaviour::InvalidJson(delay);
        }
        threshold += c.work_hang;
        if roll < threshold {
            return Behaviour::Hang(c.work_hang_ms);
        }
        Behaviour::Answer(delay)
    }
}

/// Handles `GET /work`.
#[handler]
pub(crate) async fn answer(server: Data<&WorkServer>) -> Response {
    let behaviour = server.next();
    let (status, body, delay) = match behaviour {
        Behaviour::Answer(ms) | Behaviour::Hang(ms) => {
            (StatusCode::OK, format!("{{\"time\": {ms}}}"), ms)
        }
        Behaviour::ServerError(ms) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\": \"internal\"}".to_owned(),
            ms,
        ),
        Behaviour::TooManyRequests(ms) => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"error\": \"slow down\"}".to_owned(),
            ms,
        ),
        Behaviour::InvalidJson(ms) => (StatusCode::OK, "{\"time\": oops".to_owned(), ms),
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> SandboxConfig {
        SandboxConfig {
            bind_addr: "127.0.0.1:0".into(),
            seed,
            work_min_ms: 100,
            work_max_ms: 600,
            work_500: 0.1,
            work_429: 0.05,
            work_invalid_json: 0.05,
            work_hang: 0.05,
            work_hang_ms: 10_000,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a = WorkServer::new(&config(7));
        let b = WorkServer::new(&config(7));
        let first: Vec<_> = (0..100).map(|_| a.next()).collect();
        let second: Vec<_> = (0..100).map(|_| b.next()).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn the_mix_follows_the_configured_shares() {
        let server = WorkServer::new(&config(1));
        let n = 20_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            let i = match server.next() {
                Behaviour::Answer(ms) => {
                    assert!((100..=600).contains(&ms));
                    0
                }
                Behaviour::ServerError(_) => 1,
                Behaviour::TooManyRequests(_) => 2,
                Behaviour::InvalidJson(_) => 3,
                Behaviour::Hang(ms) => {
                    assert_eq!(ms, 10_000);
                    4
                }
            };
            counts[i] += 1;
        }
        let share = |i: usize| counts[i] as f64 / n as f64;
        assert!((share(0) - 0.75).abs() < 0.02, "{counts:?}");
        assert!((share(1) - 0.10).abs() < 0.01, "{counts:?}");
        assert!((share(2) - 0.05).abs() < 0.01, "{counts:?}");
        assert!((share(3) - 0.05).abs() < 0.01, "{counts:?}");
        assert!((share(4) - 0.05).abs() < 0.01, "{counts:?}");
    }
}
