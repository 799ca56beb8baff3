//! `/ui`: the operator dashboard, a page of plain HTML, CSS and JavaScript embedded
//! in the binary. It reads and acts only through the JSON routes, so it has no data
//! of its own; it is not part of the OpenAPI document.

use poem::http::header;
use poem::{Response, Route, get, handler};

/// The page; it loads the script and the style from `/ui/…` (absolute, so that `/ui`
/// and `/ui/` both work).
const INDEX_HTML: &str = include_str!("../ui/index.html");
/// Polling, rendering and the operator actions.
const APP_JS: &str = include_str!("../ui/app.js");
/// Light and dark palettes, a layout that folds to one column on a phone.
const APP_CSS: &str = include_str!("../ui/app.css");

/// What the page may load and do: its own script, style and JSON routes, nothing
/// inline, nothing framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// An embedded asset with its content type; `no-cache` so that a new binary's page
/// is picked up at once (the files are small). The page may not be framed (no
/// clickjacking of the operator buttons) nor its types sniffed.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(body)
}

#[handler]
fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The dashboard's routes, to be nested at `/ui`; any other path under it is 404.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(index))
        .at("/index.html", get(index))
        .at("/app.js", get(script))
        .at("/app.css", get(style))
}
