//! The `Allow` header of a 405 (RFC 9110, 15.5.6): the methods the requested path
//! answers, read from the OpenAPI document so that it cannot drift from the routes.

use poem::http::{HeaderValue, Method};
use serde_json::Value;

/// One segment of a route's path: fixed text, or a `{parameter}` matching any one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

/// Every route's path with the methods it answers.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods {
    routes: Vec<(Vec<Segment>, HeaderValue)>,
}

impl AllowedMethods {
    /// The routes of an OpenAPI document (its `paths`), plus `extra` routes served
    /// outside it, each `(path, methods)`. A route answering `GET` answers `HEAD` too
    /// (poem's router does), so `HEAD` is listed with it.
    pub fn new(document: &Value, extra: &[(&str, &[Method])]) -> Self {
        let mut routes = Vec::new();
        if let Some(paths) = document["paths"].as_object() {
            for (path, operations) in paths {
                let methods: Vec<Method> = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter_map(|m| m.to_ascii_uppercase().parse().ok())
                    .collect();
                routes.push((segments(path), allow_value(&methods)));
            }
        }
        for (path, methods) in extra {
            routes.push((segments(path), allow_value(methods)));
        }
        AllowedMethods { routes }
    }

    /// The `Allow` value for a request path: that of the route the router picks for it,
    /// where a fixed segment wins over a parameter (`/jobs/math` over `/jobs/{id}`).
    pub fn for_path(&self, path: &str) -> Option<&HeaderValue> {
        let asked: Vec<&str> = split(path).collect();
        self.routes
            .iter()
            .filter(|(route, _)| matches(route, &asked))
            .max_by_key(|(route, _)| {
                route
                    .iter()
                    .map(|s| matches!(s, Segment::Literal(_)))
                    .collect::<Vec<bool>>()
            })
            .map(|(_, allow)| allow)
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn segments(path: &str) -> Vec<Segment> {
    split(path)
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Parameter
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

fn matches(route: &[Segment], asked: &[&str]) -> bool {
    route.len() == asked.len()
        && route
            .iter()
            .zip(asked)
            .all(|(segment, asked)| match segment {
                Segment::Literal(text) => text == asked,
                Segment::Parameter => true,
            })
}

/// `GET, HEAD, POST`: the methods in a stable order, `HEAD` beside `GET`.
fn allow_value(methods: &[Method]) -> HeaderValue {
    let order = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let listed: Vec<&str> = order
        .iter()
        .filter(|m| methods.contains(m) || (**m == Method::HEAD && methods.contains(&Method::GET)))
        .map(Method::as_str)
        .collect();
    HeaderValue::from_str(&listed.join(", ")).expect("method names are valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> AllowedMethods {
        let document = json!({"paths": {
            "/jobs": {"get": {}},
            "/jobs/{id}": {"get": {}, "delete": {}},
            "/jobs/{id}/retry": {"post": {}},
            "/jobs/math": {"post": {}},
        }});
        AllowedMethods::new(&document, &[("/ui", &[Method::GET])])
    }

    #[test]
    fn a_path_gets_the_methods_of_its_route() {
        let table = table();
        let allow = |path| table.for_path(path).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allow("/jobs").as_deref(), Some("GET, HEAD"));
        assert_eq!(allow("/jobs/01J/").as_deref(), Some("GET, HEAD, DELETE"));
        assert_eq!(allow("/jobs/01J/retry").as_deref(), Some("POST"));
        assert_eq!(allow("/ui").as_deref(), Some("GET, HEAD"));
        assert_eq!(allow("/nothing"), None);
    }

    #[test]
    fn a_fixed_segment_wins_over_a_parameter() {
        let table = table();
        assert_eq!(table.for_path("/jobs/math").unwrap(), "POST");
    }
}
