//! The server's own load average: `load_avg_1m`, `_5m` and `_15m` over the server's
//! processes only, computed the way the kernel computes `/proc/loadavg`.
//!
//! The arithmetic is the kernel's (`calc_load` in include/linux/sched/loadavg.h, driven by
//! kernel/sched/loadavg.c; printed by fs/proc/loadavg.c): an exponentially damped average
//! in 11-bit fixed point, fed every 5 seconds with the number of runnable (R) and
//! uninterruptible (D) tasks. Being integer arithmetic, it is exact and testable, and its
//! figures read like the machine's own. This module only does the arithmetic: the caller
//! counts tasks (with [`is_active`] on each process's state) and calls
//! [`LoadAvg::sample`] every [`LOAD_SAMPLE_SECS`].

/// Seconds between two load samples, as the kernel's LOAD_FREQ.
///
/// The kernel's LOAD_FREQ is `5*HZ+1` ticks, 5 s plus one tick so that sampling does not
/// beat with tasks that wake every 5 s; at our resolution that is 5 s.
pub const LOAD_SAMPLE_SECS: u64 = 5;

/// Bits of fraction in the fixed-point values (kernel FSHIFT).
const FSHIFT: u32 = 11;
/// 1.0 in fixed point (kernel FIXED_1).
const FIXED_1: u64 = 1 << FSHIFT;
/// `FIXED_1 / exp(5 s / 1 min)`, the 1-minute decay per sample (kernel EXP_1).
const EXP_1: u64 = 1884;
/// `FIXED_1 / exp(5 s / 5 min)` (kernel EXP_5).
const EXP_5: u64 = 2014;
/// `FIXED_1 / exp(5 s / 15 min)` (kernel EXP_15).
const EXP_15: u64 = 2037;

/// One step of the kernel's damped average: `load * exp + active * (1 - exp)`, in fixed
/// point.
///
/// All three arguments are fixed point (`active` is a task count times `FIXED_1`). As in the
/// kernel, a rising average is rounded up (the `FIXED_1 - 1` term) and a falling one down,
/// so a steady load reaches exactly its value and an idle one reaches exactly 0. The
/// product is taken in u128 so that no task count can overflow it.
fn calc_load(load_fixed: u64, exp: u64, active_fixed: u64) -> u64 {
    let (load, exp, active) = (
        u128::from(load_fixed),
        u128::from(exp),
        u128::from(active_fixed),
    );
    let fixed_1 = u128::from(FIXED_1);
    let mut newload = load * exp + active * (fixed_1 - exp);
    if active >= load {
        newload += fixed_1 - 1;
    }
    u64::try_from(newload / fixed_1).unwrap_or(u64::MAX)
}

/// The 1, 5 and 15 minute load averages of the server's processes.
///
/// Starts at 0, as the kernel's does at boot, and needs a few minutes of samples to mean
/// anything; the 15-minute figure needs about an hour to settle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadAvg {
    /// The 1, 5 and 15 minute averages in fixed point (kernel `avenrun[]`).
    avenrun_fixed: [u64; 3],
}

impl LoadAvg {
    /// Folds in one sample: the number of the server's tasks in state R or D right now.
    ///
    /// Call it every [`LOAD_SAMPLE_SECS`]; the decay constants assume that interval.
    pub fn sample(&mut self, active_tasks: u64) {
        let active_fixed = active_tasks.saturating_mul(FIXED_1);
        for (avg, exp) in self.avenrun_fixed.iter_mut().zip([EXP_1, EXP_5, EXP_15]) {
            *avg = calc_load(*avg, exp, active_fixed);
        }
    }

    /// The 1, 5 and 15 minute averages, rounded to two decimals as /proc/loadavg prints them
    /// (LOAD_INT and LOAD_FRAC with the kernel's rounding: add FIXED_1/200 before splitting).
    ///
    /// fs/proc/loadavg.c adds `FIXED_1/200` (0.005, rounding to the nearest hundredth) and
    /// prints `LOAD_INT(x)` (`x >> FSHIFT`) and `LOAD_FRAC(x)` (the fraction bits times 100,
    /// shifted down), which truncates. The result is `hundredths / 100.0`, the f64 nearest
    /// the printed decimal, so `{:.2}` prints what the kernel would.
    pub fn averages(&self) -> [f64; 3] {
        self.avenrun_fixed.map(|avg| {
            let rounded = avg.saturating_add(FIXED_1 / 200);
            let int = rounded >> FSHIFT;
            let frac = ((rounded & (FIXED_1 - 1)) * 100) >> FSHIFT;
            // An f64 holds integers up to 2^53 exactly; beyond that no load is meaningful.
            (int.saturating_mul(100).saturating_add(frac)) as f64 / 100.0
        })
    }
}

/// Counts the tasks that the kernel's load average counts (states R and D).
///
/// The kernel counts `nr_running + nr_uninterruptible` (kernel/sched/loadavg.c,
/// `calc_load_fold_active`). The state letters are those of proc(5), /proc/pid/stat field
/// (3): `R` running or runnable, `D` uninterruptible sleep (usually disk I/O). `I` (idle
/// kernel threads, `TASK_NOLOAD`) looks like D to the scheduler but is not counted, nor
/// are S, T, t, Z, X.
pub fn is_active(state: char) -> bool {
    matches!(state, 'R' | 'D')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(load: &LoadAvg) -> [u64; 3] {
        load.avenrun_fixed
    }

    #[test]
    fn calc_load_matches_the_formula() {
        // From 0 with one task: (0 * 1884 + 2048 * (2048 - 1884) + 2047) / 2048
        //   = (335872 + 2047) / 2048 = 337919 / 2048 = 164 (rounded down from 164.999).
        assert_eq!(calc_load(0, EXP_1, FIXED_1), 164);
        // Falling: no rounding term. (2048 * 1884 + 0) / 2048 = 1884.
        assert_eq!(calc_load(FIXED_1, EXP_1, 0), 1884);
        // Steady at 1.0 stays there: (2048 * 1884 + 2048 * 164 + 2047) / 2048 = 2048.
        assert_eq!(calc_load(FIXED_1, EXP_1, FIXED_1), FIXED_1);
        // Huge inputs do not overflow.
        assert_eq!(calc_load(u64::MAX, EXP_1, u64::MAX), u64::MAX);
    }

    #[test]
    fn first_samples_by_hand() {
        let mut load = LoadAvg::default();
        assert_eq!(fixed(&load), [0, 0, 0]);

        load.sample(1);
        // 1m: (0 + 2048 * 164 + 2047) / 2048 = 337919 / 2048 = 164
        // 5m: (0 + 2048 * 34 + 2047) / 2048 = 71679 / 2048 = 34
        // 15m: (0 + 2048 * 11 + 2047) / 2048 = 24575 / 2048 = 11
        assert_eq!(fixed(&load), [164, 34, 11]);

        load.sample(1);
        // 1m: (164 * 1884 + 335872 + 2047) / 2048 = (308976 + 337919) / 2048 = 646895 / 2048 = 315
        // 5m: (34 * 2014 + 69632 + 2047) / 2048 = (68476 + 71679) / 2048 = 140155 / 2048 = 68
        // 15m: (11 * 2037 + 22528 + 2047) / 2048 = (22407 + 24575) / 2048 = 46982 / 2048 = 22
        assert_eq!(fixed(&load), [315, 68, 22]);

        load.sample(1);
        // 1m: (315 * 1884 + 337919) / 2048 = (593460 + 337919) / 2048 = 931379 / 2048 = 454
        // 5m: (68 * 2014 + 71679) / 2048 = (136952 + 71679) / 2048 = 208631 / 2048 = 101
        // 15m: (22 * 2037 + 24575) / 2048 = (44814 + 24575) / 2048 = 69389 / 2048 = 33
        assert_eq!(fixed(&load), [454, 101, 33]);

        // Two tasks now: active = 4096.
        load.sample(2);
        // 1m: (454 * 1884 + 4096 * 164 + 2047) / 2048 = (855336 + 671744 + 2047) / 2048
        //   = 1529127 / 2048 = 746
        assert_eq!(fixed(&load)[0], 746);

        // Printed: 746 + 10 = 756; int 0, frac (756 * 100) >> 11 = 75600 / 2048 = 36.
        assert_eq!(load.averages()[0], 0.36);
    }

    #[test]
    fn one_sample_reads_like_the_kernel() {
        let mut load = LoadAvg::default();
        load.sample(1);
        // 164 + 10 = 174 -> 0.08; 34 + 10 = 44 -> 0.02; 11 + 10 = 21 -> 0.01 (21 * 100 / 2048).
        assert_eq!(load.averages(), [0.08, 0.02, 0.01]);
    }

    #[test]
    fn steady_task_converges_towards_one() {
        let mut load = LoadAvg::default();
        for _ in 0..60 {
            load.sample(1);
        }
        // Five minutes: the 1-minute average is 1 - e^-5 ~ 0.993 of the way there.
        let [one, five, fifteen] = load.averages();
        assert!((0.99..=1.0).contains(&one), "1m {one}");
        // The 5-minute one is 1 - e^-1 ~ 0.63, the 15-minute one 1 - e^(-1/3) ~ 0.28.
        assert!((0.60..=0.66).contains(&five), "5m {five}");
        assert!((0.25..=0.31).contains(&fifteen), "15m {fifteen}");
        assert!(one > five && five > fifteen);

        // The rounding up makes a steady load reach its value exactly, and stay.
        for _ in 0..2000 {
            load.sample(1);
        }
        assert_eq!(fixed(&load), [FIXED_1; 3]);
        assert_eq!(load.averages(), [1.0, 1.0, 1.0]);
    }

    #[test]
    fn fifteen_minute_average_grows_slowly() {
        let mut load = LoadAvg::default();
        let mut previous = 0;
        for _ in 0..12 {
            load.sample(1);
            let now = fixed(&load)[2];
            assert!(now > previous);
            previous = now;
        }
        // After one minute the 15-minute figure is still under 0.07 (1 - e^(-1/15) ~ 0.064).
        assert!(load.averages()[2] < 0.07, "{:?}", load.averages());
    }

    #[test]
    fn idle_decays_to_zero() {
        let mut load = LoadAvg::default();
        for _ in 0..2000 {
            load.sample(4);
        }
        assert_eq!(load.averages(), [4.0, 4.0, 4.0]);

        load.sample(0);
        // 1m: 4 * 2048 * 1884 / 2048 = 7536; 5m: 8192 * 2014 / 2048 = 8056; 15m: 8148.
        assert_eq!(fixed(&load), [7536, 8056, 8148]);

        // Eleven more samples make one idle minute.
        let mut previous = fixed(&load);
        for _ in 0..11 {
            load.sample(0);
            let now = fixed(&load);
            assert!(now.iter().zip(previous).all(|(n, p)| *n < p));
            previous = now;
        }
        // After one idle minute, the 1-minute average is down to 4 * e^-1 ~ 1.47.
        let one = load.averages()[0];
        assert!((1.40..=1.55).contains(&one), "1m {one}");

        // Rounding down makes an idle server reach exactly 0.
        for _ in 0..5000 {
            load.sample(0);
        }
        assert_eq!(load, LoadAvg::default());
        assert_eq!(load.averages(), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn averages_round_like_proc_loadavg() {
        let with = |avg: u64| {
            LoadAvg {
                avenrun_fixed: [avg, 0, 0],
            }
            .averages()[0]
        };
        assert_eq!(with(0), 0.0);
        // The 0.005 offset is 10: (10 + 10) * 100 >> 11 = 0 hundredths; (11 + 10) -> 1.
        assert_eq!(with(10), 0.0);
        assert_eq!(with(11), 0.01);
        // 1.00 exactly, and just under it rounding up to 1.00.
        assert_eq!(with(2048), 1.0);
        assert_eq!(with(2040), 1.0);
        // 3.25: 3 * 2048 + 512 = 6656.
        assert_eq!(with(6656), 3.25);
        // Big loads stay finite.
        assert!(with(u64::MAX).is_finite());
    }

    #[test]
    fn active_states() {
        for state in ['R', 'D'] {
            assert!(is_active(state), "{state}");
        }
        for state in [
            'S', 'I', 'T', 't', 'Z', 'X', 'x', 'K', 'W', 'P', 'r', 'd', ' ', '?',
        ] {
            assert!(!is_active(state), "{state}");
        }
    }
}
