//! Stopping a consumer without leaving the backend mid-transaction, and keeping its
//! heartbeat independent of apalis's poll loop.
//!
//! apalis drives its backend (fetches, heartbeats, acks) only from the worker's poll
//! loop, and once shutdown begins that loop stops driving it until every in-flight task
//! has finished. A fetch or heartbeat caught half-way is then left unpolled. On SQLite
//! such a future holds the write lock of an open transaction, so the outcome writes of
//! the very tasks being drained wait on it until the busy timeout, past the shutdown
//! grace. A stop therefore goes in two steps:
//!
//! 1. [`DrainGate::drain`] closes the gate: the worker's service stops being ready, so
//!    no further task is fetched, while apalis keeps driving the backend (its pending
//!    fetch, heartbeats, acks) as before. A task that a fetch under way still brings
//!    is put back on its queue, not run ([`requeue_once_closed`]). The drain
//!    completes when no task is in flight.
//! 2. Only then is apalis told to shut down; with nothing in flight it closes at once
//!    (buffered tasks go back to the queue, pending acks are written).
//!
//! A pause (an operator's, per queue) holds the same gate without stopping anything:
//! while paused the service is not ready, a task that a fetch under way still brings
//! goes back to its queue, running tasks go on, and the resume wakes the service.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tower_layer::Layer;
use tower_service::Service;

use super::{Handler, Queue, QueueError};
use crate::task::Task;

/// Shared by a consumer's service and its stopping logic: whether new tasks may start,
/// and how many are running.
#[derive(Clone, Default)]
pub(crate) struct DrainGate(Arc<GateState>);

#[derive(Default)]
struct GateState {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    /// An operator paused the queue: like closed, but undone by a resume, which wakes
    /// the services that found the gate paused.
    paused: AtomicBool,
    paused_wakers: Mutex<Vec<Waker>>,
}

impl DrainGate {
    /// Stops new tasks from starting and completes once none is running.
    pub(crate) async fn drain(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        loop {
            let idle = self.0.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.0.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    /// Pauses (no task starts; running ones go on) or resumes the consumer.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.0.paused.store(paused, Ordering::SeqCst);
        if !paused {
            let wakers = std::mem::take(&mut *self.wakers());
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::SeqCst)
    }

    /// Whether the consumer stays not ready because of a pause, after arranging for
    /// `waker` to be woken by the resume.
    fn wait_while_paused(&self, waker: &Waker) -> bool {
        if !self.is_paused() {
            return false;
        }
        let mut wakers = self.wakers();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        drop(wakers);
        // A resume between the first look and the registration has woken nobody.
        self.is_paused()
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.0
            .paused_wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn started(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }
}

/// One running task; dropped when it finishes (or is dropped unfinished).
struct InFlight(DrainGate);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.idle.notify_waiters();
        }
    }
}

impl<S> Layer<S> for DrainGate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.clone(),
            ready: false,
        }
    }
}

/// The service behind a [`DrainGate`].
pub(crate) struct Gated<S> {
    inner: S,
    gate: DrainGate,
    /// Readiness already promised to the caller. A promise is kept even after the gate
    /// closes: the caller may be half-way through a fetch that must be allowed to
    /// finish, not abandoned. The task it brings is taken, and put back on its queue
    /// by [`requeue_once_closed`].
    ready: bool,
}

impl<S: Clone> Clone for Gated<S> {
    fn clone(&self) -> Self {
        Gated {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
            ready: false,
        }
    }
}

impl<S, Request> Service<Request> for Gated<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if self.ready {
            return Poll::Ready(Ok(()));
        }
        if self.gate.is_closed() {
            // Never ready again: the stop that closed the gate wakes the worker when
            // it hands over to apalis's own shutdown.
            return Poll::Pending;
        }
        if self.gate.wait_while_paused(cx.waker()) {
            return Poll::Pending;
        }
        let ready = self.inner.poll_ready(cx);
        self.ready = matches!(ready, Poll::Ready(Ok(())));
        ready
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.ready = false;
        let in_flight = self.gate.started();
        let running = self.inner.call(request);
        async move {
            let result = running.await;
            drop(in_flight);
            result
        }
        .boxed()
    }
}

/// `handler`, except for a task that reaches it after `gate` closed: that one goes back
/// to the queue (under a fresh delivery id; its record stays `queued`) instead of
/// starting on a worker that is stopping, as Sidekiq requeues what it fetched after a
/// quiet signal. The gate keeps a readiness it promised before closing, so that a
/// fetch under way finishes; this is where the task of such a fetch ends up. If the
/// push fails the task runs here after all: it is never dropped.
pub(crate) fn requeue_once_closed(handler: Handler, gate: DrainGate, queue: Queue) -> Handler {
    Arc::new(move |task: Task| {
        let (handler, gate, queue) = (handler.clone(), gate.clone(), queue.clone());
        async move {
            if gate.is_closed() || gate.is_paused() {
                let job = task.envelope.job_id;
                let why = if gate.is_closed() { "stopping" } else { "paused" };
                match queue.push_again(&task, Duration::ZERO).await {
                    Ok(()) => {
                        tracing::info!(%job, "{why}: task put back on its queue");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(%job, %err, "{why}: could not put the task back; running it here");
                    }
                }
            }
            handler(task).await;
        }
        .boxed()
    })
}

/// Runs a consumer (`run`) and calls `beat` every `every` until it ends.
///
/// apalis heartbeats only from its poll loop, and not while a fetched batch is still
/// being handed out, nor once shutdown begins. A worker busy with long tasks, or
/// draining them, would then miss the orphan window (heartbeat × missed heartbeats) and
/// be declared dead: another worker would run its tasks a second time and this one's
/// acks would fail. `beat` keeps it alive from its own timer. It only refreshes a
/// worker that is still registered, so a worker already declared dead stays dead.
pub(crate) async fn keep_alive_while_running<B>(
    run: BoxFuture<'static, Result<(), QueueError>>,
    every: Duration,
    beat: B,
) -> Result<(), QueueError>
where
    B: Fn() -> BoxFuture<'static, Result<(), QueueError>>,
{
    let beats = async {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = beat().await {
                tracing::warn!(%err, "heartbeat failed");
            }
        }
    };
    tokio::select! {
        result = run => result,
        never = beats => never,
    }
}

/// apalis's shutdown signal for a consumer gated by `gate`: `shutdown`, then the drain.
pub(crate) fn after_drain(
    shutdown: impl Future<Output = ()> + Send + 'static,
    gate: DrainGate,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    async move {
        shutdown.await;
        gate.drain().await;
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A service that is always ready and runs its request (a future) as the call.
    #[derive(Clone)]
    struct RunIt;

    impl Service<BoxFuture<'static, ()>> for RunIt {
        type Response = ();
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<(), Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: BoxFuture<'static, ()>) -> Self::Future {
            request.map(Ok).boxed()
        }
    }

    fn poll_ready(service: &mut Gated<RunIt>) -> Poll<Result<(), Infallible>> {
        service.poll_ready(&mut Context::from_waker(futures::task::noop_waker_ref()))
    }

    #[tokio::test]
    async fn a_closed_gate_keeps_its_promise_then_refuses_and_drains_when_idle() {
        let gate = DrainGate::default();
        let mut service = gate.layer(RunIt);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        assert!(poll_ready(&mut service).is_ready());
        let running = tokio::spawn(
            service.call(
                async move {
                    finished.await.ok();
                }
                .boxed(),
            ),
        );

        // Promised before the gate closed: the promise holds once.
        assert!(poll_ready(&mut service).is_ready());
        let draining = tokio::spawn({
            let gate = gate.clone();
            async move { gate.drain().await }
        });
        tokio::task::yield_now().await;
        assert!(gate.is_closed());
        assert!(poll_ready(&mut service).is_ready(), "a promise is kept");
        service
            .call(async {}.boxed())
            .await
            .expect("the promised call runs");
        assert!(poll_ready(&mut service).is_pending(), "closed: no new task");

        tokio::task::yield_now().await;
        assert!(!draining.is_finished(), "a task is still running");
        finish.send(()).expect("the task waits");
        running.await.expect("join").expect("ran");
        tokio::time::timeout(Duration::from_secs(5), draining)
            .await
            .expect("the drain ends once nothing runs")
            .expect("join");
    }

    #[tokio::test]
    async fn a_drain_with_nothing_running_ends_at_once() {
        let gate = DrainGate::default();
        tokio::time::timeout(Duration::from_secs(5), gate.drain())
            .await
            .expect("nothing to wait for");
    }

    #[tokio::test]
    async fn the_heartbeat_keeps_its_own_time_while_the_consumer_runs() {
        // The consumer ends only after three beats: they come from the helper's own
        // timer, not from anything the consumer does.
        let beats = Arc::new(AtomicUsize::new(0));
        let third = Arc::new(Notify::new());
        let run = {
            let third = third.clone();
            async move {
                third.notified().await;
                Ok(())
            }
            .boxed()
        };
        let counted = beats.clone();
        let beat = move || {
            if counted.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                third.notify_one();
            }
            async { Ok(()) }.boxed()
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            keep_alive_while_running(run, Duration::from_millis(10), beat),
        )
        .await
        .expect("three beats came")
        .expect("the consumer's own result");
    }

    /// An embedded queue on a fresh SQLite file, and the pool behind it.
    async fn embedded_queue() -> (Queue, sea_orm::DatabaseConnection, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/queue.db?mode=rwc", dir.path().display());
        let db = crate::db::connect(&url, 2, Duration::from_secs(5))
            .await
            .expect("sqlite");
        let backends = crate::config::BackendConfig {
            database_url: url,
            queue_prefix: "drain".into(),
            database_max_connections: 2,
            ..crate::config::BackendConfig::default()
        };
        let queue = Queue::connect(&backends, &crate::config::DeliveryConfig::default(), &db)
            .await
            .expect("embedded queue");
        (queue, db, dir)
    }

    /// A handler that counts the tasks it ran.
    fn counting(ran: Arc<AtomicUsize>) -> Handler {
        Arc::new(move |_task: Task| {
            ran.fetch_add(1, Ordering::SeqCst);
            async {}.boxed()
        })
    }

    /// A requeueing handler over `queue` whose gate is already closed (the consumer
    /// is stopping), and the count of tasks it ran.
    async fn behind_a_closed_gate(queue: &Queue) -> (Handler, Arc<AtomicUsize>) {
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = DrainGate::default();
        let handler = requeue_once_closed(counting(ran.clone()), gate.clone(), queue.clone());
        gate.drain().await;
        (handler, ran)
    }

    fn task() -> Task {
        Task {
            queue: "default".to_owned(),
            envelope: crate::task::Envelope {
                job_id: crate::JobId::generate(),
                task_id: crate::TaskId::generate(),
                kind: "test.noop".to_owned(),
                args: None,
            },
        }
    }

    #[tokio::test]
    async fn a_task_reaching_an_open_gate_runs_and_stays_off_the_queue() {
        let (queue, _db, _dir) = embedded_queue().await;
        let ran = Arc::new(AtomicUsize::new(0));
        let handler =
            requeue_once_closed(counting(ran.clone()), DrainGate::default(), queue.clone());
        let task = task();
        handler(task.clone()).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(queue.depth(&task.queue).await.expect("depth"), 0);
    }

    #[tokio::test]
    async fn a_task_reaching_a_closed_gate_goes_back_to_its_queue_unrun() {
        let (queue, _db, _dir) = embedded_queue().await;
        let (handler, ran) = behind_a_closed_gate(&queue).await;
        let task = task();
        handler(task.clone()).await;
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "a stopping worker started a task"
        );
        assert_eq!(
            queue.depth(&task.queue).await.expect("depth"),
            1,
            "the task was not put back on its queue"
        );
    }

    #[tokio::test]
    async fn a_task_that_cannot_go_back_runs_on_the_stopping_worker() {
        let (queue, db, _dir) = embedded_queue().await;
        let (handler, ran) = behind_a_closed_gate(&queue).await;
        // The queue's pool is the database's: closed, every push fails.
        db.close().await.expect("close");
        let task = task();
        assert!(queue.push_again(&task, Duration::ZERO).await.is_err());
        handler(task).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the task was dropped");
    }
}
