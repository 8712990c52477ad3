//! Service-time distributions for the planner: given by name (`exp:20ms`), or by measured
//! percentiles (`p50=20ms,p95=60ms,p99=120ms`), and drawn from with a seeded generator.
//!
//! Percentiles are joined by straight lines in (normal quantile, log time) space: a
//! log-normal distribution is a straight line there, so log-normal percentiles give back
//! that log-normal exactly, and any other set of percentiles is honoured point for point.
//! Below the first and above the last percentile the nearest segment's slope goes on.

pub use crate::rng::Rng;

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.15e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// A service-time distribution, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    /// Always the same time.
    Const(f64),
    /// Exponential with this mean (the M/M/c textbook case).
    Exp(f64),
    /// Log-normal with this median and shape (the σ of the log).
    LogNormal {
        /// The median.
        median: f64,
        /// σ of ln(time).
        sigma: f64,
    },
    /// Through these `(quantile, time)` points, at least two, quantiles in (0, 1) rising.
    Percentiles(Vec<(f64, f64)>),
    /// Another distribution moved by a constant (never below 0): percentiles measured in
    /// buckets, moved so that their mean is the measured one.
    Shifted(Box<Service>, f64),
}

/// A time: `20ms`, `1.5s`, `250us`, or a bare number of milliseconds; in seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1e-3)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

impl Service {
    /// Reads `exp:MEAN`, `const:TIME`, `lognormal:MEDIAN,SIGMA`, or percentiles
    /// `p50=TIME,p95=TIME,p99=TIME` (any of p1..p99.9, at least two), with an optional
    /// `mean=TIME` that moves them to that mean.
    pub fn parse(text: &str) -> Option<Service> {
        if let Some(mean) = text.strip_prefix("exp:") {
            return parse_time(mean).filter(|m| *m > 0.0).map(Service::Exp);
        }
        if let Some(t) = text.strip_prefix("const:") {
            return parse_time(t).map(Service::Const);
        }
        if let Some(rest) = text.strip_prefix("lognormal:") {
            let (median, sigma) = rest.split_once(',')?;
            let median = parse_time(median).filter(|m| *m > 0.0)?;
            let sigma: f64 = sigma
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| *s > 0.0 && s.is_finite())?;
            return Some(Service::LogNormal { median, sigma });
        }
        let mut points = Vec::new();
        let mut mean = None;
        for part in text.split(',') {
            let (name, time) = part.split_once('=')?;
            if name.trim() == "mean" {
                mean = Some(parse_time(time).filter(|t| *t > 0.0)?);
                continue;
            }
            let q: f64 = name.trim().strip_prefix('p')?.parse().ok()?;
            let t = parse_time(time).filter(|t| *t > 0.0)?;
            if !(q > 0.0 && q < 100.0) {
                return None;
            }
            points.push((q / 100.0, t));
        }
        let fit = Service::from_percentiles(points)?;
        Some(match mean {
            Some(m) => fit.with_mean(m),
            None => fit,
        })
    }

    /// Through measured `(quantile, time)` points; `None` unless there are two or more,
    /// with distinct quantiles, and times that do not fall as the quantile rises.
    pub fn from_percentiles(mut points: Vec<(f64, f64)>) -> Option<Service> {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        let rising = points.windows(2).all(|w| w[1].1 >= w[0].1);
        (points.len() >= 2 && rising && points.iter().all(|p| p.1 > 0.0))
            .then_some(Service::Percentiles(points))
    }

    /// `self` moved so that its mean is `mean` (a measured mean, exact where percentiles
    /// are not).
    pub fn with_mean(self, mean: f64) -> Service {
        let by = mean - self.mean();
        if by.abs() < 1e-9 {
            self
        } else {
            Service::Shifted(Box::new(self), by)
        }
    }

    /// The time at quantile `u` in (0, 1).
    pub fn quantile(&self, u: f64) -> f64 {
        match self {
            Service::Shifted(base, by) => (base.quantile(u) + by).max(0.0),
            Service::Const(t) => *t,
            Service::Exp(mean) => -mean * (1.0 - u).ln(),
            Service::LogNormal { median, sigma } => median * (sigma * normal_quantile(u)).exp(),
            Service::Percentiles(points) => {
                let z = normal_quantile(u);
                let at = |i: usize| (normal_quantile(points[i].0), points[i].1.ln());
                // The segment u falls in, or the nearest one at either end.
                let i = points
                    .iter()
                    .position(|p| p.0 >= u)
                    .unwrap_or(points.len() - 1)
                    .clamp(1, points.len() - 1);
                let ((z0, l0), (z1, l1)) = (at(i - 1), at(i));
                let slope = if z1 > z0 { (l1 - l0) / (z1 - z0) } else { 0.0 };
                (l0 + slope * (z - z0)).exp()
            }
        }
    }

    /// A draw.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Service::Shifted(base, by) => (base.sample(rng) + by).max(0.0),
            Service::Const(t) => *t,
            Service::Exp(mean) => rng.exp(*mean),
            _ => self.quantile(rng.unit()),
        }
    }

    /// The mean: exact where there is a formula, else the quantile function averaged over
    /// 100,000 evenly spaced quantiles.
    pub fn mean(&self) -> f64 {
        match self {
            Service::Const(t) => *t,
            Service::Exp(mean) => *mean,
            Service::LogNormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Service::Percentiles(_) | Service::Shifted(..) => {
                const N: usize = 100_000;
                (0..N)
                    .map(|i| self.quantile((i as f64 + 0.5) / N as f64))
                    .sum::<f64>()
                    / N as f64
            }
        }
    }

    /// In words, for the report: `exponential, mean 20 ms`.
    pub fn describe(&self) -> String {
        let ms = |s: f64| format_ms(s * 1000.0);
        match self {
            Service::Const(t) => format!("constant {}", ms(*t)),
            Service::Exp(m) => format!("exponential, mean {}", ms(*m)),
            Service::LogNormal { median, sigma } => {
                format!("log-normal, median {}, sigma {sigma}", ms(*median))
            }
            Service::Percentiles(points) => {
                let list: Vec<String> = points
                    .iter()
                    .map(|(q, t)| format!("p{} {}", trim_float(q * 100.0), ms(*t)))
                    .collect();
                format!("{} (mean {})", list.join(", "), ms(self.mean()))
            }
            Service::Shifted(base, by) => {
                let base = base.describe();
                let base = base.split(" (mean").next().unwrap_or(&base);
                format!(
                    "{base}, moved {}{} to the measured mean {}",
                    if *by < 0.0 { "-" } else { "+" },
                    ms(by.abs()),
                    ms(self.mean())
                )
            }
        }
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Milliseconds as the report prints them: `0.42 ms`, `12.3 ms`, `250 ms`.
pub fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}
