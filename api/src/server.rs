//! The server loop: hyper's HTTP/1.1 under the poem endpoint, with the bounds poem's
//! own server does not set. A client must send a request's headers within
//! `HTTP_HEADER_TIMEOUT_MS` of the connection being ready for them (which also closes
//! a keep-alive connection left idle that long), and at most `HTTP_MAX_CONNECTIONS`
//! connections are served at once (the next ones wait in the listen backlog), so that
//! clients that open connections and send nothing, or stop halfway through their
//! headers, cannot take every file descriptor. A request hyper cannot read is answered
//! by hyper itself, before any endpoint sees it; `JsonAnswers` gives that answer the
//! JSON error body every other error has.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Header fields a request may have; one more is answered 431.
const MAX_HEADERS: usize = 100;
/// Bytes a request's head (request line and headers) may take; more is answered 431.
/// hyper's own default, stated here so that the answer can say it.
const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's fixed bound on a URI; a longer one is answered 414.
const MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// Bounds of the server loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `endpoint` on `listener` until `shutdown` completes; then stops accepting
/// and lets open requests finish for up to `grace` (idle connections close at once).
pub async fn run(
    listener: TcpListener,
    endpoint: impl Endpoint + 'static,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let endpoint = Arc::new(endpoint.map_to_response());
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a little and go on.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written whole; no reason to wait for more to send.
        let _ = stream.set_nodelay(true);
        let endpoint = endpoint.clone();
        let local = local.clone();
        let remote = RemoteAddr(Addr::SocketAddr(peer));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let request = poem::Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
            // Boxed: the endpoint's future is several kilobytes of nested middleware
            // state, which hyper would otherwise move by value into its dispatcher
            // for every request; boxed, it moves a pointer.
            Box::pin(async move {
                let response = endpoint.get_response(request).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            })
        });
        let connection = graceful
            .watch(builder.serve_connection(TokioIo::new(JsonAnswers::new(stream)), service));
        tokio::spawn(async move {
            // A client that went away or timed out is its own business.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with requests still open; closing them");
    }
    Ok(())
}

/// A connection's stream that rewrites hyper's own answers. hyper answers a request it
/// cannot read (a malformed request line or header, a URI over `MAX_URI_BYTES`, more
/// than `MAX_HEADERS` fields or a head over `MAX_HEAD_BYTES`) by itself, with a lone
/// head (status line, `connection: close`, `content-length: 0`, `date`) and then closes
/// the connection.
/// Such a head is written here as the same status with a `{"error", "message"}` body;
/// every other write passes through untouched.
struct JsonAnswers<S> {
    inner: S,
    /// The rewritten answer under way: its bytes, how many are out, and the length of
    /// the head hyper handed over, which the write reports once all are out.
    rewriting: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonAnswers<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            rewriting: None,
        }
    }
}

/// The JSON answer in place of `head`, when `head` is one of hyper's own.
fn rewritten(head: &[u8]) -> Option<Vec<u8>> {
    // Every answer passes here: most are told apart by their first bytes and length.
    if head.len() > 256 || !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let (status, error, message) = match lines.next()? {
        "HTTP/1.1 400 Bad Request" => (
            "400 Bad Request",
            "bad_request",
            "the request could not be read as HTTP/1.1: a malformed request line or header"
                .to_owned(),
        ),
        "HTTP/1.1 414 URI Too Long" => (
            "414 URI Too Long",
            "uri_too_long",
            format!("the request's URI is longer than {MAX_URI_BYTES} bytes"),
        ),
        "HTTP/1.1 431 Request Header Fields Too Large" => (
            "431 Request Header Fields Too Large",
            "header_fields_too_large",
            format!(
                "the request has more than {MAX_HEADERS} header fields, or its request line \
                 and headers take more than {MAX_HEAD_BYTES} bytes"
            ),
        ),
        _ => return None,
    };
    // Nothing but an empty length, a date and a close: a head of hyper's, not an
    // endpoint's (those have a type or a body).
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") && value == "0" {
            empty = true;
        } else if !(name.eq_ignore_ascii_case("date")
            || name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close"))
        {
            return None;
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> JsonAnswers<S> {
    /// Starts rewriting `head` if it is one of hyper's own answers.
    fn begin_rewrite(&mut self, head: &[u8]) -> bool {
        self.rewriting = rewritten(head).map(|answer| (answer, 0, head.len()));
        self.rewriting.is_some()
    }

    /// Writes what is left of the rewritten answer; ready with the head's length once
    /// all of it is out.
    fn poll_rewriting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, claimed)) = &mut self.rewriting {
            if *written == bytes.len() {
                let claimed = *claimed;
                self.rewriting = None;
                return Poll::Ready(Ok(claimed));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonAnswers<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonAnswers<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A write that was pending is called again with the same bytes.
        if self.rewriting.is_some() || self.begin_rewrite(buf) {
            return self.poll_rewriting(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's own answer is one buffer; an endpoint's answer with a body is several.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && (self.rewriting.is_some() || self.begin_rewrite(only))
        {
            return self.poll_rewriting(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::rewritten;

    #[test]
    fn only_hyper_s_own_answers_are_rewritten() {
        let own = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                    content-length: 0\r\n\
                    date: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewritten(own).expect("rewritten")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "header_fields_too_large");
        // An endpoint's answer has a type, a body, or another status.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\n",
        ] {
            assert!(rewritten(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
