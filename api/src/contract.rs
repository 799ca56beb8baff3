//! What `/openapi.json` declares beyond the routes' Rust types.
//!
//! The routes take their inputs loosely typed (text parameters, optional fields) so that
//! a missing or bad value is answered with the older services' own error bodies rather
//! than a generic parse error. The document must still state what the service accepts:
//! which parameters are required, their types and bounds (some set by configuration),
//! that request bodies refuse unknown fields and read `null` as absent, which answer
//! fields may be `null`, and, when an `ADMIN_TOKEN` is set, which operations need it.
//! [`declare`] writes that into the document poem-openapi generated from the routes;
//! every entry names a parameter, schema or operation that must exist, so the table
//! cannot drift from the routes.
//!
//! Rules that relate two values (an end not before its start, Ackermann's result size,
//! `username` or `sdk`) cannot be stated in OpenAPI 3.0; the operations' descriptions
//! say them.

use serde_json::{Map, Value, json};

use crate::state::AppState;

/// The configured bounds the document states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// `FACTORIAL_MAX_N`.
    pub factorial_max_n: u64,
    /// `FIBONACCI_MAX_N`.
    pub fibonacci_max_n: u64,
    /// `JOBS_PAGE_MAX`.
    pub jobs_page_max: u64,
    /// `REPORTS_BATCH_MAX`.
    pub reports_batch_max: usize,
    /// `THROUGHPUT_HISTORY_MINUTES`.
    pub throughput_history_minutes: u64,
    /// Whether `ADMIN_TOKEN` is set, so that the operator routes need it.
    pub admin_token: bool,
    /// Whether `/metrics` is served without a token (`METRICS_PUBLIC`).
    pub metrics_public: bool,
}

impl Bounds {
    /// The bounds of a running api.
    pub fn of(state: &AppState) -> Self {
        Bounds {
            factorial_max_n: state.math().factorial_max_n,
            fibonacci_max_n: state.math().fibonacci_max_n,
            jobs_page_max: state.config.jobs_page_max,
            reports_batch_max: state.reports().batch_max,
            throughput_history_minutes: state.housekeeping.throughput_history_minutes(),
            admin_token: state.config.admin_token().is_some(),
            metrics_public: state.config.metrics_public,
        }
    }
}

/// The operations that need `Authorization: Bearer <ADMIN_TOKEN>` when it is set.
pub const ADMIN_OPERATIONS: &[(&str, &str)] = &[
    ("delete", "/jobs/{id}"),
    ("post", "/jobs/{id}/retry"),
    ("post", "/jobs/{id}/abort"),
    ("post", "/jobs/bulk"),
    ("post", "/jobs/noop"),
    ("post", "/rates/refresh"),
    ("post", "/queues/{queue}/pause"),
    ("post", "/queues/{queue}/resume"),
    ("post", "/schedules/{name}/run"),
];

/// The operator reads that need `ADMIN_TOKEN` or `READ_TOKEN` when a token is set
/// (`/metrics` too, unless `METRICS_PUBLIC`).
pub const READ_OPERATIONS: &[(&str, &str)] = &[
    ("get", "/jobs"),
    ("get", "/jobs/{id}"),
    ("get", "/queues"),
    ("get", "/queues/history"),
    ("get", "/schedules"),
    ("get", "/access"),
];

/// Response properties that are `null` when there is no value (poem-openapi declares an
/// `Option` only as not required).
const NULLABLE_PROPERTIES: &[(&str, &str)] = &[("QueueView", "failure_rate")];

/// The request bodies' schemas: their optional fields read `null` as absent, and an
/// unsigned integer field refuses a negative value.
const REQUEST_SCHEMAS: &[&str] = &["BulkRequest", "MathRequest", "NoopRequest", "ReportIn"];

/// The request bodies that refuse unknown fields. A report ignores them, as the old
/// service did.
const CLOSED_SCHEMAS: &[&str] = &["BulkRequest", "MathRequest", "NoopRequest"];

/// A job id: a ULID's 26 characters of Crockford base 32, either case.
const ULID_PATTERN: &str = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$";
/// The beginning of a ULID, as `GET /jobs?id=` takes it.
const ULID_PREFIX_PATTERN: &str = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{1,26}$";

/// `doc` (poem-openapi's document, as JSON) with the declarations of this module.
///
/// # Panics
/// When the document lacks an operation, parameter or schema named here: the routes
/// and this table disagree, which the unit tests catch before a release.
pub fn declare(mut doc: Value, bounds: &Bounds) -> Value {
    for (method, path, name, required, schema) in parameters(bounds) {
        let parameter = parameter_mut(&mut doc, method, path, name);
        parameter["required"] = Value::Bool(required);
        parameter["schema"] = schema;
    }
    for name in CLOSED_SCHEMAS {
        schema_mut(&mut doc, name)["additionalProperties"] = Value::Bool(false);
    }
    for (name, property) in NULLABLE_PROPERTIES {
        let value = properties_mut(schema_mut(&mut doc, name), name)
            .get_mut(*property)
            .unwrap_or_else(|| panic!("schema {name} has no property {property}"));
        value["nullable"] = Value::Bool(true);
    }
    for name in REQUEST_SCHEMAS {
        let schema = schema_mut(&mut doc, name);
        let required: Vec<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        for (property, value) in properties_mut(schema, name) {
            if !required.contains(property) {
                value["nullable"] = Value::Bool(true);
            }
            if value["format"]
                .as_str()
                .is_some_and(|f| f.starts_with("uint"))
                && value.get("minimum").is_none()
            {
                value["minimum"] = json!(0);
            }
        }
    }
    declare_reports(&mut doc, bounds);
    if bounds.admin_token {
        declare_admin(&mut doc, bounds.metrics_public);
    }
    doc
}

/// `(method, path, parameter, required, schema)` of every parameter declared here.
fn parameters(bounds: &Bounds) -> Vec<(&'static str, &'static str, &'static str, bool, Value)> {
    let mut declared = Vec::new();
    let mut add = |method, path, name, required, schema| {
        declared.push((method, path, name, required, schema));
    };
    let idempotency_key = json!({
        "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]{1,200}$"
    });
    for path in [
        "/jobs/noop",
        "/jobs/math",
        "/process_report",
        "/process_reports",
    ] {
        add(
            "post",
            path,
            "Idempotency-Key",
            false,
            idempotency_key.clone(),
        );
    }
    add(
        "post",
        "/rates/refresh",
        "Idempotency-Key",
        false,
        idempotency_key,
    );

    add(
        "get",
        "/jobs",
        "limit",
        false,
        json!({
            "type": "integer", "minimum": 1, "maximum": bounds.jobs_page_max, "default": 50.min(bounds.jobs_page_max)
        }),
    );
    add(
        "get",
        "/jobs",
        "id",
        false,
        json!({"type": "string", "pattern": ULID_PREFIX_PATTERN}),
    );
    add(
        "get",
        "/jobs",
        "before",
        false,
        json!({"type": "string", "pattern": ULID_PATTERN}),
    );
    add(
        "get",
        "/queues/history",
        "minutes",
        false,
        json!({
            "type": "integer", "minimum": 1, "maximum": bounds.throughput_history_minutes,
            "default": bounds.throughput_history_minutes
        }),
    );

    for path in ["/ad", "/impression"] {
        for name in [
            "sdk_version",
            "session_id",
            "platform",
            "username",
            "country_code",
        ] {
            // Postgres text holds no NUL, so it is refused on every backend alike.
            let mut schema = json!({"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"});
            if name == "username" || name == "sdk_version" {
                schema["maxLength"] = json!(crate::ads::MAX_KEY_CHARS);
            }
            add("get", path, name, true, schema);
        }
    }

    let natural = |max: u64| json!({"type": "integer", "minimum": 0, "maximum": max});
    add(
        "get",
        "/factorial",
        "n",
        true,
        natural(bounds.factorial_max_n),
    );
    add(
        "get",
        "/fibonacci",
        "n",
        true,
        natural(bounds.fibonacci_max_n),
    );
    add(
        "get",
        "/ackermann",
        "m",
        true,
        json!({"type": "integer", "minimum": 0}),
    );
    add(
        "get",
        "/ackermann",
        "n",
        true,
        json!({"type": "integer", "minimum": 0}),
    );

    let positive = json!({"type": "integer", "minimum": 1});
    for path in ["/api/all", "/api/first", "/api/within-timeout"] {
        add("get", path, "timeout", true, positive.clone());
    }
    add("get", "/api/smart", "timeout", false, positive);

    // An empty value means "not given" to the rates routes, as it did to the old ones.
    let or_empty = |schema: Value| json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]});
    let date = || or_empty(json!({"type": "string", "format": "date"}));
    let symbols = || json!({"type": "string", "pattern": "^([A-Za-z]{3}(,[A-Za-z]{3})*)?$"});
    let code = json!({"type": "string", "pattern": "^[A-Za-z]{3}$"});
    add("get", "/rates", "date", false, date());
    add("get", "/rates", "symbols", false, symbols());
    add("get", "/rates/history", "from", false, date());
    add("get", "/rates/history", "to", false, date());
    add("get", "/rates/history", "symbols", false, symbols());
    add("get", "/rates/convert", "from", true, code.clone());
    add("get", "/rates/convert", "to", true, code);
    add(
        "get",
        "/rates/convert",
        "amount",
        false,
        or_empty(json!({"type": "number"})),
    );
    add("get", "/rates/convert", "date", false, date());
    add("post", "/rates/refresh", "date", false, date());
    declared
}

/// A report's fields are all required (the type takes them as optional only to name
/// a missing one in its error); a batch holds 1 to `REPORTS_BATCH_MAX` of them.
fn declare_reports(doc: &mut Value, bounds: &Bounds) {
    let report = schema_mut(doc, "ReportIn");
    report["required"] = json!(["server_name", "start_time", "end_time"]);
    let properties = properties_mut(report, "ReportIn");
    let mut set = |name: &str, extra: Value| {
        let property = properties
            .get_mut(name)
            .unwrap_or_else(|| panic!("ReportIn has no property {name}"));
        property
            .as_object_mut()
            .expect("a property is an object")
            .extend(extra.as_object().expect("an object").clone());
        property
            .as_object_mut()
            .expect("an object")
            .remove("nullable");
    };
    set(
        "server_name",
        json!({
            "minLength": 1, "maxLength": crate::reports::ServerName::MAX,
            "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
        }),
    );
    set("start_time", json!({"format": "date-time"}));
    set("end_time", json!({"format": "date-time"}));
    let batch = &mut operation_mut(doc, "post", "/process_reports")["requestBody"]["content"];
    let batch = batch
        .as_object_mut()
        .and_then(|content| content.values_mut().next())
        .expect("POST /process_reports has a body");
    batch["schema"]["minItems"] = json!(1);
    batch["schema"]["maxItems"] = json!(bounds.reports_batch_max);
}

/// The bearer scheme, and the operator operations that need it.
fn declare_admin(doc: &mut Value, metrics_public: bool) {
    doc["components"]["securitySchemes"] = json!({
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <ADMIN_TOKEN>`, the token the server was \
                started with; the operator reads take `READ_TOKEN` too."
        }
    });
    let metrics: &[(&str, &str)] = if metrics_public {
        &[]
    } else {
        &[("get", "/metrics")]
    };
    for (method, path) in ADMIN_OPERATIONS
        .iter()
        .chain(READ_OPERATIONS)
        .chain(metrics)
    {
        let operation = operation_mut(doc, method, path);
        operation["security"] = json!([{"adminToken": []}]);
    }
}

fn operation_mut<'a>(doc: &'a mut Value, method: &str, path: &str) -> &'a mut Value {
    doc["paths"]
        .get_mut(path)
        .and_then(|ops| ops.get_mut(method))
        .unwrap_or_else(|| panic!("the document has no {method} {path}"))
}

fn parameter_mut<'a>(doc: &'a mut Value, method: &str, path: &str, name: &str) -> &'a mut Value {
    operation_mut(doc, method, path)["parameters"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

fn schema_mut<'a>(doc: &'a mut Value, name: &str) -> &'a mut Value {
    doc["components"]["schemas"]
        .get_mut(name)
        .unwrap_or_else(|| panic!("the document has no schema {name}"))
}

fn properties_mut<'a>(schema: &'a mut Value, name: &str) -> &'a mut Map<String, Value> {
    schema["properties"]
        .as_object_mut()
        .unwrap_or_else(|| panic!("schema {name} has no properties"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document with one of everything `declare` amends, as poem-openapi writes it.
    fn generated() -> Value {
        let text = || json!({"type": "string"});
        let param =
            |name: &str| json!({"name": name, "in": "query", "required": false, "schema": text()});
        let mut paths = Map::new();
        for (method, path, name, _, _) in parameters(&bounds(false)) {
            let operation = paths
                .entry(path)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .entry(method)
                .or_insert_with(|| json!({"parameters": []}));
            operation["parameters"]
                .as_array_mut()
                .unwrap()
                .push(param(name));
        }
        let metrics = [("get", "/metrics")];
        for (method, path) in ADMIN_OPERATIONS
            .iter()
            .chain(READ_OPERATIONS)
            .chain(&metrics)
        {
            let ops = paths.entry(*path).or_insert_with(|| json!({}));
            if ops.get(*method).is_none() {
                ops[*method] = json!({});
            }
        }
        paths["/process_reports"]["post"]["requestBody"] = json!({
            "content": {"application/json": {"schema": {"type": "array"}}}
        });
        let mut schemas = Map::new();
        for name in REQUEST_SCHEMAS {
            schemas.insert((*name).to_owned(), json!({
                "type": "object",
                "required": ["action"],
                "properties": {"action": text(), "limit": {"type": "integer", "format": "uint64"}}
            }));
        }
        schemas.insert(
            "QueueView".to_owned(),
            json!({
                "type": "object",
                "properties": {"failure_rate": {"type": "number", "format": "double"}}
            }),
        );
        schemas["ReportIn"] = json!({
            "type": "object",
            "properties": {"server_name": text(), "start_time": text(), "end_time": text()}
        });
        json!({"paths": paths, "components": {"schemas": schemas}})
    }

    fn bounds(admin_token: bool) -> Bounds {
        Bounds {
            factorial_max_n: 10_000,
            fibonacci_max_n: 20_000,
            jobs_page_max: 500,
            reports_batch_max: 1_000,
            throughput_history_minutes: 180,
            admin_token,
            metrics_public: false,
        }
    }

    fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
    }

    #[test]
    fn required_parameters_and_configured_bounds_are_declared() {
        let doc = declare(generated(), &bounds(false));
        let n = parameter(&doc, "get", "/factorial", "n");
        assert_eq!(n["required"], true);
        assert_eq!(
            n["schema"],
            json!({"type": "integer", "minimum": 0, "maximum": 10_000})
        );
        assert_eq!(
            parameter(&doc, "get", "/fibonacci", "n")["schema"]["maximum"],
            20_000
        );
        assert_eq!(
            parameter(&doc, "get", "/jobs", "limit")["schema"]["maximum"],
            500
        );
        let minutes = &parameter(&doc, "get", "/queues/history", "minutes")["schema"];
        assert_eq!(
            (&minutes["maximum"], &minutes["default"]),
            (&json!(180), &json!(180))
        );
        assert_eq!(
            doc["components"]["schemas"]["QueueView"]["properties"]["failure_rate"]["nullable"],
            true
        );
        assert_eq!(
            parameter(&doc, "get", "/impression", "username")["required"],
            true
        );
        assert_eq!(
            parameter(&doc, "get", "/api/smart", "timeout")["required"],
            false
        );
        assert_eq!(
            parameter(&doc, "get", "/api/all", "timeout")["required"],
            true
        );
        let key = parameter(&doc, "post", "/process_report", "Idempotency-Key");
        assert_eq!(key["schema"]["pattern"], "^[!-~]{1,200}$");
    }

    #[test]
    fn request_bodies_refuse_unknown_fields_and_read_null_as_absent() {
        let doc = declare(generated(), &bounds(false));
        let bulk = &doc["components"]["schemas"]["BulkRequest"];
        assert_eq!(bulk["additionalProperties"], false);
        assert_eq!(bulk["properties"]["limit"]["nullable"], true);
        assert_eq!(bulk["properties"]["limit"]["minimum"], 0);
        assert!(bulk["properties"]["action"].get("nullable").is_none());
        let report = &doc["components"]["schemas"]["ReportIn"];
        assert!(
            report.get("additionalProperties").is_none(),
            "a report ignores extras"
        );
        assert_eq!(
            report["required"],
            json!(["server_name", "start_time", "end_time"])
        );
        assert!(report["properties"]["end_time"].get("nullable").is_none());
        assert_eq!(report["properties"]["end_time"]["format"], "date-time");
        let batch = &doc["paths"]["/process_reports"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            (&batch["minItems"], &batch["maxItems"]),
            (&json!(1), &json!(1_000))
        );
    }

    #[test]
    fn the_bearer_scheme_is_declared_only_when_a_token_is_set() {
        let open = declare(generated(), &bounds(false));
        assert!(open["components"].get("securitySchemes").is_none());
        assert!(
            open["paths"]["/jobs/bulk"]["post"]
                .get("security")
                .is_none()
        );
        let guarded = declare(generated(), &bounds(true));
        assert_eq!(
            guarded["components"]["securitySchemes"]["adminToken"]["scheme"],
            "bearer"
        );
        for (method, path) in ADMIN_OPERATIONS.iter().chain(READ_OPERATIONS) {
            assert_eq!(
                guarded["paths"][path][method]["security"],
                json!([{"adminToken": []}])
            );
        }
        assert!(
            guarded["paths"]["/metrics"]["get"]
                .get("security")
                .is_some()
        );
        let public = declare(
            generated(),
            &Bounds {
                metrics_public: true,
                ..bounds(true)
            },
        );
        assert!(public["paths"]["/metrics"]["get"].get("security").is_none());
    }

    #[test]
    #[should_panic(expected = "has no parameter n")]
    fn a_parameter_missing_from_the_routes_is_caught() {
        let mut doc = generated();
        doc["paths"]["/factorial"]["get"]["parameters"] = json!([]);
        declare(doc, &bounds(false));
    }
}
