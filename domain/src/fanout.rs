//! Request policies for calling the upstream work server, as clock-free state machines.
//!
//! The machine decides *what* to do; a driver owns the sockets and timers. The driver
//! executes each [`Command`] and feeds back every [`Event`]: the finish of a request it
//! fired, the hedge timer it was asked to start, and the request's deadline (which it
//! arms itself, since only it knows the deadline; it sends none when there is none).
//! Keeping time out of the machine is what lets every interleaving be tested exhaustively.
//!
//! Once a [`Command::Answer`] is returned the machine is done: the driver drops all
//! in-flight requests and timers, and any later event is ignored.

use std::time::Duration;

/// How many requests the fan-out policies fire (and the most `smart` ever fires).
pub const FANOUT: usize = 3;

/// The `smart` policy's default wait before hedging.
pub const DEFAULT_HEDGE_AFTER: Duration = Duration::from_millis(300);

/// How to call the work server and when to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Fire 3; once all have finished, answer every success in arrival order
    /// (502 if none succeeded); 504 if the deadline comes first.
    All,
    /// Fire 3; answer the first success; 502 once all 3 failed; 504 at the deadline.
    First,
    /// Fire 3; answer the successes so far at the deadline, or as soon as all 3 have
    /// finished. Never an error, possibly an empty list.
    WithinTimeout,
    /// Fire 1; if it has not succeeded after `hedge_after`, or fails sooner, fire 2 more.
    /// The first success of those fired wins; 502 when all fired failed; 504 at the deadline.
    Smart {
        /// How long the single request may run before hedging.
        hedge_after: Duration,
    },
}

impl Policy {
    /// `smart` with the default 300 ms hedge.
    pub const fn smart() -> Self {
        Self::Smart {
            hedge_after: DEFAULT_HEDGE_AFTER,
        }
    }
}

/// Identifies one of the (at most [`FANOUT`]) requests of a fan-out.
///
/// Only the machine mints these, in [`Command::Fire`], so a driver cannot refer to a
/// request that was never fired except by mixing up machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u8);

impl RequestId {
    /// 0-based position in firing order, e.g. for logs or a slot array.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A request that ended without a usable result (error status, transport error, bad body).
///
/// It carries no detail: the policies treat every failure alike, and the driver logs
/// the cause before reporting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure;

/// Something that happened, reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// A fired request ended.
    Finished {
        /// Which request.
        request: RequestId,
        /// Its payload, or why it is unusable.
        outcome: Result<T, Failure>,
    },
    /// The timer started by [`Command::StartHedgeTimer`] expired.
    HedgeTimer,
    /// The request's deadline passed.
    Deadline,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<T> {
    /// Send this request to the work server now.
    Fire(RequestId),
    /// Deliver [`Event::HedgeTimer`] after this long; it may be cancelled or delivered
    /// late with no harm, since a stale timer is ignored.
    StartHedgeTimer(Duration),
    /// Reply to the client and drop everything in flight; the machine is done.
    Answer(Answer<T>),
}

/// The reply to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// 200 with a list of payloads in arrival order (`all`, `within-timeout`).
    Ok(Vec<T>),
    /// 200 with one payload (`first`, `smart`).
    Single(T),
    /// 502: every request fired failed.
    AllFailed,
    /// 504: the deadline passed before an answer was possible.
    DeadlineExceeded,
}

impl<T> Answer<T> {
    /// The same answer with each payload mapped by `f`.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Answer<U> {
        match self {
            Answer::Ok(items) => Answer::Ok(items.into_iter().map(f).collect()),
            Answer::Single(item) => Answer::Single(f(item)),
            Answer::AllFailed => Answer::AllFailed,
            Answer::DeadlineExceeded => Answer::DeadlineExceeded,
        }
    }
}

/// The HTTP status code for an answer.
pub fn http_status<T>(answer: &Answer<T>) -> u16 {
    match answer {
        Answer::Ok(_) | Answer::Single(_) => 200,
        Answer::AllFailed => 502,
        Answer::DeadlineExceeded => 504,
    }
}

/// The set of fired requests that have not finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight(u8);

impl InFlight {
    const fn of(ids: &[u8]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < ids.len() {
            bits |= 1 << ids[i];
            i += 1;
        }
        Self(bits)
    }

    /// Marks `id` finished; false if it was not in flight, i.e. a stray event.
    fn finish(&mut self, id: RequestId) -> bool {
        let bit = 1 << id.0;
        let was = self.0 & bit != 0;
        self.0 &= !bit;
        was
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Where a fan-out stands; each variant holds only what that stage needs.
#[derive(Debug)]
enum State<T> {
    /// `all` and `within-timeout`: collect every success until all finish.
    Gather {
        in_flight: InFlight,
        successes: Vec<T>,
        /// `within-timeout` answers what it has at the deadline; `all` gives up.
        partial_at_deadline: bool,
    },
    /// `first`, and `smart` once hedged: the first success wins.
    Race { in_flight: InFlight },
    /// `smart` before hedging: only request 0 is out and the hedge timer runs.
    Probe,
    /// An answer was given.
    Done,
}

/// One fan-out's decision state; see the module docs for the driver protocol.
#[derive(Debug)]
pub struct Fanout<T> {
    state: State<T>,
}

const FIRST: RequestId = RequestId(0);
const HEDGES: [RequestId; 2] = [RequestId(1), RequestId(2)];
const ALL_THREE: InFlight = InFlight::of(&[0, 1, 2]);

impl<T> Fanout<T> {
    /// A fresh machine for `policy`, and the commands to run immediately.
    pub fn start(policy: Policy) -> (Self, Vec<Command<T>>) {
        let fire_all = || {
            (0..FANOUT as u8)
                .map(|i| Command::Fire(RequestId(i)))
                .collect()
        };
        let (state, commands) = match policy {
            Policy::All | Policy::WithinTimeout => (
                State::Gather {
                    in_flight: ALL_THREE,
                    successes: Vec::with_capacity(FANOUT),
                    partial_at_deadline: policy == Policy::WithinTimeout,
                },
                fire_all(),
            ),
            Policy::First => (
                State::Race {
                    in_flight: ALL_THREE,
                },
                fire_all(),
            ),
            Policy::Smart { hedge_after } => (
                State::Probe,
                vec![Command::Fire(FIRST), Command::StartHedgeTimer(hedge_after)],
            ),
        };
        (Self { state }, commands)
    }

    /// Whether the answer has been given, so further events are pointless.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Advances on one event, returning the commands it triggers (often none).
    ///
    /// Events that cannot matter — anything after the answer, a stale hedge timer, a
    /// finish for a request not in flight — are ignored rather than treated as errors,
    /// because timers and sockets race with the answer in any real driver.
    pub fn on_event(&mut self, event: Event<T>) -> Vec<Command<T>> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let (next, commands) = step(state, event);
        self.state = next;
        commands
    }
}

fn answer<T>(answer: Answer<T>) -> (State<T>, Vec<Command<T>>) {
    (State::Done, vec![Command::Answer(answer)])
}

fn step<T>(state: State<T>, event: Event<T>) -> (State<T>, Vec<Command<T>>) {
    match (state, event) {
        (State::Done, _) => (State::Done, Vec::new()),

        (
            State::Gather {
                mut in_flight,
                mut successes,
                partial_at_deadline,
            },
            Event::Finished { request, outcome },
        ) => {
            if in_flight.finish(request) {
                if let Ok(payload) = outcome {
                    successes.push(payload);
                }
                if in_flight.is_empty() {
                    // Only `all` turns "nothing succeeded" into an error.
                    return if successes.is_empty() && !partial_at_deadline {
                        answer(Answer::AllFailed)
                    } else {
                        answer(Answer::Ok(successes))
                    };
                }
            }
            let state = State::Gather {
                in_flight,
                successes,
                partial_at_deadline,
            };
            (state, Vec::new())
        }
        (
            State::Gather {
                successes,
                partial_at_deadline,
                ..
            },
            Event::Deadline,
        ) => {
            if partial_at_deadline {
                answer(Answer::Ok(successes))
            } else {
                answer(Answer::DeadlineExceeded)
            }
        }

        (State::Race { mut in_flight }, Event::Finished { request, outcome }) => {
            if !in_flight.finish(request) {
                return (State::Race { in_flight }, Vec::new());
            }
            match outcome {
                Ok(payload) => answer(Answer::Single(payload)),
                Err(Failure) if in_flight.is_empty() => answer(Answer::AllFailed),
                Err(Failure) => (State::Race { in_flight }, Vec::new()),
            }
        }
        (State::Race { .. } | State::Probe, Event::Deadline) => answer(Answer::DeadlineExceeded),

        (State::Probe, Event::Finished { request, outcome }) if request == FIRST => match outcome {
            Ok(payload) => answer(Answer::Single(payload)),
            // A fast failure hedges at once rather than idling until the timer.
            Err(Failure) => hedge(InFlight::of(&[1, 2])),
        },
        (State::Probe, Event::HedgeTimer) => hedge(ALL_THREE),

        // Stray events: a hedge timer outside the probe, a finish for a request not fired.
        (state @ (State::Gather { .. } | State::Race { .. }), Event::HedgeTimer)
        | (state @ State::Probe, Event::Finished { .. }) => (state, Vec::new()),
    }
}

fn hedge<T>(in_flight: InFlight) -> (State<T>, Vec<Command<T>>) {
    (
        State::Race { in_flight },
        HEDGES.iter().copied().map(Command::Fire).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- Readable scenarios -------------------------------------------------------------

    fn ok(i: u8, payload: u64) -> Event<u64> {
        Event::Finished {
            request: RequestId(i),
            outcome: Ok(payload),
        }
    }

    fn fail(i: u8) -> Event<u64> {
        Event::Finished {
            request: RequestId(i),
            outcome: Err(Failure),
        }
    }

    fn fire(i: u8) -> Command<u64> {
        Command::Fire(RequestId(i))
    }

    fn reply(a: Answer<u64>) -> Vec<Command<u64>> {
        vec![Command::Answer(a)]
    }

    const NOTHING: Vec<Command<u64>> = Vec::new();

    #[test]
    fn smart_success_before_hedge_fires_only_one_request() {
        let (mut m, cmds) = Fanout::start(Policy::smart());
        assert_eq!(
            cmds,
            vec![
                fire(0),
                Command::StartHedgeTimer(Duration::from_millis(300))
            ]
        );
        assert_eq!(m.on_event(ok(0, 7)), reply(Answer::Single(7)));
        assert!(m.is_done());
        // The timer the driver forgot to cancel changes nothing.
        assert_eq!(m.on_event(Event::HedgeTimer), NOTHING);
    }

    #[test]
    fn smart_failure_before_hedge_fires_two_more_at_once() {
        let (mut m, _) = Fanout::start(Policy::smart());
        assert_eq!(m.on_event(fail(0)), vec![fire(1), fire(2)]);
        // The hedge timer still expiring later must not fire anything else.
        assert_eq!(m.on_event(Event::HedgeTimer), NOTHING);
        assert_eq!(m.on_event(fail(1)), NOTHING);
        assert_eq!(m.on_event(ok(2, 9)), reply(Answer::Single(9)));
    }

    #[test]
    fn smart_silence_past_hedge_fires_two_more_and_first_may_still_win() {
        let hedge_after = Duration::from_millis(120);
        let (mut m, cmds) = Fanout::start(Policy::Smart { hedge_after });
        assert_eq!(cmds, vec![fire(0), Command::StartHedgeTimer(hedge_after)]);
        assert_eq!(m.on_event(Event::HedgeTimer), vec![fire(1), fire(2)]);
        assert_eq!(m.on_event(fail(2)), NOTHING);
        assert_eq!(m.on_event(ok(0, 5)), reply(Answer::Single(5)));
    }

    #[test]
    fn smart_all_three_failing_is_502() {
        let (mut m, _) = Fanout::start(Policy::smart());
        m.on_event(Event::HedgeTimer);
        assert_eq!(m.on_event(fail(1)), NOTHING);
        assert_eq!(m.on_event(fail(0)), NOTHING);
        let cmds = m.on_event(fail(2));
        assert_eq!(cmds, reply(Answer::AllFailed));
        let Command::Answer(a) = &cmds[0] else {
            unreachable!()
        };
        assert_eq!(http_status(a), 502);
    }

    #[test]
    fn smart_deadline_before_hedge_is_504() {
        let (mut m, _) = Fanout::start(Policy::smart());
        assert_eq!(m.on_event(Event::Deadline), reply(Answer::DeadlineExceeded));
        assert_eq!(m.on_event(ok(0, 1)), NOTHING);
    }

    #[test]
    fn within_timeout_answers_empty_list_at_deadline() {
        let (mut m, cmds) = Fanout::start(Policy::WithinTimeout);
        assert_eq!(cmds, vec![fire(0), fire(1), fire(2)]);
        assert_eq!(m.on_event(fail(1)), NOTHING);
        let cmds = m.on_event(Event::Deadline);
        assert_eq!(cmds, reply(Answer::Ok(vec![])));
        let Command::Answer(a) = &cmds[0] else {
            unreachable!()
        };
        assert_eq!(http_status(a), 200);
    }

    #[test]
    fn within_timeout_answers_early_once_all_finished() {
        let (mut m, _) = Fanout::start(Policy::WithinTimeout);
        assert_eq!(m.on_event(ok(2, 30)), NOTHING);
        assert_eq!(m.on_event(fail(0)), NOTHING);
        assert_eq!(m.on_event(ok(1, 10)), reply(Answer::Ok(vec![30, 10])));
        assert_eq!(m.on_event(Event::Deadline), NOTHING);
    }

    #[test]
    fn all_with_one_success_among_failures() {
        let (mut m, _) = Fanout::start(Policy::All);
        assert_eq!(m.on_event(fail(0)), NOTHING);
        assert_eq!(m.on_event(ok(2, 4)), NOTHING);
        assert_eq!(m.on_event(fail(1)), reply(Answer::Ok(vec![4])));
    }

    #[test]
    fn all_with_only_failures_is_502_and_deadline_is_504() {
        let (mut m, _) = Fanout::start(Policy::All);
        m.on_event(fail(0));
        m.on_event(fail(1));
        assert_eq!(m.on_event(fail(2)), reply(Answer::AllFailed));

        let (mut m, _) = Fanout::start(Policy::All);
        m.on_event(ok(0, 1));
        m.on_event(ok(1, 2));
        let cmds = m.on_event(Event::Deadline);
        assert_eq!(cmds, reply(Answer::DeadlineExceeded));
        let Command::Answer(a) = &cmds[0] else {
            unreachable!()
        };
        assert_eq!(http_status(a), 504);
    }

    #[test]
    fn first_answers_on_first_success_with_others_pending() {
        let (mut m, _) = Fanout::start(Policy::First);
        assert_eq!(m.on_event(fail(1)), NOTHING);
        assert_eq!(m.on_event(ok(2, 8)), reply(Answer::Single(8)));
        assert_eq!(m.on_event(ok(0, 3)), NOTHING);
    }

    #[test]
    fn first_gives_502_as_soon_as_all_failed() {
        let (mut m, _) = Fanout::start(Policy::First);
        m.on_event(fail(1));
        m.on_event(fail(0));
        assert_eq!(m.on_event(fail(2)), reply(Answer::AllFailed));
    }

    #[test]
    fn duplicate_and_unfired_finishes_are_ignored() {
        let (mut m, _) = Fanout::start(Policy::All);
        m.on_event(ok(0, 1));
        m.on_event(ok(0, 1));
        m.on_event(ok(1, 2));
        assert!(
            !m.is_done(),
            "a duplicate finish must not count as request 2"
        );

        let (mut m, _) = Fanout::start(Policy::smart());
        assert_eq!(m.on_event(ok(1, 5)), NOTHING);
        assert!(!m.is_done());
    }

    #[test]
    fn status_codes() {
        assert_eq!(http_status(&Answer::Ok(Vec::<u8>::new())), 200);
        assert_eq!(http_status(&Answer::Single(1)), 200);
        assert_eq!(http_status(&Answer::<u8>::AllFailed), 502);
        assert_eq!(http_status(&Answer::<u8>::DeadlineExceeded), 504);
    }

    // ---- Exhaustive interleavings -------------------------------------------------------

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Finish(usize),
        Hedge,
        Deadline,
    }

    const UNIVERSE: [Ev; 5] = [
        Ev::Finish(0),
        Ev::Finish(1),
        Ev::Finish(2),
        Ev::Hedge,
        Ev::Deadline,
    ];

    /// Every ordering of every subset of the five events. A missing finish is a request
    /// still in flight; a missing deadline is "no deadline"; a missing hedge timer is one
    /// the driver cancelled or that had not expired.
    fn sequences() -> Vec<Vec<Ev>> {
        fn extend(prefix: &mut Vec<Ev>, out: &mut Vec<Vec<Ev>>) {
            out.push(prefix.clone());
            for ev in UNIVERSE {
                if !prefix.contains(&ev) {
                    prefix.push(ev);
                    extend(prefix, out);
                    prefix.pop();
                }
            }
        }
        let mut out = Vec::new();
        extend(&mut Vec::new(), &mut out);
        out
    }

    fn payload(i: usize) -> u64 {
        100 + i as u64
    }

    /// The expected answer and the index of the event that triggers it, derived from
    /// event positions per the policy text rather than by stepping a state machine.
    struct Expected {
        answer: Option<(usize, Answer<u64>)>,
        /// `smart` only: the event index at which requests 1 and 2 are fired.
        hedge_at: Option<usize>,
    }

    fn expected(policy: Policy, seq: &[Ev], succeeds: [bool; 3]) -> Expected {
        let pos = |ev: Ev| seq.iter().position(|&e| e == ev);
        let deadline = pos(Ev::Deadline).unwrap_or(usize::MAX);
        let smart = matches!(policy, Policy::Smart { .. });
        // Smart hedges at the hedge timer or request 0's failure, whichever is first.
        let hedge_at = if smart {
            let early_failure = pos(Ev::Finish(0)).filter(|_| !succeeds[0]);
            [pos(Ev::Hedge), early_failure].into_iter().flatten().min()
        } else {
            None
        };
        // When each request finishes; for smart, requests 1 and 2 only exist after the hedge.
        let finish: Vec<Option<usize>> = (0..3)
            .map(|i| {
                let p = pos(Ev::Finish(i));
                if smart && i > 0 {
                    p.filter(|&p| hedge_at.is_some_and(|h| p > h))
                } else {
                    p
                }
            })
            .collect();
        let all_finished = finish
            .iter()
            .all(Option::is_some)
            .then(|| finish.iter().flatten().max().copied().unwrap());
        let successes_before = |limit: usize| {
            let mut hits: Vec<(usize, u64)> = (0..3)
                .filter(|&i| succeeds[i])
                .filter_map(|i| finish[i].filter(|&p| p < limit).map(|p| (p, payload(i))))
                .collect();
            hits.sort();
            hits.into_iter().map(|(_, v)| v).collect::<Vec<u64>>()
        };
        let first_success = (0..3)
            .filter(|&i| succeeds[i])
            .filter_map(|i| finish[i].map(|p| (p, payload(i))))
            .min();
        let on_deadline = |a: Answer<u64>| (deadline != usize::MAX).then_some((deadline, a));

        let answer = match policy {
            Policy::All => match all_finished {
                Some(last) if last < deadline => {
                    let got = successes_before(usize::MAX);
                    Some((
                        last,
                        if got.is_empty() {
                            Answer::AllFailed
                        } else {
                            Answer::Ok(got)
                        },
                    ))
                }
                _ => on_deadline(Answer::DeadlineExceeded),
            },
            Policy::WithinTimeout => match all_finished {
                Some(last) if last < deadline => {
                    Some((last, Answer::Ok(successes_before(usize::MAX))))
                }
                _ => on_deadline(Answer::Ok(successes_before(deadline))),
            },
            Policy::First | Policy::Smart { .. } => match (first_success, all_finished) {
                (Some((p, v)), _) if p < deadline => Some((p, Answer::Single(v))),
                (None, Some(last)) if last < deadline => Some((last, Answer::AllFailed)),
                _ => on_deadline(Answer::DeadlineExceeded),
            },
        };
        Expected { answer, hedge_at }
    }

    fn check(policy: Policy) -> usize {
        let mut cases = 0;
        for seq in sequences() {
            for mask in 0..8_u8 {
                let succeeds = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
                let want = expected(policy, &seq, succeeds);
                let (mut m, start) = Fanout::<u64>::start(policy);
                let mut fired: Vec<RequestId> = Vec::new();
                let ctx = || format!("{policy:?} {seq:?} {succeeds:?}");
                match policy {
                    Policy::Smart { hedge_after } => {
                        assert_eq!(start, vec![fire(0), Command::StartHedgeTimer(hedge_after)])
                    }
                    _ => assert_eq!(start, vec![fire(0), fire(1), fire(2)]),
                }
                let mut got: Option<(usize, Answer<u64>)> = None;
                for (at, &ev) in seq.iter().enumerate() {
                    let event = match ev {
                        Ev::Finish(i) => Event::Finished {
                            request: RequestId(i as u8),
                            outcome: if succeeds[i] {
                                Ok(payload(i))
                            } else {
                                Err(Failure)
                            },
                        },
                        Ev::Hedge => Event::HedgeTimer,
                        Ev::Deadline => Event::Deadline,
                    };
                    let cmds = m.on_event(event);
                    if got.is_some() {
                        assert_eq!(cmds, NOTHING, "command after the answer: {}", ctx());
                        continue;
                    }
                    for cmd in cmds {
                        match cmd {
                            Command::Fire(id) => fired.push(id),
                            Command::Answer(a) => {
                                assert!(got.is_none(), "two answers: {}", ctx());
                                got = Some((at, a));
                            }
                            Command::StartHedgeTimer(_) => panic!("timer restarted: {}", ctx()),
                        }
                    }
                    let hedged_now = want.hedge_at == Some(at);
                    let expect_fired: &[RequestId] = if hedged_now { &HEDGES } else { &[] };
                    assert_eq!(fired, expect_fired, "fired at step {at}: {}", ctx());
                    fired.clear();
                }
                assert_eq!(got, want.answer, "{}", ctx());
                assert_eq!(m.is_done(), got.is_some(), "{}", ctx());
                cases += 1;
            }
        }
        cases
    }

    // 326 event orderings (all ordered subsets of 5 events) × 8 outcome patterns.
    const CASES: usize = 326 * 8;

    #[test]
    fn exhaustive_all() {
        assert_eq!(check(Policy::All), CASES);
    }

    #[test]
    fn exhaustive_first() {
        assert_eq!(check(Policy::First), CASES);
    }

    #[test]
    fn exhaustive_within_timeout() {
        assert_eq!(check(Policy::WithinTimeout), CASES);
    }

    #[test]
    fn exhaustive_smart() {
        assert_eq!(check(Policy::smart()), CASES);
    }

    #[test]
    fn sequences_cover_every_full_interleaving() {
        let seqs = sequences();
        assert_eq!(seqs.len(), 326);
        // All 120 orders of the full set are present, i.e. the deadline and hedge timer
        // at every position of every finish order.
        assert_eq!(seqs.iter().filter(|s| s.len() == 5).count(), 120);
    }
}
