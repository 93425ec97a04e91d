//! The concurrent-writer probe a remote gets before it is added: does the server keep a
//! create-only write (`If-None-Match: *`) exclusive? First one writer creates a fresh random key
//! twice (the second must find it taken), then, `rounds` times, `writers` threads line up on a
//! barrier and race create-only writes of one fresh key (exactly one must win, and the object
//! must hold the winner's bytes). The probe deletes its objects at the end, whatever the outcome.
//! It owns only the probe: it must never write outside `probe/` keys of random names, nor judge a
//! server safe on fewer checks than these.

use std::sync::Barrier;

use super::objects::{Created, Objects};
use crate::{Error, Result};

/// How hard the probe races writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Threads racing one key per round (at least 2).
    pub writers: usize,
    /// Rounds, each on a fresh key (at least 1).
    pub rounds: usize,
}

impl Default for ProbeSettings {
    /// 8 writers, 5 rounds: 40 racing writes, under a second on a loopback server.
    fn default() -> Self {
        ProbeSettings { writers: 8, rounds: 5 }
    }
}

/// One round of the race: how many of the writers were told their create-only write succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RaceRound {
    /// Round number, from 1.
    pub round: usize,
    /// Writers that raced.
    pub writers: usize,
    /// Writers told "created".
    pub winners: usize,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReport {
    /// True when the second sequential create-only write of one key was refused.
    pub sequential_refused: bool,
    /// The race, round by round.
    pub rounds: Vec<RaceRound>,
    /// The first check that failed, as a sentence (`None`: the server passed).
    pub failure: Option<String>,
}

impl ProbeReport {
    /// True when every check passed: the server may be used by several writers at once.
    pub fn safe(&self) -> bool {
        self.failure.is_none()
    }
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::InvalidInput(format!("no randomness for the probe's keys: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Probes `objects` (see the module documentation). Returns the report whether the server passed
/// or not; the objects written are deleted before it returns.
///
/// Errors: [`Error::Remote`] when the server cannot be reached or fails a request outright (a
/// server that answers but breaks the promise is a report with a failure, not an error);
/// [`Error::InvalidInput`] for fewer than 2 writers or 0 rounds.
pub fn probe(objects: &dyn Objects, settings: ProbeSettings) -> Result<ProbeReport> {
    if settings.writers < 2 || settings.rounds == 0 {
        return Err(Error::InvalidInput("the probe needs at least 2 writers and 1 round".into()));
    }
    let base = format!("probe/{}", random_hex()?);
    let mut keys = vec![format!("{base}-seq")];
    let result = run(objects, settings, &base, &mut keys);
    let mut cleanup = Ok(());
    for k in &keys {
        if let Err(e) = objects.delete(k) {
            cleanup = Err(e);
        }
    }
    let report = result?;
    cleanup?;
    Ok(report)
}

fn run(objects: &dyn Objects, s: ProbeSettings, base: &str, keys: &mut Vec<String>) -> Result<ProbeReport> {
    let first = objects.put_if_absent(&keys[0], b"probe write 1")?;
    let second = objects.put_if_absent(&keys[0], b"probe write 2")?;
    let sequential_refused = first == Created::Created && second == Created::AlreadyExists;
    let mut report = ProbeReport { sequential_refused, rounds: Vec::new(), failure: None };
    if first != Created::Created {
        report.failure = Some("a create-only write of a fresh key was refused".into());
        return Ok(report);
    }
    if !sequential_refused {
        report.failure =
            Some("a second create-only write of one key succeeded (the server ignores If-None-Match)".into());
        return Ok(report);
    }
    for round in 1..=s.rounds {
        let key = format!("{base}-race{round}");
        keys.push(key.clone());
        let (winners, winner_bytes) = race(objects, &key, s.writers, round)?;
        report.rounds.push(RaceRound { round, writers: s.writers, winners: winners.len() });
        if report.failure.is_some() {
            continue;
        }
        if winners.len() != 1 {
            let n = if winners.is_empty() { "none".to_string() } else { winners.len().to_string() };
            report.failure = Some(format!(
                "{n} of {} racing create-only writes succeeded in round {round} (exactly one must)",
                s.writers
            ));
        } else if objects.get(&key)?.as_deref() != Some(winner_bytes[0].as_slice()) {
            report.failure = Some(format!("in round {round} the object does not hold the bytes of the one winner"));
        }
    }
    Ok(report)
}

/// One round: `writers` threads race a create-only write of `key`. Returns the winners' indexes
/// and the bytes each winner wrote.
fn race(objects: &dyn Objects, key: &str, writers: usize, round: usize) -> Result<(Vec<usize>, Vec<Vec<u8>>)> {
    let barrier = Barrier::new(writers);
    let outcomes: Vec<Result<Created>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let barrier = &barrier;
                sc.spawn(move || {
                    let bytes = format!("probe round {round} writer {w}").into_bytes();
                    barrier.wait();
                    objects.put_if_absent(key, &bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::remote("probing", "a writer thread panicked"))))
            .collect()
    });
    let mut winners = Vec::new();
    let mut bytes = Vec::new();
    for (w, o) in outcomes.into_iter().enumerate() {
        if o? == Created::Created {
            winners.push(w);
            bytes.push(format!("probe round {round} writer {w}").into_bytes());
        }
    }
    Ok((winners, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::MemoryObjects;

    #[test]
    fn an_honest_store_passes_and_is_left_empty() {
        let m = MemoryObjects::new();
        let r = probe(&m, ProbeSettings { writers: 6, rounds: 3 }).unwrap();
        assert!(r.safe(), "{r:?}");
        assert!(r.sequential_refused);
        assert_eq!(r.rounds.iter().map(|x| (x.writers, x.winners)).collect::<Vec<_>>(), [(6, 1); 3]);
        assert!(m.list("").unwrap().is_empty());
    }

    #[test]
    fn a_store_ignoring_the_condition_fails_and_says_which_check() {
        let m = MemoryObjects::ignoring_conditions();
        let r = probe(&m, ProbeSettings::default()).unwrap();
        assert!(!r.safe());
        assert!(r.failure.unwrap().contains("second create-only write of one key succeeded"));
        assert!(m.list("").unwrap().is_empty());
        assert!(probe(&m, ProbeSettings { writers: 1, rounds: 1 }).is_err());
    }
}
