//! Log-linear latency histograms: the buckets the workers count service and queue time in
//! (in the scoreboard), and the ones the load client of `runicorn tune` and the chaos harness
//! counts response times in. Both split each power of two into equal buckets; they differ
//! only in how finely (a [`Layout`]), because a scoreboard slot must stay small and a load
//! report may be precise. Pure: no clock, no I/O.

/// How values map to buckets: below `2^sub_bits` a bucket per value; above, each power of
/// two is split into `2^sub_bits` equal buckets, so a bucket is at most `2^-sub_bits` of its
/// lower bound wide. Values from `2^max_bits` on land in the last bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    sub_bits: u32,
    max_bits: u32,
}

impl Layout {
    /// A layout with `2^sub_bits` buckets per power of two, up to `2^max_bits`.
    /// `sub_bits < max_bits <= 63`.
    pub const fn new(sub_bits: u32, max_bits: u32) -> Layout {
        assert!(sub_bits < max_bits && max_bits <= 63);
        Layout { sub_bits, max_bits }
    }

    /// The number of buckets (never 0).
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(self) -> usize {
        (1 << self.sub_bits) + ((self.max_bits - self.sub_bits) << self.sub_bits) as usize
    }

    /// The bucket of `v`.
    pub fn index(self, v: u64) -> usize {
        let s = self.sub_bits;
        if v < 1 << s {
            return v as usize;
        }
        let octave = 63 - v.leading_zeros(); // floor(log2 v), >= s
        let sub = (v >> (octave - s)) & ((1 << s) - 1);
        let idx = (1u64 << s) + (u64::from(octave - s) << s) + sub;
        (idx as usize).min(self.len() - 1)
    }

    /// The smallest value of bucket `i`, and its width.
    fn bounds(self, i: usize) -> (u64, u64) {
        let (s, i) = (self.sub_bits, i as u64);
        if i < 1 << s {
            return (i, 1);
        }
        let octave = (i >> s) - 1 + u64::from(s);
        let sub = i & ((1 << s) - 1);
        let width = 1u64 << (octave - u64::from(s));
        (((1 << s) + sub) * width, width)
    }

    /// The smallest value of bucket `i`.
    pub fn lower(self, i: usize) -> u64 {
        self.bounds(i).0
    }

    /// The largest value of bucket `i` (the last bucket also holds every larger value).
    pub fn upper(self, i: usize) -> u64 {
        let (lower, width) = self.bounds(i);
        lower + width - 1
    }

    /// The value bucket `i` stands for: its midpoint, within `2^-(sub_bits+1)` of any value in
    /// it.
    pub fn mid(self, i: usize) -> u64 {
        let (lower, width) = self.bounds(i);
        lower + width / 2
    }
}

/// Counts of values per bucket of a [`Layout`]; mergeable; quantiles by nearest rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    layout: Layout,
    counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram.
    pub fn new(layout: Layout) -> Histogram {
        Histogram {
            layout,
            counts: vec![0; layout.len()],
        }
    }

    /// Its layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The counts, one per bucket.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The counts, to fill from elsewhere (the scoreboard's shared words).
    pub fn counts_mut(&mut self) -> &mut [u64] {
        &mut self.counts
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[self.layout.index(v)] += 1;
    }

    /// Adds the counts of `other`, which has the same layout.
    pub fn merge(&mut self, other: &Histogram) {
        debug_assert_eq!(self.layout, other.layout);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The bucket of the value at quantile `q` (0..=1) by nearest rank: the first bucket with
    /// at least `ceil(q * count)` values at or below it. `None` when empty.
    pub fn quantile_bucket(&self, q: f64) -> Option<usize> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        self.counts.iter().position(|c| {
            seen += c;
            seen >= rank
        })
    }

    /// The value at quantile `q` (0..=1): the midpoint of [`quantile_bucket`](Self::quantile_bucket).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.quantile_bucket(q).map(|i| self.layout.mid(i))
    }

    /// The lower bound of the highest non-empty bucket (0 when empty): no value recorded in it
    /// can be smaller.
    pub fn highest_lower_bound(&self) -> u64 {
        self.counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| self.layout.lower(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two layouts the project uses.
    const COARSE: Layout = Layout::new(3, 36);
    const FINE: Layout = Layout::new(6, 32);

    #[test]
    fn buckets_are_contiguous_and_as_fine_as_promised() {
        for layout in [COARSE, FINE] {
            let s = layout.sub_bits;
            let mut next = 0;
            for i in 0..layout.len() {
                let (lo, hi) = (layout.lower(i), layout.upper(i));
                assert_eq!(lo, next, "{layout:?} bucket {i}");
                assert_eq!(
                    (layout.index(lo), layout.index(hi)),
                    (i, i),
                    "{layout:?} {i}"
                );
                assert!(
                    ((hi - lo) << s) <= lo.max(1) || lo < 1 << s,
                    "{layout:?} {i}"
                );
                assert!((lo..=hi).contains(&layout.mid(i)));
                next = hi + 1;
            }
            assert_eq!(next, 1 << layout.max_bits);
            assert_eq!(layout.index(u64::MAX), layout.len() - 1);
        }
        assert_eq!(COARSE.len(), 272);
        assert_eq!(FINE.len(), 1728);
        assert_eq!(
            (COARSE.index(15), COARSE.index(16), COARSE.index(17)),
            (15, 16, 16)
        );
        assert_eq!(
            (COARSE.lower(16), COARSE.upper(16), COARSE.mid(16)),
            (16, 17, 17)
        );
    }

    #[test]
    fn nearest_rank_quantiles_and_merge() {
        let mut h = Histogram::new(FINE);
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.highest_lower_bound(), 0);
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(0.0), Some(1));
        assert_eq!(h.quantile(1.0), Some(100));
        let mut big = Histogram::new(FINE);
        big.record(100_000);
        h.merge(&big);
        assert_eq!(h.count(), 101);
        let top = h.quantile(1.0).unwrap();
        assert!(top.abs_diff(100_000) * 128 <= 100_000, "{top}");
        assert!(h.highest_lower_bound() <= 100_000);
    }
}
