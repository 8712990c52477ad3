//! The planner's simulation: a fleet of dynos, each with a few workers and one queue (its
//! listen backlog), behind a router, under Poisson arrivals. Discrete-event, seeded,
//! deterministic: the same scenario and seed give the same figures.
//!
//! Each dyno serves first come, first served with `workers` servers. For such a queue the
//! start of each request is known when it arrives (the Kiefer-Wolfowitz recursion): it
//! starts when it arrives or when the earliest of the dyno's workers frees up, whichever
//! is later, and then holds that worker for its service time. So a request costs a scan of
//! its dyno's workers, plus, for least-connections routing, a few heap and bucket moves:
//! a million requests take well under a second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::service::{Rng, Service};

/// How the router picks a dyno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// Uniformly at random, as Heroku's router does (and HAProxy's `balance random`).
    Random,
    /// The dyno with the fewest requests in it (queued or being served), ties broken at
    /// random: HAProxy's `balance leastconn` without a per-server connection cap.
    LeastConn,
    /// Each dyno in turn.
    RoundRobin,
}

impl Router {
    /// From its name.
    pub fn parse(text: &str) -> Option<Router> {
        match text {
            "random" => Some(Router::Random),
            "leastconn" | "least-connections" => Some(Router::LeastConn),
            "roundrobin" | "round-robin" => Some(Router::RoundRobin),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Router::Random => "random",
            Router::LeastConn => "leastconn",
            Router::RoundRobin => "roundrobin",
        }
    }
}

/// One configuration to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Requests per second to the whole fleet.
    pub rate: f64,
    /// Dynos.
    pub dynos: usize,
    /// Workers per dyno.
    pub workers: usize,
    /// The router.
    pub router: Router,
    /// Requests simulated, warm-up included.
    pub requests: usize,
    /// The share of the first requests left out of the figures: the fleet starts empty.
    pub warmup: f64,
    /// The seed.
    pub seed: u64,
}

/// What a simulation found. Times in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The offered load per worker: rate × mean service time / (dynos × workers).
    pub utilisation: f64,
    /// Queue time (arrival at the dyno to a worker taking it): p50, p95, p99.
    pub queue: [f64; 3],
    /// The mean queue time.
    pub queue_mean: f64,
    /// The share of requests that waited at all.
    pub waited: f64,
    /// Requests counted (after the warm-up).
    pub counted: usize,
}

/// Dynos grouped by how many requests they hold, for least-connections routing: the least
/// loaded dyno in O(1), and a move in O(1).
struct Buckets {
    by_count: Vec<Vec<u32>>,
    count: Vec<u32>,
    pos: Vec<u32>,
    min: usize,
}

impl Buckets {
    fn new(dynos: usize) -> Buckets {
        Buckets {
            by_count: vec![(0..dynos as u32).collect()],
            count: vec![0; dynos],
            pos: (0..dynos as u32).collect(),
            min: 0,
        }
    }

    fn remove(&mut self, d: usize) {
        let c = self.count[d] as usize;
        let p = self.pos[d] as usize;
        self.by_count[c].swap_remove(p);
        if let Some(&moved) = self.by_count[c].get(p) {
            self.pos[moved as usize] = p as u32;
        }
    }

    fn insert(&mut self, d: usize, c: usize) {
        if self.by_count.len() <= c {
            self.by_count.resize_with(c + 1, Vec::new);
        }
        self.count[d] = c as u32;
        self.pos[d] = self.by_count[c].len() as u32;
        self.by_count[c].push(d as u32);
    }

    fn up(&mut self, d: usize) {
        let c = self.count[d] as usize;
        self.remove(d);
        self.insert(d, c + 1);
        while self.by_count[self.min].is_empty() {
            self.min += 1;
        }
    }

    fn down(&mut self, d: usize) {
        let c = self.count[d] as usize;
        self.remove(d);
        self.insert(d, c - 1);
        self.min = self.min.min(c - 1);
    }

    fn least(&self, rng: &mut Rng) -> usize {
        let list = &self.by_count[self.min];
        list[rng.below(list.len())] as usize
    }
}

/// Runs `s` with service times from `service`.
pub fn simulate(s: &Scenario, service: &Service) -> Outcome {
    let (dynos, workers) = (s.dynos.max(1), s.workers.max(1));
    let mut rng = Rng::new(s.seed);
    // Separate streams, so that a change of router does not change the arrivals or the
    // service times: the comparison between routers is then like for like.
    let mut arrivals = Rng::new(s.seed ^ 0x5eed_a771_0000_0001);
    let mut services = Rng::new(s.seed ^ 0x5eed_5e71_0000_0002);
    let mut free = vec![0.0f64; dynos * workers];
    let mut buckets = matches!(s.router, Router::LeastConn).then(|| Buckets::new(dynos));
    let mut leaving: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let skip = (s.requests as f64 * s.warmup) as usize;
    let mut waits: Vec<f32> = Vec::with_capacity(s.requests.saturating_sub(skip));
    let (mut t, mut sum, mut waited) = (0.0f64, 0.0f64, 0usize);
    let gap = 1.0 / s.rate;
    for i in 0..s.requests {
        t += arrivals.exp(gap);
        let d = match (&mut buckets, s.router) {
            (Some(b), _) => {
                // Requests that have left by now no longer count against their dyno.
                while let Some(&Reverse((end, dyno))) = leaving.peek() {
                    if f64::from_bits(end) > t {
                        break;
                    }
                    leaving.pop();
                    b.down(dyno as usize);
                }
                b.least(&mut rng)
            }
            (None, Router::RoundRobin) => i % dynos,
            (None, _) => rng.below(dynos),
        };
        let slots = &mut free[d * workers..(d + 1) * workers];
        let (k, &earliest) = slots
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("a worker");
        let start = t.max(earliest);
        let end = start + service.sample(&mut services);
        slots[k] = end;
        if let Some(b) = &mut buckets {
            b.up(d);
            // Positive floats order as their bits do.
            leaving.push(Reverse((end.to_bits(), d as u32)));
        }
        if i >= skip {
            let wait = start - t;
            sum += wait;
            waited += usize::from(wait > 0.0);
            waits.push(wait as f32);
        }
    }
    let counted = waits.len();
    Outcome {
        utilisation: s.rate * service.mean() / (dynos * workers) as f64,
        queue: [
            percentile(&mut waits, 0.50),
            percentile(&mut waits, 0.95),
            percentile(&mut waits, 0.99),
        ],
        queue_mean: if counted > 0 {
            sum / counted as f64
        } else {
            0.0
        },
        waited: if counted > 0 {
            waited as f64 / counted as f64
        } else {
            0.0
        },
        counted,
    }
}

/// The nearest-rank percentile (the same rank rule as the server's metric lines).
fn percentile(values: &mut [f32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, |a, b| a.total_cmp(b));
    f64::from(*v)
}
