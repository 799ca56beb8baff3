//! `GET /vast`: a stand-in VAST ad server that answers one small linear ad.

use poem::{Response, handler};

/// A minimal VAST 4 document with one linear creative.
pub const VAST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.0">
  <Ad id="conveyor-sandbox">
    <InLine>
      <AdSystem>Conveyor sandbox</AdSystem>
      <AdTitle>Sandbox ad</AdTitle>
      <Impression><![CDATA[http://127.0.0.1:5000/impression]]></Impression>
      <Creatives>
        <Creative>
          <Linear>
            <Duration>00:00:15</Duration>
            <MediaFiles>
              <MediaFile delivery="progressive" type="video/mp4" width="640" height="360"><![CDATA[http://127.0.0.1:5001/media/sandbox.mp4]]></MediaFile>
            </MediaFiles>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
</VAST>
"#;

/// Handles `GET /vast`.
#[handler]
pub(crate) fn answer() -> Response {
    Response::builder()
        .content_type("application/xml")
        .body(VAST)
}
