//! `--workers auto`: the worker count from the CPUs and the memory quota, first from an
//! estimate at boot, then from what the workers really use once they have served traffic.
//!
//! Heroku's buildpacks set `WEB_CONCURRENCY` from the dyno size with fixed rules, and Puma's
//! `auto` counts CPUs only; here the master measures. The decisions are pure functions over
//! plain numbers ([`boot_workers`], [`Resizer::next`], [`advised`], [`process_limit`]); the
//! master gathers the figures (`/proc`, the cgroup, the scoreboard, its rlimits) and acts.
//! The arithmetic of memory, CPU, the process limit and the traffic seen is
//! `metrics::advice::advise`, the same function `runicorn tune` and `runicorn metrics`
//! recommend with.

use crate::config::MAX_WORKERS;

/// The memory one worker is assumed to need at boot, before any has served a request: the
/// measured figure replaces it after the first evaluation. Generous for a Rust app (the
/// demo's workers use about 0.1 MiB of their own), so that the first count never overshoots
/// a small dyno.
pub const BOOT_WORKER_MIB: f64 = 32.0;

/// The share of the memory quota kept free: for page cache, growth between two
/// evaluations, and the moment a replaced worker and its successor both exist.
pub const HEADROOM: f64 = 0.2;

/// Workers per CPU at most, whatever the measurements say (a mostly waiting app could
/// otherwise ask for hundreds).
pub const MAX_WORKERS_PER_CPU: usize = 8;

/// Consecutive evaluations that must agree before the pool grows, or shrinks for CPU's sake.
pub const AGREEING_EVALUATIONS: u32 = 2;

/// The range `auto` keeps the count in.
pub fn bounds(cpus: usize) -> (usize, usize) {
    (
        1,
        cpus.max(1)
            .saturating_mul(MAX_WORKERS_PER_CPU)
            .min(MAX_WORKERS),
    )
}

/// The count at boot: one worker per CPU, fewer if `quota_mib` (the memory limit, or the
/// machine's memory) less the headroom and the master's own `master_mib` does not hold that
/// many workers of [`BOOT_WORKER_MIB`]. At least 1.
pub fn boot_workers(cpus: usize, quota_mib: f64, master_mib: f64) -> usize {
    let budget = quota_mib * (1.0 - HEADROOM) - master_mib;
    let by_memory = if budget.is_finite() && budget > 0.0 {
        (budget / BOOT_WORKER_MIB).floor() as usize
    } else {
        0
    };
    let (low, high) = bounds(cpus);
    cpus.min(by_memory).clamp(low, high)
}

/// The hysteresis between evaluations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resizer {
    /// The last advice that differed from the count, and how many evaluations in a row
    /// pointed the same way.
    streak: Option<(std::cmp::Ordering, u32)>,
}

impl Resizer {
    /// The count to move to from `current`, given this evaluation's `advised` count (see
    /// [`advised`]) and `fits` (what the memory quota and the process limit hold): `None` to
    /// stay.
    ///
    /// - Too many workers for the memory or the process limit: shrink to what fits at once.
    ///   No hysteresis, the alternative is the OOM killer (Heroku's R14/R15), or forks that
    ///   fail.
    /// - Otherwise move only when [`AGREEING_EVALUATIONS`] evaluations in a row point the
    ///   same way, and then halfway to the advice (at least one worker), so that a burst or a
    ///   lull does not swing the pool.
    /// - Always within [`bounds`].
    pub fn next(
        &mut self,
        current: usize,
        advised: usize,
        fits: usize,
        bounds: (usize, usize),
    ) -> Option<usize> {
        let (low, high) = bounds;
        let advised = advised.clamp(low, high);
        if current > fits.max(low) {
            self.streak = None;
            return Some(fits.clamp(low, high));
        }
        let direction = advised.cmp(&current);
        if direction == std::cmp::Ordering::Equal {
            self.streak = None;
            return None;
        }
        let count = match self.streak {
            Some((d, n)) if d == direction => n + 1,
            _ => 1,
        };
        if count < AGREEING_EVALUATIONS {
            self.streak = Some((direction, count));
            return None;
        }
        self.streak = None;
        let step = (current.abs_diff(advised)).div_ceil(2).max(1);
        Some(match direction {
            std::cmp::Ordering::Greater => current + step,
            _ => current - step,
        })
    }
}

/// This evaluation's count for [`Resizer::next`], from `current` and the advice:
///
/// - a range (`Some((low, high))`: the traffic seen never needed the workers it had, so the
///   data cannot support one number): the count within it nearest `current`, the
///   conservative end for whichever way the count would move. Inside the range it stays;
///   below, it grows only to `low`, what the traffic needed; above, it shrinks only to
///   `high`, what the bounds allow;
/// - a number, with a measured CPU share: the number, but not above `current` when the
///   workers already `saturated` the CPUs (more would only queue for them);
/// - a number without one (under a second of serving: an idle spell): `current`, unless
///   more than `fits` (what memory and the process limit hold).
pub fn advised(
    current: usize,
    workers: usize,
    range: Option<(usize, usize)>,
    fits: usize,
    cpu_measured: bool,
    saturated: bool,
) -> usize {
    match range {
        Some((low, high)) => current.clamp(low, high.max(low)),
        None if !cpu_measured => current.min(fits),
        None if saturated => workers.min(current),
        None => workers,
    }
}

/// The processes and threads the master plans within: the lowest of the documented limit of
/// the dyno size its memory quota is (`documented`: a 512 MB quota is a standard-1x, 256),
/// and the soft `RLIMIT_NPROC` (`ulimit -u`, which is how the platform sets it), unless
/// `privileged` (root is not held to `RLIMIT_NPROC`). `None` when neither applies.
pub fn process_limit(
    documented: Option<usize>,
    nproc_soft: Option<u64>,
    privileged: bool,
) -> Option<usize> {
    let nproc = nproc_soft
        .filter(|_| !privileged)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    documented.into_iter().chain(nproc).min()
}

/// What the master saw of the traffic between two evaluations, one look at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Looks {
    /// Looks taken.
    pub looks: usize,
    /// The most workers busy at once.
    pub busy_max: usize,
    /// Looks at which every worker was busy.
    pub all_busy: usize,
    /// The most connections waiting in the listen queues.
    pub backlog_max: usize,
}

impl Looks {
    /// Adds one look: `busy` and `idle` workers, `backlog` connections waiting.
    pub fn add(&mut self, busy: usize, idle: usize, backlog: Option<usize>) {
        if busy + idle == 0 {
            return; // no ready worker: nothing to learn about the traffic
        }
        self.looks += 1;
        self.busy_max = self.busy_max.max(busy);
        if idle == 0 {
            self.all_busy += 1;
        }
        self.backlog_max = self.backlog_max.max(backlog.unwrap_or(0));
    }
}

/// The share of busy time the workers spent on a CPU or waiting for one, from the time
/// their processes ran or were queued to run (`cpu_secs`) over the time they spent serving
/// (`busy_secs`), both over the same interval. `None` with too little traffic to tell (under a second of serving).
pub fn on_cpu(cpu_secs: f64, busy_secs: f64) -> Option<f64> {
    (busy_secs >= 1.0 && cpu_secs.is_finite()).then(|| (cpu_secs / busy_secs).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_counts_cpus_within_the_memory() {
        // 8 CPUs on a 512 MiB dyno: 409.6 MiB less a 3 MiB master holds 12 workers of 32 MiB.
        assert_eq!(boot_workers(8, 512.0, 3.0), 8);
        assert_eq!(boot_workers(16, 512.0, 3.0), 12);
        // A big preloaded app leaves less room.
        assert_eq!(boot_workers(8, 512.0, 300.0), 3);
        // Never below one, even when nothing fits.
        assert_eq!(boot_workers(4, 64.0, 100.0), 1);
        assert_eq!(boot_workers(0, 1024.0, 1.0), 1);
        // 14 GiB and 64 CPUs: the per-CPU bound is not the limit here, the CPU count is.
        assert_eq!(boot_workers(64, 14336.0, 3.0), 64);
    }

    #[test]
    fn bounds_follow_the_cpus() {
        assert_eq!(bounds(2), (1, 16));
        assert_eq!(bounds(0), (1, 8));
        assert_eq!(bounds(1000), (1, MAX_WORKERS));
    }

    #[test]
    fn growing_waits_for_agreement_then_goes_halfway() {
        let mut r = Resizer::default();
        let b = (1, 16);
        assert_eq!(r.next(2, 10, 100, b), None);
        assert_eq!(r.next(2, 10, 100, b), Some(6));
        assert_eq!(r.next(6, 10, 100, b), None);
        assert_eq!(r.next(6, 10, 100, b), Some(8));
        assert_eq!(r.next(8, 9, 100, b), None);
        assert_eq!(r.next(8, 9, 100, b), Some(9));
        assert_eq!(r.next(9, 9, 100, b), None);
    }

    #[test]
    fn a_change_of_mind_restarts_the_streak() {
        let mut r = Resizer::default();
        let b = (1, 16);
        assert_eq!(r.next(4, 8, 100, b), None);
        assert_eq!(r.next(4, 2, 100, b), None);
        assert_eq!(r.next(4, 4, 100, b), None);
        assert_eq!(r.next(4, 2, 100, b), None);
        assert_eq!(r.next(4, 2, 100, b), Some(3));
    }

    #[test]
    fn too_little_memory_shrinks_at_once() {
        let mut r = Resizer::default();
        let b = (1, 16);
        assert_eq!(r.next(8, 5, 5, b), Some(5));
        assert_eq!(r.next(8, 1, 0, b), Some(1));
        // At the bottom already: nothing to do.
        assert_eq!(r.next(1, 1, 0, b), None);
    }

    #[test]
    fn advice_is_kept_within_bounds() {
        let mut r = Resizer::default();
        let b = (1, 4);
        assert_eq!(r.next(4, 50, 100, b), None);
        assert_eq!(r.next(3, 50, 100, b), None);
        assert_eq!(r.next(3, 50, 100, b), Some(4));
    }

    #[test]
    fn too_many_processes_shrink_at_once_too() {
        // 8 running where the process limit (or memory) leaves room for 6.
        let mut r = Resizer::default();
        assert_eq!(r.next(8, 8, 6, (1, 16)), Some(6));
    }

    #[test]
    fn a_range_keeps_the_count_within_it() {
        // Idle traffic on a dyno that holds up to 230: any count from 2 serves it.
        let range = Some((2, 230));
        assert_eq!(advised(4, 2, range, 1486, false, false), 4, "inside: stay");
        assert_eq!(
            advised(1, 2, range, 1486, true, false),
            2,
            "below: the low end"
        );
        assert_eq!(
            advised(300, 2, range, 1486, true, false),
            230,
            "above: the high end"
        );
        // A number: as before.
        assert_eq!(advised(4, 12, None, 12, true, false), 12);
        assert_eq!(advised(4, 12, None, 12, true, true), 4, "saturated: not up");
        assert_eq!(advised(4, 2, None, 12, true, true), 2);
        assert_eq!(
            advised(20, 12, None, 12, false, false),
            12,
            "idle: only what fits"
        );
        assert_eq!(advised(4, 12, None, 12, false, false), 4, "idle: stay");
    }

    #[test]
    fn the_process_limit_is_the_lowest_known() {
        assert_eq!(process_limit(Some(256), Some(256), false), Some(256));
        assert_eq!(process_limit(Some(256), Some(100), false), Some(100));
        assert_eq!(process_limit(None, Some(96368), false), Some(96368));
        assert_eq!(process_limit(Some(512), Some(96368), true), Some(512));
        assert_eq!(
            process_limit(None, Some(100), true),
            None,
            "root is not held to it"
        );
        assert_eq!(process_limit(None, None, false), None);
    }

    #[test]
    fn looks_keep_the_peak() {
        let mut l = Looks::default();
        l.add(0, 2, Some(0));
        l.add(1, 1, None);
        l.add(0, 0, Some(5)); // no ready worker: not a look
        assert_eq!(
            l,
            Looks {
                looks: 2,
                busy_max: 1,
                all_busy: 0,
                backlog_max: 0
            }
        );
        l.add(2, 0, Some(3));
        assert_eq!(
            (l.looks, l.busy_max, l.all_busy, l.backlog_max),
            (3, 2, 1, 3)
        );
    }

    #[test]
    fn on_cpu_needs_a_second_of_serving() {
        assert_eq!(on_cpu(0.5, 2.0), Some(0.25));
        assert_eq!(on_cpu(3.0, 2.0), Some(1.0));
        assert_eq!(on_cpu(0.1, 0.5), None);
    }
}
