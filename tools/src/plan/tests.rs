use super::service::{Rng, Service, normal_quantile, parse_time};
use super::sim::{Router, Scenario, simulate};
use super::*;

fn scenario(rate: f64, dynos: usize, workers: usize, router: Router) -> Scenario {
    Scenario {
        rate,
        dynos,
        workers,
        router,
        requests: 400_000,
        warmup: 1.0 / 6.0,
        seed: 7,
    }
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn the_normal_quantile_is_right() {
    assert!(close(normal_quantile(0.975), 1.959_964, 1e-6));
    assert!(close(normal_quantile(0.99), 2.326_348, 1e-6));
    assert!(normal_quantile(0.5).abs() < 1e-9);
    assert!(close(normal_quantile(0.001), -3.090_232, 1e-6));
}

#[test]
fn times_and_distributions_parse() {
    assert_eq!(parse_time("20ms"), Some(0.02));
    assert_eq!(parse_time("1.5s"), Some(1.5));
    assert_eq!(parse_time("250us"), Some(0.00025));
    assert_eq!(parse_time("7"), Some(0.007));
    assert_eq!(parse_time("-1ms"), None);
    assert_eq!(Service::parse("exp:20ms"), Some(Service::Exp(0.02)));
    assert_eq!(Service::parse("const:5"), Some(Service::Const(0.005)));
    assert_eq!(
        Service::parse("lognormal:20ms,0.5"),
        Some(Service::LogNormal {
            median: 0.02,
            sigma: 0.5
        })
    );
    assert!(
        matches!(Service::parse("p50=20ms,p99=120ms"), Some(Service::Percentiles(p)) if p.len() == 2)
    );
    for bad in [
        "p50=20ms",
        "p50=20ms,p99=10ms",
        "exp:0",
        "lognormal:20ms",
        "p100=1s,p50=1ms",
        "gamma:3",
    ] {
        assert_eq!(Service::parse(bad), None, "{bad}");
    }
    assert_eq!(parse_counts("10..12,4"), Some(vec![4, 10, 11, 12]));
    assert_eq!(parse_counts("0"), None);
    assert_eq!(parse_counts("5..1"), None);
}

#[test]
fn percentiles_are_honoured_point_for_point_and_lognormal_ones_give_the_lognormal() {
    let s = Service::parse("p50=20ms,p95=60ms,p99=200ms").unwrap();
    for (q, t) in [(0.5, 0.02), (0.95, 0.06), (0.99, 0.2)] {
        assert!(close(s.quantile(q), t, 1e-9), "{q}");
    }
    let ln = Service::LogNormal {
        median: 0.02,
        sigma: 0.6,
    };
    let from = Service::from_percentiles(vec![(0.5, ln.quantile(0.5)), (0.99, ln.quantile(0.99))])
        .unwrap();
    for q in [0.01, 0.2, 0.5, 0.9, 0.999] {
        assert!(close(from.quantile(q), ln.quantile(q), 1e-6), "{q}");
    }
    assert!(close(from.mean(), ln.mean(), 1e-3));
}

#[test]
fn draws_have_the_right_mean_and_repeat_with_the_seed() {
    let mut rng = Rng::new(3);
    let n = 200_000;
    let mean = (0..n)
        .map(|_| Service::Exp(0.02).sample(&mut rng))
        .sum::<f64>()
        / n as f64;
    assert!(close(mean, 0.02, 0.01), "{mean}");
    let draw = |seed| {
        let mut r = Rng::new(seed);
        (0..5).map(|_| r.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw(9), draw(9));
    assert_ne!(draw(9), draw(10));
}

#[test]
fn one_worker_with_exponential_service_is_the_textbook_m_m_1() {
    // rho = 0.5, mean service 10 ms: P(wait) = rho, mean wait = rho S / (1 - rho) = 10 ms,
    // P(wait > t) = rho exp(-(mu - lambda) t), so p99 = ln(rho / 0.01) / (mu - lambda).
    let o = simulate(&scenario(50.0, 1, 1, Router::Random), &Service::Exp(0.01));
    assert!(close(o.utilisation, 0.5, 1e-9));
    assert!(close(o.waited, 0.5, 0.02), "{o:?}");
    assert!(close(o.queue_mean, 0.010, 0.05), "{o:?}");
    assert!(close(o.queue[2], (50.0f64).ln() / 50.0, 0.05), "{o:?}");
    // Half the requests do not wait: the median is at the edge of zero.
    assert!(o.queue[0] < 0.001, "{o:?}");
}

#[test]
fn four_workers_match_erlang_c() {
    // M/M/4 at rho = 0.8: Erlang C gives P(wait) = 0.5964, mean wait = C / (c mu - lambda).
    let (c, rho, s) = (4usize, 0.8, 0.01);
    let a = rho * c as f64;
    let sum: f64 = (0..c)
        .map(|k| a.powi(k as i32) / (1..=k).product::<usize>() as f64)
        .sum();
    let last = a.powi(c as i32) / (1..=c).product::<usize>() as f64 / (1.0 - rho);
    let erlang_c = last / (sum + last);
    assert!(close(erlang_c, 0.5964, 1e-3));
    let o = simulate(
        &scenario(rho * c as f64 / s, 1, c, Router::Random),
        &Service::Exp(s),
    );
    assert!(close(o.waited, erlang_c, 0.03), "{o:?}");
    let mean_wait = erlang_c / (c as f64 / s - rho * c as f64 / s);
    assert!(close(o.queue_mean, mean_wait, 0.06), "{o:?} vs {mean_wait}");
}

#[test]
fn a_constant_service_time_halves_the_mean_wait_as_pollaczek_khinchine_says() {
    // M/D/1: mean wait = rho S / (2 (1 - rho)).
    let o = simulate(&scenario(70.0, 1, 1, Router::Random), &Service::Const(0.01));
    let want = 0.7 * 0.01 / (2.0 * 0.3);
    assert!(close(o.queue_mean, want, 0.06), "{o:?} vs {want}");
}

#[test]
fn random_routing_to_single_worker_dynos_is_many_m_m_1_queues_and_leastconn_is_better() {
    let svc = Service::Exp(0.01);
    let random = simulate(&scenario(50.0 * 20.0, 20, 1, Router::Random), &svc);
    assert!(close(random.waited, 0.5, 0.03), "{random:?}");
    assert!(close(random.queue_mean, 0.010, 0.08), "{random:?}");
    let least = simulate(&scenario(50.0 * 20.0, 20, 1, Router::LeastConn), &svc);
    let robin = simulate(&scenario(50.0 * 20.0, 20, 1, Router::RoundRobin), &svc);
    assert!(
        least.queue[2] < robin.queue[2] && robin.queue[2] < random.queue[2],
        "{least:?} {robin:?} {random:?}"
    );
    // Least connections over 20 one-worker dynos is nearly one queue with 20 workers.
    assert!(least.waited < 0.2, "{least:?}");
}

#[test]
fn the_simulation_repeats_with_its_seed() {
    let svc = Service::parse("p50=20ms,p95=60ms,p99=200ms").unwrap();
    let a = simulate(&scenario(300.0, 3, 4, Router::LeastConn), &svc);
    let b = simulate(&scenario(300.0, 3, 4, Router::LeastConn), &svc);
    assert_eq!(a, b);
}

#[test]
fn the_plan_finds_the_fewest_dynos_that_meet_the_target() {
    let s = Settings {
        rate: Some(200.0),
        service: Some(Service::Exp(0.02)),
        lines: None,
        router: Router::Random,
        dyno: DYNO_SIZES[0],
        dyno_given: false,
        worker_mb: Some(60.0),
        base_mb: Some(30.0),
        headroom: 0.2,
        dynos: None,
        workers: None,
        target: Some(0.005),
        requests: Some(100_000),
        seed: 1,
        transit: 0.0,
        chart: None,
    };
    let mut plan = build(&s, None).unwrap();
    assert_eq!(plan.max_workers(), Some(6));
    plan.explore(4);
    let best = plan.cheapest().expect("met").clone();
    assert_eq!(best.workers, 4);
    // One dyno fewer does not meet it.
    let fewer = plan.row(best.dynos - 1, 4);
    assert!(!fewer.meets(0.005), "{fewer:?} vs {best:?}");
    let report = plan.report();
    assert!(
        report.contains(&format!(
            "cheapest meeting queue p99 <= 5.00 ms: {} dynos x 4 workers",
            best.dynos
        )),
        "{report}"
    );
    assert!(plan.row(1, 8).fits == Some(false));
}

#[test]
fn runicorn_lines_give_the_service_time_the_rate_and_the_memory() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/runicorn/idle-20mb-table.log"
    ))
    .unwrap();
    let l = from_lines(&text);
    let [p50, _, p99] = l.service.expect("service percentiles");
    assert!(p50 > 0.0 && p99 >= p50, "{l:?}");
    assert!(l.rate.is_some_and(|r| r > 0.0), "{l:?}");
    assert_eq!(l.dynos, 1);
    assert_eq!(l.quota_mb, Some(512.0));
    let (base, per) = l.memory.expect("memory");
    assert!(base > 20.0 && per > 0.0, "{l:?}");
}

#[test]
fn the_transit_is_added_to_every_queue_time() {
    let mut s = Settings {
        rate: Some(100.0),
        service: Some(Service::Exp(0.02)),
        lines: None,
        router: Router::Random,
        dyno: DYNO_SIZES[0],
        dyno_given: false,
        worker_mb: None,
        base_mb: None,
        headroom: 0.2,
        dynos: None,
        workers: None,
        target: None,
        requests: Some(50_000),
        seed: 1,
        transit: 0.0,
        chart: None,
    };
    let without = build(&s, None).unwrap().row(2, 2).outcome.unwrap();
    s.transit = 0.0003;
    let with = build(&s, None).unwrap().row(2, 2).outcome.unwrap();
    for i in 0..3 {
        assert!((with.queue[i] - without.queue[i] - 0.0003).abs() < 1e-9);
    }
    assert_eq!(with.waited, without.waited);
}

#[test]
fn a_measured_mean_moves_the_percentiles_to_it() {
    let s = Service::parse("p50=13.824ms,p95=59.392ms,p99=94.208ms,mean=20.4ms").unwrap();
    assert!(close(s.mean(), 0.0204, 1e-3), "{}", s.mean());
    assert!(matches!(s, Service::Shifted(..)));
    assert!(
        s.describe().contains("to the measured mean 20.4 ms"),
        "{}",
        s.describe()
    );
    assert!(Service::parse("p50=10ms,p99=50ms,mean=0").is_none());
}
