//! The dispatcher: which worker gets which unit of work, as a state machine with no processes,
//! pipes or clocks of its own (the parent feeds it events and carries out its actions), so every
//! rule is unit-tested here.
//!
//! Rules:
//! - Units are handed out one at a time, when a worker asks. A worker first takes from its own
//!   planned queue (the snake plan), then from the shared queue (dynamic schedule, requeued
//!   units), then steals the last planned unit of the worker whose queue holds the most work:
//!   a plan is an initial order, not a cage.
//! - A worker that asks when nothing is left is parked; parked workers are woken when units are
//!   requeued, and released (told "no more work") once every unit is finished or in hand.
//! - A worker's death requeues the unit it was handed but had not started, and its whole queue;
//!   the unit it was running is reported back (it failed). When no worker is left and work
//!   remains, a replacement is spawned (at most one per unit).
//! - An interrupt stops handing out work and asks every worker to stop (SIGTERM); a second one
//!   kills them. With the abort policy, the first failure does the same.
//! - A unit past the time limit plus a grace period gets its worker killed.
//! - A run split into event chunks goes through the chain one unit per (chunk, phase): a
//!   chunk's next phase is queued at the back when its previous phase ends well, so every chunk
//!   passes a phase before any goes on. A phase's merge is queued at the front once every chunk
//!   passed that phase, and overlaps the later phases of the chunks on other workers; the commit
//!   is queued at the front once every merge ended well. A failed unit fails the run: what
//!   depends on it never runs.

use crate::protocol::Part;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Index of a unit in the dispatcher's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(pub usize);

/// A unit of work: a run, a chunk of a run's events, the merge of one phase's chunks, or the
/// commit of a merged run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Run number.
    pub run: u32,
    /// Relative cost (trace bytes, prorated for chunks), for stealing and progress.
    pub cost: u64,
    /// Which part of the run.
    pub part: Part,
}

/// Most chunks a run is split into: a range claimed by a damaged artifact (`max_event` near
/// 2^63) gives this many chunks, not one per `chunk_events` ids (the phases iterate the events
/// a file holds, not its claimed range, so such chunks are cheap).
pub const MAX_CHUNKS_PER_RUN: u64 = 10_000;

/// The units of a launch: each run whole, or, when its event range is known and longer than
/// `chunk_events` (> 0), split into `ceil(events / chunk_events)` (at most
/// [`MAX_CHUNKS_PER_RUN`]) near-equal chunks, each run
/// through the phases of `merged` (the active phases, in chain order) one unit per phase, then
/// one merge unit per phase and one commit unit. A chunk's cost is the run's bytes prorated by
/// events, shared among its phases; a merge or a commit costs a fiftieth of the run. The split
/// depends only on the run's events and `chunk_events`, so every launch (and worker count)
/// splits a run the same way and finished chunks are reused.
pub fn units_for(
    runs: &[crate::runs::Run],
    ranges: &HashMap<u32, [u64; 2]>,
    chunk_events: u64,
    merged: &[String],
) -> Vec<Unit> {
    let mut out = Vec::new();
    for r in runs {
        let range = ranges
            .get(&r.run)
            .map(|&[a, b]| spyral_core::EventRange::new(a, b))
            .filter(|e| chunk_events > 0 && e.len() > chunk_events && !merged.is_empty());
        let Some(events) = range else {
            out.push(Unit {
                run: r.run,
                cost: r.bytes,
                part: Part::Whole,
            });
            continue;
        };
        let parts = events.split(events.len().div_ceil(chunk_events).min(MAX_CHUNKS_PER_RUN));
        let count = parts.len() as u32;
        for phase in merged {
            for (index, c) in parts.iter().enumerate() {
                let bytes = u128::from(r.bytes) * u128::from(c.len()) / u128::from(events.len());
                out.push(Unit {
                    run: r.run,
                    cost: ((bytes / merged.len() as u128) as u64).max(1),
                    part: Part::Chunk {
                        index: index as u32,
                        count,
                        first: c.first,
                        last: c.last,
                        phase: phase.clone(),
                    },
                });
            }
        }
        let ranges: Vec<[u64; 2]> = parts.iter().map(|c| [c.first, c.last]).collect();
        for phase in merged {
            out.push(Unit {
                run: r.run,
                cost: (r.bytes / 50).max(1),
                part: Part::Merge {
                    phase: phase.clone(),
                    ranges: ranges.clone(),
                },
            });
        }
        out.push(Unit {
            run: r.run,
            cost: (r.bytes / 50).max(1),
            part: Part::Commit { ranges },
        });
    }
    out
}

/// What each unit waits for: a chunk's phase for the same chunk's previous phase (in the order
/// of the run's merge units, which is chain order), a merge for its phase's chunks, a commit for
/// its run's merges. Whole runs and first-phase chunks wait for nothing.
pub fn prerequisites(units: &[Unit]) -> Vec<Vec<UnitId>> {
    // Per run: phases in chain order, merge units, and chunk units by (index, phase).
    let mut order: HashMap<u32, Vec<&str>> = HashMap::new();
    let mut merges: HashMap<u32, Vec<UnitId>> = HashMap::new();
    let mut chunk_of: HashMap<(u32, u32, &str), UnitId> = HashMap::new();
    let mut chunks_of: HashMap<(u32, &str), Vec<UnitId>> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        match &u.part {
            Part::Merge { phase, .. } => {
                order.entry(u.run).or_default().push(phase);
                merges.entry(u.run).or_default().push(UnitId(i));
            }
            Part::Chunk { index, phase, .. } => {
                chunk_of.insert((u.run, *index, phase), UnitId(i));
                chunks_of.entry((u.run, phase)).or_default().push(UnitId(i));
            }
            _ => {}
        }
    }
    units
        .iter()
        .map(|u| match &u.part {
            Part::Chunk { index, phase, .. } => {
                let phases = order.get(&u.run).map(Vec::as_slice).unwrap_or_default();
                match phases.iter().position(|p| p == phase) {
                    Some(k) if k > 0 => chunk_of
                        .get(&(u.run, *index, phases[k - 1]))
                        .copied()
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                }
            }
            Part::Merge { phase, .. } => chunks_of
                .get(&(u.run, phase.as_str()))
                .cloned()
                .unwrap_or_default(),
            Part::Commit { .. } => merges.get(&u.run).cloned().unwrap_or_default(),
            Part::Whole => Vec::new(),
        })
        .collect()
}

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// Waiting in a queue.
    Pending,
    /// Handed to this worker, not started yet.
    Assigned(usize),
    /// This worker is running it.
    Running(usize),
    /// A merge or commit waiting for the units it needs.
    Waiting,
    /// Finished (whatever the outcome).
    Finished,
    /// Will not run (stopped before it was handed out).
    Dropped,
}

/// How a unit ended, for the units that wait for it and for the abort policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitEnd {
    /// Done: what waits for it may run.
    Ok,
    /// Failed (the abort policy stops the launch): what waits for it will not run.
    Failed,
    /// Not done, without failing: skipped (its trace file vanished), left to another launch
    /// that holds its locks, or interrupted. What waits for it will not run.
    NotDone,
}

/// How a worker is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Finish the current phase, then stop.
    Term,
    /// Now.
    Kill,
}

/// What the parent must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this unit to the worker.
    Assign {
        /// Worker.
        worker: usize,
        /// Unit.
        unit: UnitId,
    },
    /// Tell the worker there is no more work (it exits).
    Release {
        /// Worker.
        worker: usize,
    },
    /// Signal the worker.
    Signal {
        /// Worker.
        worker: usize,
        /// Which.
        signal: StopSignal,
    },
    /// Start a replacement worker (then call [`Dispatcher::add_worker`]).
    Spawn,
}

/// Why work stopped being handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Running normally.
    No,
    /// Interrupted (once).
    Interrupted,
    /// Interrupted twice: workers were killed.
    Killed,
    /// A unit failed under the abort policy.
    Aborted,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    alive: bool,
    parked: bool,
    released: bool,
    assigned: Option<UnitId>,
    running: Option<(UnitId, Instant)>,
    overdue_killed: bool,
}

/// What a worker's death left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// The unit it was running (now failed), if any.
    pub running: Option<UnitId>,
    /// Whether it was killed for passing the time limit.
    pub overdue: bool,
    /// Units handed back to the shared queue.
    pub requeued: Vec<UnitId>,
    /// What to do now.
    pub actions: Vec<Action>,
}

/// The state machine. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    units: Vec<Unit>,
    state: Vec<UnitState>,
    own: Vec<VecDeque<UnitId>>,
    shared: VecDeque<UnitId>,
    slots: Vec<Slot>,
    stopping: Stopping,
    abort_on_failure: bool,
    replacements: usize,
    /// Waiting units: how many of their prerequisites have not finished yet.
    waiting_for: HashMap<UnitId, usize>,
    /// The units waiting for each unit.
    dependents: HashMap<UnitId, Vec<UnitId>>,
    /// Time the finished units of each run took (a split run's time limit counts them).
    spent: HashMap<u32, Duration>,
}

impl Dispatcher {
    /// A dispatcher over `units` for `plans.len()` workers. `plans[w]` is worker w's own queue
    /// (snake); `shared` is the common queue (dynamic), largest first. Every unit but the merge
    /// and commit units must appear exactly once in all of them; those wait for their
    /// prerequisites (see [`units_for`]).
    pub fn new(
        units: Vec<Unit>,
        plans: Vec<Vec<UnitId>>,
        shared: Vec<UnitId>,
        abort_on_failure: bool,
    ) -> Dispatcher {
        let mut state = vec![UnitState::Pending; units.len()];
        let mut waiting_for = HashMap::new();
        let mut dependents: HashMap<UnitId, Vec<UnitId>> = HashMap::new();
        for (i, needs) in prerequisites(&units).into_iter().enumerate() {
            let u = &units[i];
            if needs.is_empty() && matches!(u.part, Part::Merge { .. } | Part::Commit { .. }) {
                // Nothing to wait for (cannot happen with `units_for`): never handed out.
                state[i] = UnitState::Dropped;
                continue;
            }
            if !needs.is_empty() {
                state[i] = UnitState::Waiting;
                waiting_for.insert(UnitId(i), needs.len());
                for n in needs {
                    dependents.entry(n).or_default().push(UnitId(i));
                }
            }
        }
        Dispatcher {
            waiting_for,
            dependents,
            state,
            units,
            slots: plans
                .iter()
                .map(|_| Slot {
                    alive: true,
                    ..Slot::default()
                })
                .collect(),
            own: plans.into_iter().map(VecDeque::from).collect(),
            shared: shared.into(),
            stopping: Stopping::No,
            abort_on_failure,
            replacements: 0,
            spent: HashMap::new(),
        }
    }

    /// Time the finished units of `run` took, summed (zero for a run not started or whole).
    pub fn spent(&self, run: u32) -> Duration {
        self.spent.get(&run).copied().unwrap_or_default()
    }

    /// The units.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }
    /// A unit.
    pub fn unit(&self, id: UnitId) -> &Unit {
        &self.units[id.0]
    }
    /// Where a unit stands.
    pub fn state(&self, id: UnitId) -> UnitState {
        self.state[id.0]
    }
    /// Whether work is being stopped, and why.
    pub fn stopping(&self) -> Stopping {
        self.stopping
    }
    /// Replacement workers started so far.
    pub fn replacements(&self) -> usize {
        self.replacements
    }
    /// Workers still alive.
    pub fn live_workers(&self) -> usize {
        self.slots.iter().filter(|s| s.alive).count()
    }
    /// The unit worker `w` is running, if any.
    pub fn running(&self, w: usize) -> Option<UnitId> {
        self.slots.get(w).and_then(|s| s.running.map(|(u, _)| u))
    }
    /// Units not finished (pending, in hand or running).
    pub fn remaining(&self) -> usize {
        self.state
            .iter()
            .filter(|s| !matches!(s, UnitState::Finished | UnitState::Dropped))
            .count()
    }

    fn hand(&mut self, w: usize, unit: UnitId) -> Action {
        self.state[unit.0] = UnitState::Assigned(w);
        let slot = &mut self.slots[w];
        slot.parked = false;
        slot.assigned = Some(unit);
        Action::Assign { worker: w, unit }
    }

    fn release(&mut self, w: usize) -> Option<Action> {
        let slot = &mut self.slots[w];
        if slot.released || !slot.alive {
            return None;
        }
        slot.released = true;
        slot.parked = false;
        Some(Action::Release { worker: w })
    }

    fn take_for(&mut self, w: usize) -> Option<UnitId> {
        if let Some(u) = self.own[w].pop_front() {
            return Some(u);
        }
        if let Some(u) = self.shared.pop_front() {
            return Some(u);
        }
        // Steal the last planned unit of the live worker with the most queued work.
        let victim = (0..self.slots.len())
            .filter(|&v| v != w && self.slots[v].alive && !self.own[v].is_empty())
            .max_by_key(|&v| {
                (
                    self.own[v]
                        .iter()
                        .map(|u| self.units[u.0].cost)
                        .sum::<u64>(),
                    std::cmp::Reverse(v),
                )
            })?;
        let u = self.own[victim].pop_back()?;
        tracing::info!(
            "worker {w} takes run {} from worker {victim}'s queue",
            self.units[u.0].run
        );
        Some(u)
    }

    /// Worker `w` asks for work.
    pub fn request(&mut self, w: usize) -> Vec<Action> {
        if let Some(slot) = self.slots.get_mut(w) {
            slot.assigned = None;
            slot.running = None;
        }
        if self.stopping != Stopping::No {
            return self.release(w).into_iter().collect();
        }
        match self.take_for(w) {
            Some(u) => vec![self.hand(w, u)],
            None => {
                self.slots[w].parked = true;
                self.settle()
            }
        }
    }

    /// Worker `w` started `unit` at `now`.
    pub fn started(&mut self, w: usize, unit: UnitId, now: Instant) {
        self.state[unit.0] = UnitState::Running(w);
        let slot = &mut self.slots[w];
        slot.assigned = None;
        slot.running = Some((unit, now));
    }

    /// A unit ended: the units waiting for it whose last prerequisite it was are queued (see
    /// below for where); when it failed, they (and what waits for them) will not run.
    fn unit_done(&mut self, unit: UnitId, failed: bool) {
        let mut ready = Vec::new();
        let mut failed_units = vec![(unit, failed)];
        while let Some((u, failed)) = failed_units.pop() {
            for d in self.dependents.get(&u).cloned().unwrap_or_default() {
                if self.state[d.0] != UnitState::Waiting {
                    continue;
                }
                if failed {
                    self.state[d.0] = UnitState::Dropped;
                    failed_units.push((d, true));
                    continue;
                }
                let left = self.waiting_for.entry(d).or_insert(1);
                *left = left.saturating_sub(1);
                if *left == 0 && self.stopping == Stopping::No {
                    self.state[d.0] = UnitState::Pending;
                    ready.push(d);
                }
            }
        }
        // Merges and commits (the run's serial tail) go first; a chunk's next phase goes last,
        // so every chunk passes a phase before any goes on (that phase's merge starts early
        // and overlaps the later phases of the chunks).
        for d in ready.iter().rev() {
            if !matches!(self.units[d.0].part, Part::Chunk { .. }) {
                self.shared.push_front(*d);
            }
        }
        for d in ready {
            if matches!(self.units[d.0].part, Part::Chunk { .. }) {
                self.shared.push_back(d);
            }
        }
    }

    /// Worker `w` finished `unit`, ending as `end`.
    pub fn finished(&mut self, w: usize, unit: UnitId, end: UnitEnd, now: Instant) -> Vec<Action> {
        self.state[unit.0] = UnitState::Finished;
        self.unit_done(unit, end != UnitEnd::Ok);
        if let Some((u, t)) = self.slots[w].running {
            if u == unit {
                *self.spent.entry(self.units[unit.0].run).or_default() +=
                    now.saturating_duration_since(t);
            }
        }
        let slot = &mut self.slots[w];
        slot.assigned = None;
        slot.running = None;
        if end == UnitEnd::Failed && self.abort_on_failure && self.stopping == Stopping::No {
            return self.stop(Stopping::Aborted);
        }
        self.settle()
    }

    fn stop(&mut self, why: Stopping) -> Vec<Action> {
        self.stopping = why;
        let signal = if why == Stopping::Killed {
            StopSignal::Kill
        } else {
            StopSignal::Term
        };
        // Queued units and waiting merges will not run.
        for q in self.own.iter_mut().chain(std::iter::once(&mut self.shared)) {
            for u in q.drain(..) {
                self.state[u.0] = UnitState::Dropped;
            }
        }
        for st in self.state.iter_mut() {
            if *st == UnitState::Waiting {
                *st = UnitState::Dropped;
            }
        }
        let mut out = Vec::new();
        for w in 0..self.slots.len() {
            if !self.slots[w].alive {
                continue;
            }
            out.push(Action::Signal { worker: w, signal });
            if self.slots[w].parked {
                out.extend(self.release(w));
            }
        }
        out
    }

    /// An interrupt arrived: the first stops handing out work and asks workers to stop after
    /// their current phase; the second kills them.
    pub fn interrupt(&mut self) -> Vec<Action> {
        match self.stopping {
            Stopping::Interrupted | Stopping::Killed => self.stop(Stopping::Killed),
            _ => self.stop(Stopping::Interrupted),
        }
    }

    /// Worker `w` died. The unit it had been handed but not started, and its own queue, go to
    /// the shared queue (front, in order); the unit it was running failed.
    pub fn died(&mut self, w: usize) -> Death {
        let slot = std::mem::take(&mut self.slots[w]);
        let running = slot.running.map(|(u, _)| u);
        if let Some(u) = running {
            self.state[u.0] = UnitState::Finished;
            self.unit_done(u, true);
        }
        let mut requeued: Vec<UnitId> = slot
            .assigned
            .filter(|u| self.state[u.0] == UnitState::Assigned(w))
            .into_iter()
            .collect();
        requeued.extend(self.own[w].drain(..));
        if self.stopping == Stopping::No {
            for u in requeued.iter().rev() {
                self.state[u.0] = UnitState::Pending;
                self.shared.push_front(*u);
            }
        } else {
            for u in &requeued {
                self.state[u.0] = UnitState::Dropped;
            }
        }
        let mut actions = Vec::new();
        if running.is_some()
            && self.abort_on_failure
            && self.stopping == Stopping::No
            && !slot.overdue_killed
        {
            actions.extend(self.stop(Stopping::Aborted));
        }
        actions.extend(self.settle());
        Death {
            running,
            overdue: slot.overdue_killed,
            requeued,
            actions,
        }
    }

    /// A replacement worker was started: its index.
    pub fn add_worker(&mut self) -> usize {
        self.slots.push(Slot {
            alive: true,
            ..Slot::default()
        });
        self.own.push(VecDeque::new());
        self.slots.len() - 1
    }

    /// Workers whose unit's run has taken longer than `limit + grace` at `now` (the unit so
    /// far plus, for a split run, the time its finished units took): killed (once).
    pub fn overdue(&mut self, now: Instant, limit: Duration, grace: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for (w, slot) in self.slots.iter_mut().enumerate() {
            if let (true, false, Some((u, t))) = (slot.alive, slot.overdue_killed, slot.running) {
                let before = self
                    .spent
                    .get(&self.units[u.0].run)
                    .copied()
                    .unwrap_or_default();
                if before + now.saturating_duration_since(t) > limit + grace {
                    slot.overdue_killed = true;
                    out.push(Action::Signal {
                        worker: w,
                        signal: StopSignal::Kill,
                    });
                }
            }
        }
        out
    }

    /// Wakes parked workers for queued units, spawns a replacement when no worker is left and
    /// work is queued, releases parked workers when nothing is left to hand out.
    fn settle(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopping != Stopping::No {
            return out;
        }
        let parked: Vec<usize> = (0..self.slots.len())
            .filter(|&w| self.slots[w].alive && self.slots[w].parked)
            .collect();
        for w in parked {
            match self.take_for(w) {
                Some(u) => out.push(self.hand(w, u)),
                None => break,
            }
        }
        let queued = !self.shared.is_empty() || self.own.iter().any(|q| !q.is_empty());
        if queued && self.live_workers() == 0 && self.replacements < self.units.len() {
            self.replacements += 1;
            out.push(Action::Spawn);
            return out;
        }
        let in_hand = self
            .slots
            .iter()
            .any(|s| s.alive && (s.running.is_some() || s.assigned.is_some()));
        if !queued && !in_hand {
            let parked: Vec<usize> = (0..self.slots.len())
                .filter(|&w| self.slots[w].parked)
                .collect();
            for w in parked {
                out.extend(self.release(w));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(costs: &[u64]) -> Vec<Unit> {
        costs
            .iter()
            .enumerate()
            .map(|(i, &cost)| Unit {
                run: i as u32 + 1,
                cost,
                part: Part::Whole,
            })
            .collect()
    }

    fn ids(v: &[usize]) -> Vec<UnitId> {
        v.iter().map(|&i| UnitId(i)).collect()
    }

    fn assigned(actions: &[Action]) -> Vec<(usize, usize)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Assign { worker, unit } => Some((*worker, unit.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn own_queue_then_shared_then_steal() {
        // Worker 0 planned [0, 3], worker 1 planned [1, 2].
        let mut d = Dispatcher::new(
            units(&[40, 30, 20, 10]),
            vec![ids(&[0, 3]), ids(&[1, 2])],
            vec![],
            false,
        );
        let t = Instant::now();
        assert_eq!(assigned(&d.request(0)), vec![(0, 0)]);
        d.started(0, UnitId(0), t);
        assert_eq!(assigned(&d.request(1)), vec![(1, 1)]);
        d.started(1, UnitId(1), t);
        d.finished(1, UnitId(1), UnitEnd::Ok, Instant::now());
        assert_eq!(assigned(&d.request(1)), vec![(1, 2)]);
        d.started(1, UnitId(2), t);
        d.finished(1, UnitId(2), UnitEnd::Ok, Instant::now());
        // Worker 0 is still busy with 0: worker 1 steals 3 from its queue.
        assert_eq!(assigned(&d.request(1)), vec![(1, 3)]);
        d.started(1, UnitId(3), t);
        d.finished(1, UnitId(3), UnitEnd::Ok, Instant::now());
        // Nothing left but 0 in hand: worker 1 parks, no release yet.
        assert!(d.request(1).is_empty());
        // The last unit finishes: the parked worker is released at once, the other when it
        // asks.
        assert_eq!(
            d.finished(0, UnitId(0), UnitEnd::Ok, Instant::now()),
            vec![Action::Release { worker: 1 }]
        );
        assert_eq!(d.request(0), vec![Action::Release { worker: 0 }]);
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn dynamic_takes_largest_first_from_the_shared_queue() {
        let mut d = Dispatcher::new(
            units(&[5, 9, 7]),
            vec![vec![], vec![]],
            ids(&[1, 2, 0]),
            false,
        );
        assert_eq!(assigned(&d.request(1)), vec![(1, 1)]);
        assert_eq!(assigned(&d.request(0)), vec![(0, 2)]);
        assert_eq!(assigned(&d.request(0)), vec![(0, 0)]);
    }

    #[test]
    fn death_requeues_the_unstarted_and_reports_the_running() {
        let mut d = Dispatcher::new(
            units(&[10, 10, 10, 10]),
            vec![ids(&[0, 2]), ids(&[1, 3])],
            vec![],
            false,
        );
        let t = Instant::now();
        d.request(0);
        d.started(0, UnitId(0), t);
        d.request(1); // handed 1, dies before starting it
        let death = d.died(1);
        assert_eq!(death.running, None);
        assert_eq!(death.requeued, ids(&[1, 3]));
        assert_eq!(d.state(UnitId(1)), UnitState::Pending);
        // Worker 0 finishes and then gets the requeued units, in order, before its own.
        d.finished(0, UnitId(0), UnitEnd::Ok, Instant::now());
        assert_eq!(assigned(&d.request(0)), vec![(0, 2)]);
        d.started(0, UnitId(2), t);
        // Worker 0 dies while running 2: 2 failed, 1 and 3 need a replacement.
        let death = d.died(0);
        assert_eq!(death.running, Some(UnitId(2)));
        assert_eq!(d.state(UnitId(2)), UnitState::Finished);
        assert_eq!(death.actions, vec![Action::Spawn]);
        let w = d.add_worker();
        assert_eq!(assigned(&d.request(w)), vec![(w, 1)]);
        assert_eq!(d.replacements(), 1);
    }

    #[test]
    fn parked_workers_wake_for_requeued_units() {
        let mut d = Dispatcher::new(units(&[10, 10]), vec![ids(&[0, 1]), vec![]], vec![], false);
        let t = Instant::now();
        d.request(0);
        d.started(0, UnitId(0), t);
        // Worker 1 steals 1, starts nothing, then 0's worker dies with 0 running.
        assert_eq!(assigned(&d.request(1)), vec![(1, 1)]);
        d.started(1, UnitId(1), t);
        d.finished(1, UnitId(1), UnitEnd::Ok, Instant::now());
        assert!(d.request(1).is_empty()); // parked, 0 still running
        let death = d.died(0);
        assert_eq!(death.running, Some(UnitId(0)));
        // Nothing left: the parked worker is released.
        assert_eq!(death.actions, vec![Action::Release { worker: 1 }]);
    }

    #[test]
    fn interrupt_stops_then_kills() {
        let mut d = Dispatcher::new(
            units(&[1, 1, 1]),
            vec![ids(&[0, 1]), ids(&[2])],
            vec![],
            false,
        );
        let t = Instant::now();
        d.request(0);
        d.started(0, UnitId(0), t);
        d.request(1);
        d.started(1, UnitId(2), t);
        d.finished(1, UnitId(2), UnitEnd::Ok, Instant::now());
        // Worker 1 would now steal unit 1 from worker 0's queue; the interrupt comes first.
        let a = d.interrupt();
        assert!(a.contains(&Action::Signal {
            worker: 0,
            signal: StopSignal::Term
        }));
        assert_eq!(d.state(UnitId(1)), UnitState::Dropped);
        assert_eq!(d.request(1), vec![Action::Release { worker: 1 }]);
        assert_eq!(d.request(0), vec![Action::Release { worker: 0 }]);
        let a = d.interrupt();
        assert!(a.contains(&Action::Signal {
            worker: 0,
            signal: StopSignal::Kill
        }));
        assert_eq!(d.stopping(), Stopping::Killed);
    }

    #[test]
    fn abort_policy_stops_at_the_first_failure() {
        let mut d = Dispatcher::new(units(&[1, 1, 1]), vec![ids(&[0, 1, 2])], vec![], true);
        let t = Instant::now();
        d.request(0);
        d.started(0, UnitId(0), t);
        let a = d.finished(0, UnitId(0), UnitEnd::Failed, Instant::now());
        assert_eq!(
            a,
            vec![Action::Signal {
                worker: 0,
                signal: StopSignal::Term
            }]
        );
        assert_eq!(d.stopping(), Stopping::Aborted);
        assert_eq!(d.request(0), vec![Action::Release { worker: 0 }]);
        assert_eq!(d.state(UnitId(2)), UnitState::Dropped);
    }

    /// Run 7 in `chunks` chunks of 10 events through phases A and B: units `0..chunks` are
    /// the chunks through A, then the same chunks through B, then the merges of A and B, then
    /// the commit.
    fn chunked(chunks: u32) -> Vec<Unit> {
        let runs = [crate::runs::Run {
            run: 7,
            bytes: 10 * u64::from(chunks),
        }];
        let ranges: HashMap<u32, [u64; 2]> = [(7, [0, u64::from(chunks) * 10 - 1])].into();
        units_for(&runs, &ranges, 10, &["A".into(), "B".into()])
    }

    /// Requests work for `w`, starts what it gets and returns its index.
    fn next(d: &mut Dispatcher, w: usize) -> Option<usize> {
        let got = assigned(&d.request(w)).first().map(|&(_, u)| u)?;
        d.started(w, UnitId(got), Instant::now());
        Some(got)
    }

    #[test]
    fn long_runs_are_split_short_runs_stay_whole() {
        let runs = vec![
            crate::runs::Run {
                run: 1,
                bytes: 1000,
            },
            crate::runs::Run { run: 2, bytes: 10 },
            crate::runs::Run { run: 3, bytes: 10 },
        ];
        let ranges: HashMap<u32, [u64; 2]> = [(1, [0, 2499]), (2, [0, 99])].into();
        let phases = ["A".to_string(), "B".to_string()];
        let u = units_for(&runs, &ranges, 1000, &phases);
        // Run 1: 3 chunks through 2 phases, a merge per phase and a commit; run 2 short; run 3
        // of unknown events.
        assert_eq!(u.len(), 11);
        let chunks: Vec<&Unit> = u
            .iter()
            .filter(|x| matches!(x.part, Part::Chunk { .. }))
            .collect();
        assert_eq!(chunks.len(), 6);
        let cost: u64 = chunks.iter().map(|c| c.cost).sum();
        assert!((990..=1000).contains(&cost), "{cost}");
        assert!(
            matches!(&u[2].part, Part::Chunk { index: 2, phase, first: 1666, last: 2499, .. } if phase == "A")
        );
        assert!(matches!(&u[3].part, Part::Chunk { index: 0, phase, .. } if phase == "B"));
        assert!(
            matches!(&u[6].part, Part::Merge { phase, ranges } if phase == "A" && ranges.len() == 3 && ranges[2] == [1666, 2499])
        );
        assert!(matches!(&u[7].part, Part::Merge { phase, .. } if phase == "B"));
        assert!(matches!(&u[8].part, Part::Commit { ranges } if ranges.len() == 3));
        assert_eq!(u[9].part, Part::Whole);
        assert_eq!(u[10].part, Part::Whole);
        // What waits for what.
        let pre = prerequisites(&u);
        assert!(pre[0].is_empty() && pre[9].is_empty());
        assert_eq!(pre[3], ids(&[0]));
        assert_eq!(pre[6], ids(&[0, 1, 2]));
        assert_eq!(pre[7], ids(&[3, 4, 5]));
        assert_eq!(pre[8], ids(&[6, 7]));
        // chunk_events 0 never splits.
        assert!(units_for(&runs, &ranges, 0, &phases)
            .iter()
            .all(|x| x.part == Part::Whole));
    }

    #[test]
    fn a_claimed_range_near_the_top_of_the_id_space_gives_a_bounded_number_of_chunks() {
        let runs = vec![crate::runs::Run { run: 1, bytes: 10 }];
        let ranges: HashMap<u32, [u64; 2]> = [(1, [0, (1u64 << 62) - 1])].into();
        let u = units_for(&runs, &ranges, 250, &["A".to_string()]);
        let chunks: Vec<&Unit> = u
            .iter()
            .filter(|x| matches!(x.part, Part::Chunk { .. }))
            .collect();
        assert_eq!(chunks.len() as u64, MAX_CHUNKS_PER_RUN);
        assert!(
            matches!(&u.last().unwrap().part, Part::Commit { ranges } if ranges.len() as u64 == MAX_CHUNKS_PER_RUN && ranges.last().unwrap()[1] == (1u64 << 62) - 1)
        );
    }

    #[test]
    fn chunks_pass_a_phase_before_going_on_merges_go_first_and_the_commit_waits_for_them() {
        // 0, 1: chunks through A; 2, 3: through B; 4, 5: merges of A and B; 6: commit.
        let mut d = Dispatcher::new(chunked(2), vec![vec![], vec![]], ids(&[0, 1]), false);
        for u in 2..=6 {
            assert_eq!(d.state(UnitId(u)), UnitState::Waiting);
        }
        assert_eq!(next(&mut d, 0), Some(0));
        assert_eq!(next(&mut d, 1), Some(1));
        d.finished(0, UnitId(0), UnitEnd::Ok, Instant::now());
        // Chunk 0 goes on to B; A's merge still waits for chunk 1.
        assert_eq!(d.state(UnitId(4)), UnitState::Waiting);
        assert_eq!(next(&mut d, 0), Some(2));
        d.finished(1, UnitId(1), UnitEnd::Ok, Instant::now());
        // Every chunk passed A: its merge goes before chunk 1's B, beside chunk 0's B.
        assert_eq!(next(&mut d, 1), Some(4));
        d.finished(0, UnitId(2), UnitEnd::Ok, Instant::now());
        assert_eq!(next(&mut d, 0), Some(3));
        d.finished(0, UnitId(3), UnitEnd::Ok, Instant::now());
        assert_eq!(next(&mut d, 0), Some(5));
        d.finished(1, UnitId(4), UnitEnd::Ok, Instant::now());
        // One merge left: the commit waits, the idle worker parks ...
        assert_eq!(d.state(UnitId(6)), UnitState::Waiting);
        assert_eq!(next(&mut d, 1), None);
        // ... and is woken for the commit when the last merge ends.
        assert_eq!(
            assigned(&d.finished(0, UnitId(5), UnitEnd::Ok, Instant::now())),
            vec![(1, 6)]
        );
        d.started(1, UnitId(6), Instant::now());
        d.finished(1, UnitId(6), UnitEnd::Ok, Instant::now());
        assert_eq!(d.remaining(), 0);
        assert_eq!(d.request(0), vec![Action::Release { worker: 0 }]);
    }

    #[test]
    fn a_failed_chunk_drops_its_later_phases_the_merges_and_the_commit() {
        let mut d = Dispatcher::new(chunked(2), vec![vec![]], ids(&[0, 1]), false);
        assert_eq!(next(&mut d, 0), Some(0));
        d.finished(0, UnitId(0), UnitEnd::Failed, Instant::now());
        for u in [2, 4, 5, 6] {
            assert_eq!(d.state(UnitId(u)), UnitState::Dropped, "unit {u}");
        }
        // The other chunk still goes through the chain (its results stay for a later launch).
        assert_eq!(next(&mut d, 0), Some(1));
        d.finished(0, UnitId(1), UnitEnd::Ok, Instant::now());
        assert_eq!(next(&mut d, 0), Some(3));
        assert!(assigned(&d.finished(0, UnitId(3), UnitEnd::Ok, Instant::now())).is_empty());
        assert_eq!(d.request(0), vec![Action::Release { worker: 0 }]);
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn a_chunk_left_to_another_launch_drops_what_waits_for_it_without_aborting() {
        let mut d = Dispatcher::new(chunked(2), vec![vec![]], ids(&[0, 1]), true);
        assert_eq!(next(&mut d, 0), Some(0));
        d.finished(0, UnitId(0), UnitEnd::NotDone, Instant::now());
        assert_eq!(d.stopping(), Stopping::No);
        for u in [2, 4, 5, 6] {
            assert_eq!(d.state(UnitId(u)), UnitState::Dropped, "unit {u}");
        }
        assert_eq!(next(&mut d, 0), Some(1));
    }

    #[test]
    fn a_failed_merge_drops_the_commit_but_not_the_other_merge() {
        let mut d = Dispatcher::new(chunked(2), vec![vec![]], ids(&[0, 1]), false);
        let mut order = Vec::new();
        while let Some(u) = next(&mut d, 0) {
            order.push(u);
            // The merge of A fails.
            d.finished(
                0,
                UnitId(u),
                if u == 4 { UnitEnd::Failed } else { UnitEnd::Ok },
                Instant::now(),
            );
        }
        assert_eq!(order, vec![0, 1, 4, 2, 3, 5]);
        assert_eq!(d.state(UnitId(5)), UnitState::Finished);
        assert_eq!(d.state(UnitId(6)), UnitState::Dropped);
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn a_worker_dying_in_a_chunk_fails_the_run_and_an_interrupt_drops_waiting_merges() {
        let mut d = Dispatcher::new(chunked(2), vec![vec![], vec![]], ids(&[0, 1]), false);
        assert_eq!(next(&mut d, 0), Some(0));
        let death = d.died(0);
        assert_eq!(death.running, Some(UnitId(0)));
        for u in [2, 4, 5, 6] {
            assert_eq!(d.state(UnitId(u)), UnitState::Dropped, "unit {u}");
        }
        let mut d = Dispatcher::new(chunked(2), vec![vec![]], ids(&[0, 1]), false);
        assert_eq!(next(&mut d, 0), Some(0));
        d.interrupt();
        for u in 1..=6 {
            assert_eq!(d.state(UnitId(u)), UnitState::Dropped, "unit {u}");
        }
    }

    #[test]
    fn overdue_units_get_their_worker_killed_once() {
        let mut d = Dispatcher::new(units(&[1, 1]), vec![ids(&[0]), ids(&[1])], vec![], false);
        let t = Instant::now();
        d.request(0);
        d.started(0, UnitId(0), t);
        d.request(1);
        d.started(1, UnitId(1), t + Duration::from_secs(10));
        let limit = Duration::from_secs(5);
        let grace = Duration::from_secs(2);
        assert!(d
            .overdue(t + Duration::from_secs(6), limit, grace)
            .is_empty());
        let a = d.overdue(t + Duration::from_secs(8), limit, grace);
        assert_eq!(
            a,
            vec![Action::Signal {
                worker: 0,
                signal: StopSignal::Kill
            }]
        );
        assert!(d
            .overdue(t + Duration::from_secs(9), limit, grace)
            .is_empty());
        let death = d.died(0);
        assert!(death.overdue);
        assert_eq!(death.running, Some(UnitId(0)));
    }

    #[test]
    fn a_split_runs_time_limit_counts_its_finished_units() {
        // One run in 2 chunks through phases A and B (units 0, 1: A; 2, 3: B; then merges).
        let mut d = Dispatcher::new(chunked(2), vec![vec![]], ids(&[0, 1]), false);
        let t = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_at(&mut d, 0, t), Some(0));
        d.finished(0, UnitId(0), UnitEnd::Ok, t + s(4));
        assert_eq!(d.spent(7), s(4));
        assert_eq!(next_at(&mut d, 0, t + s(4)), Some(1));
        d.finished(0, UnitId(1), UnitEnd::Ok, t + s(7));
        assert_eq!(d.spent(7), s(7));
        // The next unit (A's merge goes first) has 3 s of a 10 s limit left (+ 1 s grace):
        // killed after 4 s, not 11.
        assert!(next_at(&mut d, 0, t + s(7)).is_some());
        let (limit, grace) = (s(10), s(1));
        assert!(d.overdue(t + s(10), limit, grace).is_empty());
        assert_eq!(
            d.overdue(t + s(12), limit, grace),
            vec![Action::Signal {
                worker: 0,
                signal: StopSignal::Kill
            }]
        );
        // Other runs are not charged.
        assert_eq!(d.spent(8), Duration::ZERO);
    }

    /// Requests work for `w` and starts what it gets at `at`.
    fn next_at(d: &mut Dispatcher, w: usize, at: Instant) -> Option<usize> {
        let got = assigned(&d.request(w)).first().map(|&(_, u)| u)?;
        d.started(w, UnitId(got), at);
        Some(got)
    }
}
