//! Wake-ups for idle workers: a push signal, or at the latest a poll interval.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::Notify;

/// A stream that yields when `signal` is notified, or after `interval` of silence.
///
/// apalis parks an idle worker until its poll strategy yields; this is that strategy.
pub(crate) type WakeStream = Pin<Box<dyn Stream<Item = ()> + Send>>;

pub(crate) fn wake_stream(signal: Arc<Notify>, interval: Duration) -> WakeStream {
    Box::pin(futures::stream::unfold(signal, move |signal| async move {
        // A timeout is not an error here: it is the safety net for a missed signal.
        let _ = tokio::time::timeout(interval, signal.notified()).await;
        Some(((), signal))
    }))
}
