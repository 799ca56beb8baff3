//! The registry of job kinds: each [`Job`] registered once, found by its wire name.
//! Workers run what it holds and know no kind themselves; a task whose kind it does
//! not hold is recorded `dead` (never routed somewhere by default).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::ids::{JobId, TaskId};
use crate::job::{Attempt, Job, JobError, Kind, Load};
use crate::store::{AttemptRun, JobStore, StoreError, Success};
use crate::task::Envelope;

/// A registered kind with its type erased: what a worker runs.
pub trait Runner: Send + Sync {
    /// Name and queue.
    fn kind(&self) -> Kind;

    /// Runs attempt `number` of job `id` with `args` (read as the kind's type); a
    /// success comes back ready to be recorded.
    fn run<'a>(
        &'a self,
        id: JobId,
        args: &'a Value,
        number: u32,
    ) -> BoxFuture<'a, Result<Ran, JobError>>;
}

/// Records a success: the store, the job and task that ran, the attempt and how long
/// it took.
type Commit = Box<
    dyn for<'s> FnOnce(
            &'s JobStore,
            JobId,
            TaskId,
            AttemptRun,
            Duration,
        ) -> BoxFuture<'s, Result<bool, StoreError>>
        + Send,
>;

/// A successful attempt, not yet recorded.
pub struct Ran {
    commit: Commit,
}

impl fmt::Debug for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ran").finish_non_exhaustive()
    }
}

impl Ran {
    /// Marks the job succeeded with its result and applies its effect, in one
    /// transaction; false (nothing applied) when another delivery finished it first.
    pub async fn record(
        self,
        store: &JobStore,
        envelope: &Envelope,
        attempt: AttemptRun,
        elapsed: Duration,
    ) -> Result<bool, StoreError> {
        (self.commit)(store, envelope.job_id, envelope.task_id, attempt, elapsed).await
    }
}

struct Registered<J>(J);

impl<J: Job> Runner for Registered<J> {
    fn kind(&self) -> Kind {
        J::KIND
    }

    fn run<'a>(
        &'a self,
        id: JobId,
        args: &'a Value,
        number: u32,
    ) -> BoxFuture<'a, Result<Ran, JobError>> {
        Box::pin(async move {
            let args = J::Args::deserialize(args)?;
            let attempt = Attempt {
                job_id: id,
                number,
                args,
            };
            let done = self.0.run(attempt).await?;
            let result: Value = serde_json::to_value(&done.output)
                .map_err(|e| JobError::failed(format!("the result could not be encoded: {e}")))?;
            let effect = done.effect;
            let commit: Commit = Box::new(move |store, job_id, task_id, attempt, elapsed| {
                Box::pin(store.succeed(
                    J::KIND.name,
                    Success {
                        job_id,
                        task_id,
                        attempt,
                        result,
                        elapsed,
                        effect,
                    },
                ))
            });
            Ok(Ran { commit })
        })
    }
}

/// Every job kind a build runs, by wire name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn Runner>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `job` under its kind's name.
    ///
    /// # Panics
    /// When a kind of that name is registered already: two kinds sharing a name would
    /// make stored records ambiguous, a programming error found at start-up.
    pub fn register<J: Job>(mut self, job: J) -> Self {
        let previous = self.kinds.insert(J::KIND.name, Arc::new(Registered(job)));
        assert!(
            previous.is_none(),
            "job kind '{}' is registered twice",
            J::KIND.name
        );
        self
    }

    /// The kind named `name`, if this build runs it.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Runner>> {
        self.kinds.get(name)
    }

    /// Every registered kind, by name.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.kinds.values().map(|runner| runner.kind())
    }

    /// Every logical queue some kind uses, sorted, each once.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<_> = self.kinds().map(|kind| kind.queue).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// The load of `queue`'s attempts: CPU-bound when any of its kinds computes.
    pub fn load_of(&self, queue: &str) -> Load {
        if self
            .kinds()
            .any(|kind| kind.queue == queue && kind.load == Load::Cpu)
        {
            Load::Cpu
        } else {
            Load::Io
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Done;

    struct Ping;

    impl Job for Ping {
        const KIND: Kind = Kind::io("test.ping", "tests");
        type Args = ();
        type Output = &'static str;
        type Effect = ();

        async fn run(&self, _attempt: Attempt<()>) -> Result<Done<&'static str, ()>, JobError> {
            Ok(Done::output("pong"))
        }
    }

    struct Other;

    impl Job for Other {
        const KIND: Kind = Kind::cpu("test.other", "default");
        type Args = u32;
        type Output = u32;
        type Effect = ();

        async fn run(&self, attempt: Attempt<u32>) -> Result<Done<u32, ()>, JobError> {
            Ok(Done::output(attempt.args))
        }
    }

    #[test]
    fn kinds_are_found_by_name_and_queues_listed_once() {
        let registry = Registry::new().register(Ping).register(Other);
        assert_eq!(
            registry.get("test.ping").map(|r| r.kind()),
            Some(Ping::KIND)
        );
        assert!(registry.get("test.nope").is_none());
        assert_eq!(registry.queues(), ["default", "tests"]);
        assert_eq!(registry.load_of("default"), Load::Cpu);
        assert_eq!(registry.load_of("tests"), Load::Io);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_kind_cannot_be_registered_twice() {
        let _ = Registry::new().register(Ping).register(Ping);
    }
}
