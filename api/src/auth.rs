//! The operator tokens: when `ADMIN_TOKEN` is set, the mutating operator routes need
//! `Authorization: Bearer <ADMIN_TOKEN>` ([`authorize`]), and the operator reads need it
//! or `READ_TOKEN` ([`authorize_read`]). The feature routes stay open.

use poem::Request;
use poem::http::header::AUTHORIZATION;
use poem_openapi::Enum;
use poem_openapi::payload::Json;

use crate::config::ApiConfig;
use crate::error::ErrorBody;

/// The `WWW-Authenticate` challenge sent with every 401.
pub const CHALLENGE: &str = "Bearer realm=\"conveyor\"";

/// A refused request: the 401 body.
#[derive(Debug)]
pub struct Unauthorized(pub Json<ErrorBody>);

/// What a request may do on the operator routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Access {
    /// No `ADMIN_TOKEN` is configured: every operator route is open.
    Open,
    /// The request carries `ADMIN_TOKEN`: it may read and change.
    Admin,
    /// The request carries `READ_TOKEN`: it may read, and change nothing.
    Read,
}

impl Access {
    /// Whether the operator changes are open to it.
    pub fn changes(self) -> bool {
        matches!(self, Access::Open | Access::Admin)
    }
}

/// What the request may do, or why it may do nothing: `missing` is the message when it
/// carries no `Authorization` header. Both tokens are compared (each in constant
/// time), so that the time taken does not tell which one matched.
pub fn access(config: &ApiConfig, req: &Request, missing: &str) -> Result<Access, Unauthorized> {
    let Some(admin) = config.admin_token() else {
        return Ok(Access::Open);
    };
    let given = bearer_of(req, missing)?;
    let admin = admin.matches(given);
    let read = config.read_token().map(|read| read.matches(given));
    match (admin, read) {
        (true, _) => Ok(Access::Admin),
        (false, Some(true)) => Ok(Access::Read),
        (false, Some(false)) => Err(refused(
            "the bearer token is neither the admin nor the read token",
        )),
        (false, None) => Err(refused("the bearer token is not the admin token")),
    }
}

/// Lets the request through when no token is configured, or when it carries
/// `Authorization: Bearer <token>` with the configured token (compared in constant
/// time); otherwise says why not, never echoing what was sent.
pub fn authorize(config: &ApiConfig, req: &Request) -> Result<(), Unauthorized> {
    let access = access(
        config,
        req,
        "this route needs 'Authorization: Bearer <ADMIN_TOKEN>'",
    )?;
    if access.changes() {
        Ok(())
    } else {
        Err(refused(
            "the read token (READ_TOKEN) changes nothing: this route needs ADMIN_TOKEN",
        ))
    }
}

/// Lets an operator read through when no admin token is configured, or when it carries
/// the admin or the read token as a bearer token; otherwise says why not.
pub fn authorize_read(config: &ApiConfig, req: &Request) -> Result<(), Unauthorized> {
    access(config, req, READ_NEEDS).map(|_| ())
}

/// The message of a read without an `Authorization` header.
pub const READ_NEEDS: &str = "this route needs 'Authorization: Bearer <ADMIN_TOKEN or READ_TOKEN>'";

/// The 401 answer with this message.
fn refused(message: &str) -> Unauthorized {
    Unauthorized(Json(ErrorBody::new("unauthorized", message)))
}

/// The bearer token the request carries; `missing` is the message when it carries no
/// `Authorization` header at all.
fn bearer_of<'a>(req: &'a Request, missing: &str) -> Result<&'a str, Unauthorized> {
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| refused(missing))?;
    value
        .to_str()
        .ok()
        .and_then(bearer)
        .ok_or_else(|| refused("the Authorization header is not 'Bearer <token>'"))
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

    fn with_reader(admin: &str, read: &str) -> ApiConfig {
        ApiConfig {
            read_token: Some(read.parse().unwrap()),
            ..config(Some(admin))
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

    #[test]
    fn reads_take_either_token_and_changes_the_admin_one_only() {
        let config = with_reader("adm1n", "r3ad");
        let read = |header| message(authorize_read(&config, &request(header)));
        let change = |header| message(authorize(&config, &request(header)));
        assert_eq!(read(Some("Bearer adm1n")), "ok");
        assert_eq!(read(Some("Bearer r3ad")), "ok");
        assert!(read(None).contains("ADMIN_TOKEN or READ_TOKEN"));
        assert!(read(Some("Bearer nope")).contains("neither"));
        assert_eq!(change(Some("Bearer adm1n")), "ok");
        assert!(change(Some("Bearer r3ad")).contains("needs ADMIN_TOKEN"));
        // Without an admin token, reads are open as every route is.
        assert_eq!(
            message(authorize_read(&self::config(None), &request(None))),
            "ok"
        );
    }

    #[test]
    fn access_names_the_token_carried() {
        let config = with_reader("adm1n", "r3ad");
        let of = |header| access(&config, &request(header), READ_NEEDS).map_err(|e| e.0.0.message);
        assert_eq!(of(Some("Bearer adm1n")), Ok(Access::Admin));
        assert_eq!(of(Some("Bearer r3ad")), Ok(Access::Read));
        assert!(of(Some("Bearer nope")).unwrap_err().contains("neither"));
        assert_eq!(of(None).unwrap_err(), READ_NEEDS);
        assert!(Access::Admin.changes() && Access::Open.changes() && !Access::Read.changes());
        let open = access(&self::config(None), &request(None), READ_NEEDS);
        assert_eq!(open.map_err(|e| e.0.0.message), Ok(Access::Open));
    }

    #[test]
    fn a_read_token_alone_is_refused() {
        let config = ApiConfig {
            read_token: Some("r3ad".parse().unwrap()),
            ..config(None)
        };
        assert!(config.check().unwrap_err().contains("READ_TOKEN"));
        assert!(with_reader("a", "r").check().is_ok());
    }
}
