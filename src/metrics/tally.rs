//! What the master drains from the scoreboard, kept twice: pending until the next sample
//! (the metric lines and StatsD count per interval), and in running totals since the master
//! started (Prometheus wants counters that only grow, read whenever it scrapes).
//!
//! Every drain swaps each slot's counters to zero (`Slot::take_counters`) and adds what it
//! took to both. So a scrape between two samples takes nothing from the next metric line,
//! and each response is counted once in the lines and once in the totals.

use super::sample::{WorkerEnd, WorkerEnds};
use crate::scoreboard::{Counters, Scoreboard, Slot};

/// A `--timeout` kill: of a worker stuck in a request, or stuck booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Busy with one request (or its loop stuck) for longer than `--timeout`.
    Request,
    /// Booting (in `after_fork`) for longer than `--timeout`.
    Boot,
}

/// The master's counters: the interval's, and the totals.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Counters,
    pending_ends: WorkerEnds,
    total: Counters,
    total_ends: WorkerEnds,
    timeouts: [u64; 2],
    boot_failures: u64,
}

impl Tally {
    /// Takes the counters of the workers in `slots` (the live ones the master tracks).
    pub fn drain(&mut self, board: &Scoreboard, slots: impl IntoIterator<Item = usize>) {
        for s in slots {
            self.add(&board.slot(s).take_counters());
        }
    }

    fn add(&mut self, c: &Counters) {
        self.pending.merge(c);
        self.total.merge(c);
    }

    /// Keeps the counters of a worker that ended (before its slot is freed), and counts how
    /// it ended.
    pub fn on_reap(&mut self, slot: Slot<'_>, end: WorkerEnd) {
        self.add(&slot.take_counters());
        self.pending_ends.count(end);
        self.total_ends.count(end);
    }

    /// The interval's counters and worker ends, leaving none pending.
    pub fn take_pending(&mut self) -> (Counters, WorkerEnds) {
        (
            std::mem::take(&mut self.pending),
            std::mem::take(&mut self.pending_ends),
        )
    }

    /// The counters since the master started. (Their maxima are over the same time, and
    /// shown nowhere.)
    pub fn total(&self) -> &Counters {
        &self.total
    }

    /// The workers reaped since the master started, by reason.
    pub fn total_ends(&self) -> &WorkerEnds {
        &self.total_ends
    }

    /// Counts a `--timeout` kill, when the master sends it.
    pub fn count_timeout(&mut self, kind: Timeout) {
        self.timeouts[kind as usize] += 1;
    }

    /// `--timeout` kills since the master started, of this kind.
    pub fn timeouts(&self, kind: Timeout) -> u64 {
        self.timeouts[kind as usize]
    }

    /// Counts a worker that died before it was ready (a crash-loop step).
    pub fn count_boot_failure(&mut self) {
        self.boot_failures += 1;
    }

    /// Workers that died before they were ready, since the master started.
    pub fn boot_failures(&self) -> u64 {
        self.boot_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_feeds_the_interval_and_the_totals() {
        let board = Scoreboard::new(3).unwrap();
        for i in 0..3 {
            board.slot(i).reset();
        }
        let mut t = Tally::default();
        board.slot(0).count_response(200, 1000, None);
        board.slot(1).count_response(503, 3000, Some(20));
        // A scrape: drains, reads the totals.
        t.drain(&board, [0, 1]);
        assert_eq!(t.total().requests(), 2);
        assert_eq!(t.total().service_sum_us, 4000);
        // More responses, and a worker that ends with one of them.
        board.slot(0).count_response(200, 10, None);
        board.slot(2).count_response(404, 20, None);
        t.on_reap(board.slot(2), WorkerEnd::MaxRequests);
        // The sample: drains too, and takes everything since the last sample.
        t.drain(&board, [0, 1]);
        let (interval, ends) = t.take_pending();
        assert_eq!(interval.status, [0, 2, 0, 1, 1]);
        assert_eq!(interval.service.count(), 4);
        assert_eq!(interval.queue.count(), 1);
        assert_eq!(ends.exits(), 1);
        assert_eq!(ends.of(WorkerEnd::MaxRequests), 1);
        assert_eq!(t.total().status, [0, 2, 0, 1, 1]);
        // The next interval starts empty; the totals stay.
        let (next, ends) = t.take_pending();
        assert_eq!((next.requests(), ends.exits()), (0, 0));
        board.slot(1).count_response(200, 5, None);
        t.drain(&board, [0, 1]);
        assert_eq!(t.total().requests(), 5);
        assert_eq!(t.total().service_sum_us, 4035);
        assert_eq!(t.total_ends().of(WorkerEnd::MaxRequests), 1);
        assert_eq!(t.take_pending().0.requests(), 1);
    }

    #[test]
    fn timeouts_and_boot_failures_only_grow() {
        let mut t = Tally::default();
        t.count_timeout(Timeout::Request);
        t.count_timeout(Timeout::Request);
        t.count_timeout(Timeout::Boot);
        t.count_boot_failure();
        let _ = t.take_pending();
        assert_eq!(t.timeouts(Timeout::Request), 2);
        assert_eq!(t.timeouts(Timeout::Boot), 1);
        assert_eq!(t.boot_failures(), 1);
    }
}
