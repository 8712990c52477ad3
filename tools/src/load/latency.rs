//! The latency histogram of the load client: fixed size, mergeable, nearest-rank
//! percentiles. Pure: no clock, no I/O.

use std::time::Duration;

use runicorn::internals::histogram::{Histogram, Layout};

/// A latency histogram in microseconds: exact below 128 µs, then 64 buckets per power of
/// two (at most 1.6% relative error), up to `u32::MAX` µs (71 minutes; longer values are
/// clamped). About 14 KiB whatever the number of samples; percentiles by nearest rank. The
/// buckets are the server's own histogram ([`Histogram`]) in a finer [`Layout`]; the exact
/// count, sum, minimum and maximum are kept beside them.
#[derive(Clone)]
pub struct Latencies {
    hist: Histogram,
    n: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

const LAYOUT: Layout = Layout::new(6, 32);

/// A summary, not the 1728 buckets.
impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latencies")
            .field("count", &self.n)
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            hist: Histogram::new(LAYOUT),
            n: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl Latencies {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(u32::MAX as u64);
        self.hist.record(us);
        self.n += 1;
        self.sum_us += us as u128;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.hist.merge(&other.hist);
        self.n += other.n;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The `p`th percentile (0 to 100) by nearest rank: the smallest recorded value that at
    /// least `p`% of the samples do not exceed, rounded up to its bucket's upper bound (and
    /// never above the maximum). `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let i = self.hist.quantile_bucket(p / 100.0)?;
        let us = LAYOUT.upper(i).clamp(self.min_us, self.max_us);
        Some(Duration::from_micros(us))
    }

    /// The median.
    pub fn p50(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// The 95th percentile.
    pub fn p95(&self) -> Option<Duration> {
        self.percentile(95.0)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Option<Duration> {
        self.percentile(99.0)
    }

    /// The smallest sample (exact).
    pub fn min(&self) -> Option<Duration> {
        (self.n > 0).then(|| Duration::from_micros(self.min_us))
    }

    /// The largest sample (exact).
    pub fn max(&self) -> Option<Duration> {
        (self.n > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// The mean (exact).
    pub fn mean(&self) -> Option<Duration> {
        (self.n > 0).then(|| Duration::from_micros((self.sum_us / self.n as u128) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.p50(), None);
        assert_eq!(l.max(), None);
        for us in 1..=100u64 {
            l.record(Duration::from_micros(us));
        }
        let us = |d: Option<Duration>| d.unwrap().as_micros();
        assert_eq!(l.count(), 100);
        assert_eq!(us(l.p50()), 50);
        assert_eq!(us(l.p95()), 95);
        assert_eq!(us(l.p99()), 99);
        assert_eq!(us(l.percentile(100.0)), 100);
        assert_eq!(us(l.percentile(0.0)), 1);
        assert_eq!(us(l.min()), 1);
        assert_eq!(us(l.mean()), 50);

        // Above the exact range: within 1/64, never above the maximum.
        let mut l = Latencies::default();
        for ms in [10u64, 20, 30, 40] {
            l.record(Duration::from_millis(ms));
        }
        let p50 = us(l.p50()) as u64;
        assert!((20_000..=20_000 + 20_000 / 64).contains(&p50), "{p50}");
        assert_eq!(us(l.p99()), 40_000);
        assert_eq!(us(l.max()), 40_000);

        // One sample: every percentile is it.
        let mut one = Latencies::default();
        one.record(Duration::from_micros(12_345));
        assert_eq!(us(one.p50()), 12_345);
        assert_eq!(us(one.p99()), 12_345);

        // Merge adds the samples; huge values are clamped.
        let mut m = Latencies::default();
        m.merge(&l);
        m.merge(&one);
        m.record(Duration::from_secs(100_000));
        assert_eq!(m.count(), 6);
        assert_eq!(us(m.min()), 10_000);
        assert_eq!(us(m.max()), u32::MAX as u128);
    }
}
