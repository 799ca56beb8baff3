//! The contract of a job kind: [`Job`] ties a kind's name, its queue, its argument
//! type, its run and its effect together at compile time, so that nothing downstream
//! parses a kind or its arguments by hand.

use std::future::Future;

use sea_orm::{DatabaseTransaction, DbErr};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ids::JobId;

/// A kind's wire name, the logical queue its tasks go to, and what its attempts
/// spend their time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// Wire name, e.g. `system.noop`: stored in job records and carried by tasks.
    pub name: &'static str,
    /// Logical queue (before the deployment's prefix), e.g. `default`.
    pub queue: &'static str,
    /// What an attempt mostly does: it decides how many a worker runs at once.
    pub load: Load,
}

/// What a kind's attempts mostly do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Load {
    /// Wait (on the database, an upstream, a timer): many run at once
    /// (`WORKER_CONCURRENCY`), and their outcomes share batches.
    Io,
    /// Compute: about one per core (`WORKER_CPU_CONCURRENCY`).
    Cpu,
}

impl Kind {
    /// A kind whose attempts mostly wait.
    pub const fn io(name: &'static str, queue: &'static str) -> Kind {
        Kind {
            name,
            queue,
            load: Load::Io,
        }
    }

    /// A kind whose attempts mostly compute.
    pub const fn cpu(name: &'static str, queue: &'static str) -> Kind {
        Kind {
            name,
            queue,
            load: Load::Cpu,
        }
    }
}

/// A kind of job.
///
/// Workers run [`Job::run`] once per attempt with the arguments the producer
/// submitted; a success is recorded together with its [`Job::Effect`], in the database
/// transaction that marks the job `succeeded` (so a task delivered twice applies its
/// effect once). Producers submit with [`crate::NewJob::of`], typed by the same
/// [`Job::Args`].
pub trait Job: Send + Sync + 'static {
    /// Name and queue.
    const KIND: Kind;
    /// Arguments, as submitted and as kept in the job record.
    type Args: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The job record's `result` once it succeeded.
    type Output: Serialize + Send + 'static;
    /// Database writes of a success; `()` for a job whose record is all it writes.
    type Effect: Effect;

    /// One attempt. An error fails the attempt: it is retried with backoff until the
    /// job's attempts are spent, then the job is `dead` with the error's message.
    fn run(
        &self,
        attempt: Attempt<Self::Args>,
    ) -> impl Future<Output = Result<Done<Self::Output, Self::Effect>, JobError>> + Send;
}

/// What a producer asks for: a job of a known kind with its typed arguments.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) kind: Kind,
    pub(crate) args: Value,
    pub(crate) max_attempts: u32,
    pub(crate) idempotency_key: Option<String>,
}

/// A fingerprint of a job's kind and arguments: 64-bit FNV-1a of the kind's name and
/// the arguments' JSON, in hex. The JSON is made from the typed arguments, so equal
/// requests give equal text; FNV is stable across builds, unlike `std`'s hasher.
pub(crate) fn fingerprint(kind: Kind, args: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let json = args.to_string();
    for byte in kind.name.bytes().chain([0]).chain(json.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl NewJob {
    /// A job of `J` with `args`, allowed `max_attempts` attempts (at least one).
    pub fn of<J: Job>(args: &J::Args, max_attempts: u32) -> Result<Self, serde_json::Error> {
        Ok(NewJob {
            kind: J::KIND,
            args: serde_json::to_value(args)?,
            max_attempts,
            idempotency_key: None,
        })
    }

    /// The same job made once per `key` within the store's idempotency window: a
    /// second submission with the key returns the first job. The key is stored as
    /// given; producers scope it (by route) so that two producers cannot collide.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The kind it will run as.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// What one attempt runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt<A> {
    /// The job's id.
    pub job_id: JobId,
    /// This attempt's number, from 1.
    pub number: u32,
    /// The arguments.
    pub args: A,
}

/// A successful attempt: the record's result and the effect to apply with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Done<O, E> {
    /// Stored in the job record.
    pub output: O,
    /// Applied in the transaction that marks the job succeeded.
    pub effect: E,
}

impl<O> Done<O, ()> {
    /// A success whose record is all it writes.
    pub fn output(output: O) -> Self {
        Done { output, effect: () }
    }
}

/// Database writes a successful job leaves to apply.
///
/// [`Effect::apply`] receives the effects of every job of one kind whose success is
/// recorded in the same transaction (at least one), and only of those whose record
/// actually turned `succeeded` there: a duplicate delivery contributes nothing. An
/// implementation may merge them (one upsert per key with the summed count) as long
/// as the outcome is that of applying each.
pub trait Effect: Send + Sync + Sized + 'static {
    /// True for an effect that writes nothing: its successes need no transaction.
    const NONE: bool = false;

    /// Applies `effects` inside `tx`.
    fn apply(
        tx: &DatabaseTransaction,
        effects: &[&Self],
    ) -> impl Future<Output = Result<(), EffectError>> + Send;
}

impl Effect for () {
    const NONE: bool = true;

    async fn apply(_tx: &DatabaseTransaction, _effects: &[&Self]) -> Result<(), EffectError> {
        Ok(())
    }
}

/// Why an effect could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// The database refused or is unreachable.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The effect does not fit what is stored (an aggregate would overflow, a stored
    /// value is corrupt): retrying cannot help.
    #[error("{0}")]
    Rejected(String),
}

/// Why an attempt failed; its message is recorded on the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The stored arguments do not fit the kind's [`Job::Args`].
    #[error("invalid arguments: {0}")]
    InvalidArgs(#[from] serde_json::Error),
    /// The work failed.
    #[error("{0}")]
    Failed(String),
}

impl JobError {
    /// A failure with this message.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        JobError::Failed(message.to_string())
    }
}
