//! Naming the containers of container veths for `ringsieve run`, off the
//! discovery thread and retried: a scan of /proc (and a Docker API lookup
//! per container, up to 500 ms each) runs on a thread of its own, so it
//! never delays the opening of a ring, and a veth whose container is not
//! known yet (Docker creates the sandbox namespace, and the veth, before
//! the container's first process exists) is looked at again on later
//! ticks, with a growing pause, a bounded number of times. Only the
//! containers of the veths present at start are looked up before capture
//! starts (`host::Host::start_attribution`), so that the first packets of
//! the containers already running are attributed.
//!
//! [`Retries`] is the schedule, with no I/O; [`AttributionThread`] does the
//! lookups; `host::Host` ties them to the interfaces it captures.

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use discovery::{Attributor, ContainerInfo, Link};

/// Lookups of one veth before it is left with what was found.
pub const MAX_ATTEMPTS: u32 = 8;
/// The pause after the first lookup that found no container id; each
/// later one doubles it (50 ms, 100 ms ... 3.2 s: about 6.4 s in all).
pub const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// Where one veth is in its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Next lookup at this time.
    Due(Instant),
    /// A lookup was asked for and has not answered.
    InFlight,
}

/// What became of a veth after a lookup's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its container is known in full: no more lookups.
    Done,
    /// Looked up again at this time.
    Retry(Instant),
    /// Every attempt was made: left with what was found.
    GaveUp,
    /// It was not waiting for an answer (forgotten meanwhile): ignore it.
    Stale,
}

/// The lookup schedule of the container veths waiting for their container,
/// by interface index.
#[derive(Debug, Default)]
pub struct Retries {
    waiting: BTreeMap<u32, (Slot, u32)>,
}

impl Retries {
    /// `ifindex` needs its container (it became a container veth, or
    /// appeared as one): looked up at the next [`Self::take_due`], its
    /// count of attempts starting over.
    pub fn schedule(&mut self, ifindex: u32, now: Instant) {
        self.waiting.insert(ifindex, (Slot::Due(now), 0));
    }

    /// `ifindex` no longer needs a lookup (gone, released, no longer a
    /// container veth); an answer still on its way is then [`Outcome::Stale`].
    pub fn forget(&mut self, ifindex: u32) {
        self.waiting.remove(&ifindex);
    }

    /// The veths due for a lookup at `now`, each marked as waiting for its
    /// answer.
    pub fn take_due(&mut self, now: Instant) -> Vec<u32> {
        let mut due = Vec::new();
        for (ifindex, (slot, _)) in &mut self.waiting {
            if matches!(slot, Slot::Due(at) if *at <= now) {
                *slot = Slot::InFlight;
                due.push(*ifindex);
            }
        }
        due
    }

    /// Whether `ifindex` waits for the answer of a lookup.
    pub fn in_flight(&self, ifindex: u32) -> bool {
        matches!(self.waiting.get(&ifindex), Some((Slot::InFlight, _)))
    }

    /// Whether any lookup was asked for and has not answered.
    pub fn any_in_flight(&self) -> bool {
        self.waiting.values().any(|(slot, _)| *slot == Slot::InFlight)
    }

    /// The answer for `ifindex` came: `complete` when it named the
    /// container in full (its id found).
    pub fn answered(&mut self, ifindex: u32, complete: bool, now: Instant) -> Outcome {
        let Some((slot, attempts)) = self.waiting.get_mut(&ifindex) else {
            return Outcome::Stale;
        };
        if *slot != Slot::InFlight {
            return Outcome::Stale;
        }
        *attempts += 1;
        if complete {
            self.waiting.remove(&ifindex);
            return Outcome::Done;
        }
        if *attempts >= MAX_ATTEMPTS {
            self.waiting.remove(&ifindex);
            return Outcome::GaveUp;
        }
        let pause = FIRST_PAUSE.saturating_mul(1 << (*attempts - 1).min(16));
        let at = now + pause;
        *slot = Slot::Due(at);
        Outcome::Retry(at)
    }

    /// Veths waiting, due or in flight.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// One answer of the attribution thread: the link asked about and what
/// was found behind its peer.
pub type Answer = (Link, io::Result<Option<ContainerInfo>>);

/// The container behind `link` in a scan of the host's namespaces
/// ([`Attributor::scan`], by namespace id).
pub fn container_in(scan: &io::Result<BTreeMap<i32, ContainerInfo>>, link: &Link) -> io::Result<Option<ContainerInfo>> {
    match scan {
        Ok(found) => Ok(link.link_netnsid.and_then(|nsid| found.get(&nsid).cloned())),
        Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
    }
}

/// The thread that looks containers up: it takes links, scans once for
/// every link queued, and answers each. It ends when its requests' sender
/// is dropped (after the lookup it is doing).
#[derive(Debug)]
pub struct AttributionThread {
    requests: Sender<Link>,
    answers: Receiver<Answer>,
}

impl AttributionThread {
    /// Starts the thread with `attributor` (whose netlink socket belongs
    /// to the namespace it was created in).
    pub fn start(mut attributor: Attributor) -> io::Result<Self> {
        let (requests, asked) = mpsc::channel::<Link>();
        let (answer, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("attribution".to_owned())
            .spawn(move || {
                while let Ok(first) = asked.recv() {
                    let mut links = vec![first];
                    links.extend(asked.try_iter());
                    let scan = attributor.scan();
                    for link in links {
                        let found = container_in(&scan, &link);
                        if answer.send((link, found)).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(Self { requests, answers })
    }

    /// Asks for the container behind `link`; false when the thread is gone.
    pub fn ask(&self, link: Link) -> bool {
        self.requests.send(link).is_ok()
    }

    /// The answers ready now; `None` when the thread is gone.
    pub fn answers(&self) -> Option<Vec<Answer>> {
        let mut out = Vec::new();
        loop {
            match self.answers.try_recv() {
                Ok(answer) => out.push(answer),
                Err(TryRecvError::Empty) => return Some(out),
                Err(TryRecvError::Disconnected) => return if out.is_empty() { None } else { Some(out) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_is_in_flight_from_its_ask_to_its_answer() {
        let now = Instant::now();
        let mut retries = Retries::default();
        retries.schedule(7, now);
        retries.schedule(8, now + Duration::from_secs(60));
        assert!(!retries.any_in_flight(), "scheduled, not asked yet");
        assert_eq!(retries.take_due(now), vec![7]);
        assert!(retries.any_in_flight());
        retries.answered(7, false, now);
        assert!(!retries.any_in_flight(), "answered: the next one waits its pause");
        retries.take_due(now + Duration::from_secs(3600));
        assert!(retries.any_in_flight());
        retries.forget(7);
        retries.forget(8);
        assert!(!retries.any_in_flight());
    }

    #[test]
    fn an_unnamed_veth_is_retried_with_growing_pauses_then_given_up() {
        let start = Instant::now();
        let mut retries = Retries::default();
        retries.schedule(7, start);
        let mut now = start;
        let mut pauses = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(retries.take_due(now), vec![7], "attempt {attempt}");
            assert!(retries.in_flight(7));
            // Not asked twice while a lookup is on its way.
            assert!(retries.take_due(now + Duration::from_secs(3600)).is_empty());
            match retries.answered(7, false, now) {
                Outcome::Retry(at) => {
                    assert!(attempt < MAX_ATTEMPTS);
                    assert!(retries.take_due(at - Duration::from_millis(1)).is_empty());
                    pauses.push(at - now);
                    now = at;
                }
                Outcome::GaveUp => assert_eq!(attempt, MAX_ATTEMPTS),
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        assert_eq!(retries.waiting(), 0);
        assert!(retries.take_due(now + Duration::from_secs(3600)).is_empty());
        assert_eq!(pauses.len() as u32, MAX_ATTEMPTS - 1);
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert!(pauses.windows(2).all(|w| w[1] == w[0] * 2), "{pauses:?}");
    }

    #[test]
    fn a_named_veth_stops_and_a_forgotten_one_answers_stale() {
        let now = Instant::now();
        let mut retries = Retries::default();
        retries.schedule(3, now);
        retries.schedule(4, now);
        retries.schedule(5, now + Duration::from_secs(1));
        assert_eq!(retries.take_due(now), vec![3, 4]);
        assert!(!retries.in_flight(5));
        assert_eq!(retries.answered(3, false, now), Outcome::Retry(now + FIRST_PAUSE));
        // Found later: done, never asked again.
        assert_eq!(retries.take_due(now + FIRST_PAUSE), vec![3]);
        assert_eq!(retries.answered(3, true, now + FIRST_PAUSE), Outcome::Done);
        // Released while its lookup ran.
        retries.forget(4);
        assert_eq!(retries.answered(4, true, now), Outcome::Stale);
        // An answer it did not ask for.
        assert_eq!(retries.answered(5, true, now), Outcome::Stale);
        assert_eq!(retries.take_due(now + Duration::from_secs(3600)), vec![5]);
        assert_eq!(retries.waiting(), 1);
        // Becoming a container veth again starts the count over.
        retries.schedule(5, now);
        assert!(!retries.in_flight(5));
    }
}
