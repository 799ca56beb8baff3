//! The operator token: when `ADMIN_TOKEN` is set, the mutating operator routes
//! (`DELETE /jobs/{id}`, `POST /jobs/{id}/retry`, `POST /rates/refresh`) need
//! `Authorization: Bearer <ADMIN_TOKEN>`. Reads stay open.

use poem::Request;
use poem::http::header::AUTHORIZATION;
use poem_openapi::payload::Json;

use crate::config::ApiConfig;
use crate::error::ErrorBody;

/// The `WWW-Authenticate` challenge sent with every 401.
pub const CHALLENGE: &str = "Bearer realm=\"conveyor\"";

/// A refused request: the 401 body.
#[derive(Debug)]
pub struct Unauthorized(pub Json<ErrorBody>);

/// Lets the request through when no token is configured, or when it carries
/// `Authorization: Bearer <token>` with the configured token (compared in constant
/// time); otherwise says why not, never echoing what was sent.
pub fn authorize(config: &ApiConfig, req: &Request) -> Result<(), Unauthorized> {
    let Some(token) = config.admin_token() else {
        return Ok(());
    };
    let refuse = |message: &str| Err(Unauthorized(Json(ErrorBody::new("unauthorized", message))));
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return refuse("this route needs 'Authorization: Bearer <ADMIN_TOKEN>'");
    };
    let Some(given) = value.to_str().ok().and_then(bearer) else {
        return refuse("the Authorization header is not 'Bearer <token>'");
    };
    if token.matches(given) {
        Ok(())
    } else {
        refuse("the bearer token is not the admin token")
    }
}

/// The token of a `Bearer <token>` credential (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>) -> ApiConfig {
        ApiConfig {
            admin_token: token.map(|t| t.parse().unwrap()),
            ..ApiConfig::default()
        }
    }

    fn request(authorization: Option<&str>) -> Request {
        let mut builder = Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.finish()
    }

    fn message(result: Result<(), Unauthorized>) -> String {
        match result {
            Ok(()) => "ok".to_owned(),
            Err(Unauthorized(body)) => body.0.message,
        }
    }

    #[test]
    fn open_without_a_token_or_with_an_empty_one() {
        assert_eq!(message(authorize(&config(None), &request(None))), "ok");
        assert_eq!(message(authorize(&config(Some("")), &request(None))), "ok");
    }

    #[test]
    fn the_right_bearer_passes_in_any_scheme_case() {
        let config = config(Some("t0k3n"));
        for header in ["Bearer t0k3n", "bearer t0k3n", "BEARER  t0k3n "] {
            assert_eq!(
                message(authorize(&config, &request(Some(header)))),
                "ok",
                "{header}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused_without_echoing_it() {
        let config = config(Some("t0k3n"));
        let cases = [
            (None, "needs"),
            (Some("Bearer wrong"), "not the admin token"),
            (Some("Bearer t0k3"), "not the admin token"),
            (Some("Bearer t0k3n2"), "not the admin token"),
            (Some("Basic dDBrM246"), "is not 'Bearer <token>'"),
            (Some("Bearer"), "is not 'Bearer <token>'"),
            (Some("Bearer "), "is not 'Bearer <token>'"),
            (Some("t0k3n"), "is not 'Bearer <token>'"),
        ];
        for (header, expected) in cases {
            let got = message(authorize(&config, &request(header)));
            assert!(got.contains(expected), "{header:?}: {got}");
            assert!(!got.contains("t0k3n") && !got.contains("wrong"), "{got}");
        }
    }
}
