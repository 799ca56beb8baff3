//! `/`, `/ping`, `/health`, `/ready`, `/metrics`, `/access`.

use poem::Request;
use poem_openapi::param::Header;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::auth::{Access, CHALLENGE, READ_NEEDS, Unauthorized, access, authorize_read};
use crate::error::ErrorBody;
use crate::state::AppState;

#[derive(Tags)]
enum SystemTags {
    /// Liveness, readiness, metrics.
    System,
}

/// `{"message": "pong"}`.
#[derive(Debug, Clone, Object)]
pub struct Pong {
    /// Always `pong`.
    pub message: String,
}

fn pong() -> Json<Pong> {
    Json(Pong {
        message: "pong".to_owned(),
    })
}

/// Answers of `GET /metrics`.
#[derive(ApiResponse)]
pub enum MetricsAnswer {
    /// Prometheus text.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// `ADMIN_TOKEN` is set (and `METRICS_PUBLIC` is not) and the request carries
    /// neither it nor `READ_TOKEN` as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
}

/// `{"access": "admin"}`: what the bearer token sent may do on the operator routes.
#[derive(Debug, Clone, Object)]
pub struct AccessView {
    /// `open` (no `ADMIN_TOKEN` is configured: every operator route is open), `admin`
    /// (reads and changes) or `read` (`READ_TOKEN`: reads, changes nothing).
    pub access: Access,
}

/// Answers of `GET /access`.
#[derive(ApiResponse)]
pub enum AccessAnswer {
    /// What the token may do.
    #[oai(status = 200)]
    Ok(Json<AccessView>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
}

/// Answers of `GET /`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "root_bad_request")]
pub enum RootAnswer {
    /// `{"message": "pong"}`.
    #[oai(status = 200)]
    Pong(Json<Pong>),
    /// A browser (asking for HTML) is sent to the API explorer.
    #[oai(status = 303)]
    SeeDocs(#[oai(header = "Location")] String),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
}

fn root_bad_request(err: poem::Error) -> RootAnswer {
    RootAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Health of one dependency.
#[derive(Debug, Clone, Object)]
pub struct Readiness {
    /// `ok`, or `down: <reason>`.
    pub database: String,
    /// `ok`, or `down: <reason>`.
    pub queue: String,
    /// `redis` or `sqlite`.
    pub queue_backend: String,
}

/// Answers of `GET /ready`.
#[derive(ApiResponse)]
pub enum ReadyAnswer {
    /// Database and queue answer.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Something is down; the body names it.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// `{"status": "ok"}`.
#[derive(Debug, Clone, Object)]
pub struct Health {
    /// Always `ok` while the process runs.
    pub status: String,
}

/// The system routes.
#[derive(Debug, Clone)]
pub struct SystemApi {
    state: AppState,
}

impl SystemApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        SystemApi { state }
    }
}

#[OpenApi(tag = "SystemTags::System")]
impl SystemApi {
    /// `{"message": "pong"}`; a browser asking for HTML is redirected to `/docs`.
    #[oai(path = "/", method = "get")]
    async fn root(&self, accept: Header<Option<String>>) -> RootAnswer {
        let wants_html = accept
            .0
            .as_deref()
            .is_some_and(|accept| accept.contains("text/html"));
        if wants_html {
            RootAnswer::SeeDocs("/docs".to_owned())
        } else {
            RootAnswer::Pong(pong())
        }
    }

    /// `{"message": "pong"}`.
    #[oai(path = "/ping", method = "get")]
    async fn ping(&self) -> Json<Pong> {
        pong()
    }

    /// 200 while the process runs.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".to_owned(),
        })
    }

    /// 200 when the database and the queue answer, else 503 naming what is down.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> ReadyAnswer {
        let limit = std::time::Duration::from_secs(2);
        let database = tokio::time::timeout(limit, self.state.store.ping()).await;
        let queue = tokio::time::timeout(limit, self.state.queue.ping()).await;
        let database = match database {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(err)) => format!("down: {err}"),
            Err(_) => "down: no answer within 2 s".to_owned(),
        };
        let queue = match queue {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(err)) => format!("down: {err}"),
            Err(_) => "down: no answer within 2 s".to_owned(),
        };
        let ready = database == "ok" && queue == "ok";
        let body = Json(Readiness {
            database,
            queue,
            queue_backend: self.state.queue.backend_name().to_owned(),
        });
        if ready {
            ReadyAnswer::Ready(body)
        } else {
            ReadyAnswer::NotReady(body)
        }
    }

    /// Prometheus text: requests, jobs by kind and outcome, job latency, queue depth.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, req: &Request) -> MetricsAnswer {
        if !self.state.config.metrics_public
            && let Err(Unauthorized(body)) = authorize_read(&self.state.config, req)
        {
            return MetricsAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        for &queue in &self.state.queues {
            match self.state.queue.depth(queue).await {
                Ok(depth) => self.state.metrics.queue_depth(queue, depth),
                Err(err) => tracing::warn!(%err, queue, "queue depth unavailable for /metrics"),
            }
        }
        self.state.features.fanouts.scrape();
        MetricsAnswer::Ok(PlainText(self.state.metrics.render()))
    }

    /// What the bearer token sent may do on the operator routes: `open` when no
    /// `ADMIN_TOKEN` is configured, `admin`, or `read` for `READ_TOKEN` (the dashboard
    /// shows its buttons that change something to `open` and `admin` only).
    #[oai(path = "/access", method = "get")]
    async fn access(&self, req: &Request) -> AccessAnswer {
        match access(&self.state.config, req, READ_NEEDS) {
            Ok(access) => AccessAnswer::Ok(Json(AccessView { access })),
            Err(Unauthorized(body)) => AccessAnswer::Unauthorized(body, CHALLENGE.to_owned()),
        }
    }
}
