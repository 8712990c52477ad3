//! The pure parts of `tune`: flags, worker counts, the table, the advice, the chart.

use super::*;
use crate::load::Failure;
use runicorn::internals::advice::ProcessMemory;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn settings(list: &[&str]) -> Settings {
    match parse_flags(&args(list), 2, Some(DEMO_PATH)) {
        Ok(Parsed::Run(s)) => *s,
        Ok(Parsed::Help) => panic!("help"),
        Err(e) => panic!("{e}"),
    }
}

fn error(list: &[&str]) -> String {
    match parse_flags(&args(list), 2, Some(DEMO_PATH)) {
        Err(e) => e,
        Ok(_) => panic!("{list:?} accepted"),
    }
}

#[test]
fn defaults() {
    let s = settings(&[]);
    assert_eq!(s.counts, vec![1, 2, 3, 4]);
    assert_eq!(s.path, DEMO_PATH);
    assert_eq!(s.duration, Duration::from_secs(5));
    assert_eq!(s.warmup, Duration::from_millis(500));
    assert_eq!(s.chart, PathBuf::from("tune.svg"));
    assert_eq!((s.cpus, s.headroom), (2.0, 0.2));
    assert_eq!((s.app, s.dyno, s.concurrency), (None, None, None));
    assert_eq!(default_max_workers(8), 16);
}

#[test]
fn flags() {
    let s = settings(&[
        "--max-workers",
        "6",
        "--duration",
        "2",
        "--path=/sleep?ms=20",
        "--concurrency",
        "8",
        "--dyno",
        "standard-2x",
        "--chart",
        "out.svg",
        "--cpus",
        "4",
        "--headroom",
        "15",
        "--warmup",
        "0",
        "--timeout",
        "3",
        "--",
        "/bin/app",
        "--keepalive",
        "5",
        "--log-level=debug",
    ]);
    assert_eq!(s.counts, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(s.duration, Duration::from_secs(2));
    assert_eq!(s.path, "/sleep?ms=20");
    assert_eq!(s.concurrency, Some(8));
    assert_eq!(s.dyno.map(|d| d.quota_mb), Some(1024.0));
    assert_eq!(s.chart, PathBuf::from("out.svg"));
    assert_eq!(s.app, Some(PathBuf::from("/bin/app")));
    assert_eq!((s.cpus, s.headroom), (4.0, 0.15));
    assert_eq!(s.warmup, Duration::ZERO);
    assert_eq!(s.request_timeout, Duration::from_secs(3));
    assert_eq!(s.app_args, args(&["--keepalive", "5", "--log-level=debug"]));
    assert_eq!(
        settings(&["--min-workers", "2", "--max-workers", "9", "--step", "3"]).counts,
        vec![2, 5, 8, 9]
    );
    assert_eq!(settings(&["--workers", "8,1, 2,2"]).counts, vec![1, 2, 8]);
    // Flags after -- go to this binary, which keeps its own route.
    let own = settings(&["--", "--keepalive", "5"]);
    assert_eq!((own.app, own.path.as_str()), (None, DEMO_PATH));
    assert_eq!(own.app_args, args(&["--keepalive", "5"]));
    assert!(matches!(
        parse_flags(&args(&["--help"]), 2, Some(DEMO_PATH)),
        Ok(Parsed::Help)
    ));
}

#[test]
fn a_named_app_or_a_binary_without_a_route_needs_path() {
    let needs = "--path is required: the request target to load, e.g. --path / \
                 (an app gets no default route)";
    assert_eq!(error(&["--", "./myapp"]), needs);
    match parse_flags(&args(&[]), 2, None) {
        Err(e) => assert_eq!(e, needs),
        Ok(_) => panic!("no route accepted"),
    }
    let s = settings(&["--path", "/", "--", "./myapp", "--keepalive", "5"]);
    assert_eq!(s.app, Some(PathBuf::from("./myapp")));
    assert_eq!(
        (s.path.as_str(), s.app_args),
        ("/", args(&["--keepalive", "5"]))
    );
}

#[test]
fn bad_flags_say_which_and_what_they_accept() {
    assert_eq!(
        error(&["--bogus"]),
        format!("unknown flag '--bogus'; accepted: {FLAGS}")
    );
    assert_eq!(
        error(&["--max-workers", "0"]),
        "--max-workers: invalid value '0': accepts a number of workers from 1 to 1024"
    );
    assert_eq!(
        error(&["--max-workers", "2000"]),
        "--max-workers: invalid value '2000': accepts a number of workers from 1 to 1024"
    );
    assert_eq!(
        error(&["--duration", "0"]),
        "--duration: invalid value '0': accepts a number of seconds up to 3600"
    );
    assert_eq!(
        error(&["--duration", "x"]),
        "--duration: invalid value 'x': accepts a number of seconds up to 3600"
    );
    assert_eq!(
        error(&["--dyno", "huge"]),
        "--dyno: invalid value 'huge': accepts standard-1x, standard-2x, performance-m, performance-l, or a number of MB"
    );
    assert_eq!(
        error(&["--workers", "1,x"]),
        "--workers: invalid value '1,x': accepts a comma-separated list of worker counts from 1 to 1024"
    );
    assert_eq!(
        error(&["--path", "work"]),
        "--path: invalid value 'work': accepts a request target starting with '/', without spaces"
    );
    assert_eq!(
        error(&["--concurrency", "0"]),
        "--concurrency: invalid value '0': accepts a number from 1 to 1024"
    );
    assert_eq!(
        error(&["--min-workers", "5", "--max-workers", "3"]),
        "--min-workers 5 is above --max-workers 3"
    );
    assert_eq!(
        error(&["--step"]),
        "--step needs a value; accepts a number from 1 up"
    );
    assert_eq!(
        error(&["extra"]),
        "unexpected argument 'extra' (app arguments go after --)"
    );
}

fn trial(workers: usize, rps: f64, p99: f64, cores: f64) -> Trial {
    Trial {
        workers,
        sent: (rps * 2.0) as u64,
        ok: (rps * 2.0) as u64,
        elapsed: Duration::from_secs(2),
        req_per_sec: rps,
        p50_ms: Some(p99 / 2.0),
        p95_ms: Some(p99 * 0.9),
        p99_ms: Some(p99),
        total_pss_mb: 0.5 + 0.3 * workers as f64,
        worker_uss_mb: 0.12,
        master: ProcessMemory {
            pss_mb: 0.45,
            uss_mb: 0.14,
            ..ProcessMemory::default()
        },
        worker_memory: vec![
            ProcessMemory {
                pss_mb: 0.3,
                uss_mb: 0.12,
                ..ProcessMemory::default()
            };
            workers
        ],
        cpu_cores: Some(cores),
        ..Trial::default()
    }
}

fn sample_trials() -> Vec<Trial> {
    vec![
        trial(1, 190.0, 6.0, 0.97),
        trial(2, 370.0, 8.0, 1.85),
        trial(3, 380.0, 30.0, 1.9),
        trial(4, 375.0, 45.0, 1.9),
    ]
}

#[test]
fn table_rows_and_notes() {
    let mut trials = sample_trials();
    trials[3].oom_kills = 1;
    trials[3].respawned = 1;
    trials[3].failures.insert(Failure::Reset, 3);
    trials[3].cgroup_peak_mb = Some(3.25);
    let t = render_table(&trials, true);
    assert!(t.contains("workers     req/s   p50 ms   p95 ms   p99 ms  errors   PSS MB   USS MB  CPUs  dyno MB  notes"), "{t}");
    assert!(t.contains("      1     190.0     3.00     5.40     6.00       0     0.80     0.12  0.97        -\n"), "{t}");
    assert!(t.contains("      4     375.0    22.50    40.50    45.00       3     1.70     0.12  1.90     3.25  1 killed, perhaps out of memory; 1 respawned; reset 3"), "{t}");
    assert!(t.contains("dyno MB: the cgroup's peak"));
    assert!(!render_table(&trials, false).contains("dyno MB"));
}

#[test]
fn cpu_share_from_the_trials_that_fit_the_cpus() {
    let trials = sample_trials();
    // 1 worker: 0.97 of a CPU; 2 workers: 0.925 each; 3 and 4 outnumber the 2 CPUs.
    let f = estimate_on_cpu(&trials, 8, 2.0).unwrap();
    assert!((f - 0.97).abs() < 1e-9, "{f}");
    // Clients fewer than workers: those trials do not count.
    assert_eq!(estimate_on_cpu(&trials, 0, 2.0), None);
    // More than 1 is read as 1.
    assert_eq!(
        estimate_on_cpu(&[trial(1, 1.0, 1.0, 1.3)], 8, 2.0),
        Some(1.0)
    );
    let mut none = trial(1, 1.0, 1.0, 1.0);
    none.cpu_cores = None;
    assert_eq!(estimate_on_cpu(&[none], 8, 2.0), None);
}

#[test]
fn advice_per_dyno_size_and_for_this_run() {
    let trials = sample_trials();
    let quota = Quota {
        mb: 512.0,
        what: "--dyno standard-1x (a child memory cgroup)".into(),
    };
    let text = render_advice(&trials, 8, 0.2, 2.0, Some(0.97), Some(&quota));
    // The base: 0.45 + 4 × 0.18 = 1.17 MB of pages and the master's estimated kernel
    // memory, 0.15 MB; a worker: its 0.12 MB of USS and as much kernel memory.
    assert!(text.contains("memory from the 4-worker trial: 1.32 MB + 0.27 MB a worker, 20 % headroom; 2 CPUs at 97 % on CPU keep 2 workers busy"), "{text}");
    assert!(text.contains("(a worker: USS 0.12 MB + kernel 0.15 MB: page tables 0.09 MB estimated, other kernel memory 0.06 MB estimated)"), "{text}");
    for size in [
        "standard-1x",
        "standard-2x",
        "performance-m",
        "performance-l",
    ] {
        assert!(text.contains(&format!("  {size:<15}")), "{size}: {text}");
    }
    assert!(
        text.contains(
            "WEB_CONCURRENCY=2     (CPU: 2 keep 2 CPUs busy at 97 % on CPU; memory allows 1499)"
        ),
        "{text}"
    );
    assert!(text.contains("  this run           512 MB  WEB_CONCURRENCY=2     (CPU: 2 keep 2 CPUs busy at 97 % on CPU; memory allows 1499; --dyno standard-1x (a child memory cgroup))"), "{text}");
    assert!(
        text.contains("bounds only: tune's load is its own"),
        "{text}"
    );
    assert!(text.contains("the most throughput was 380.0 req/s at 3 workers; 2 workers reach 95 % of it (p99 8.00 ms)"), "{text}");
    // Without a CPU figure, memory and the process limits decide; without a quota, say so.
    let text = render_advice(&trials, 8, 0.2, 2.0, None, None);
    assert!(
        text.contains("2 CPUs; CPU share not measured, so the CPUs do not bound it"),
        "{text}"
    );
    assert!(
        text.contains("standard-1x        512 MB  WEB_CONCURRENCY=230   (the process limit: 256 processes and threads, less 26 for the master and a margin, leave room for 230; memory allows 1499)"),
        "{text}"
    );
    assert!(
        text.contains("performance-m     2560 MB  WEB_CONCURRENCY=1024  (the most a server runs; memory allows 7515)"),
        "{text}"
    );
    assert!(text.contains("this run: no memory limit"));
    assert!(!text.contains("still rising"), "{text}");
    // Still rising at the largest count; then bound by the connections; I/O-bound.
    let rising = [trial(1, 100.0, 5.0, 0.05), trial(2, 200.0, 5.0, 0.1)];
    let text = render_advice(&rising, 8, 0.2, 2.0, Some(0.005), None);
    assert!(
        text.contains("Throughput was still rising at 2 workers"),
        "{text}"
    );
    assert!(
        text.contains("I/O-bound requests: the useful count"),
        "{text}"
    );
    // Half a percent on CPU: the CPU count does not bound it, and says so.
    assert!(
        text.contains("requests were 0.5 % on CPU: the CPU count does not bound the advice"),
        "{text}"
    );
    let text = render_advice(&rising, 2, 0.2, 2.0, Some(0.005), None);
    assert!(
        text.contains("With 2 connections no more than 2 workers are busy at once"),
        "{text}"
    );
    // No worker memory at all.
    let mut bare = trial(1, 1.0, 1.0, 1.0);
    bare.worker_memory.clear();
    assert!(render_advice(&[bare], 8, 0.2, 2.0, None, None).contains("No advice"));
}

#[test]
fn chart_has_three_panels_against_workers() {
    let trials = sample_trials();
    let c = tune_chart(&trials, "t", None);
    assert_eq!(c.x_label, "workers");
    let names: Vec<Vec<&str>> = c
        .panels
        .iter()
        .map(|p| p.series.iter().map(|s| s.name.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        vec![
            vec!["req/s"],
            vec!["p50", "p95", "p99"],
            vec!["total PSS", "largest worker USS"]
        ]
    );
    assert_eq!(
        c.panels[0].series[0].points,
        vec![(1.0, 190.0), (2.0, 370.0), (3.0, 380.0), (4.0, 375.0)]
    );
    // A quota far above the memory is left out; a near one is drawn.
    let far = Quota {
        mb: 512.0,
        what: String::new(),
    };
    assert_eq!(
        tune_chart(&trials, "t", Some(&far)).panels[2].series.len(),
        2
    );
    let near = Quota {
        mb: 4.0,
        what: String::new(),
    };
    let c = tune_chart(&trials, "t", Some(&near));
    assert_eq!(
        c.panels[2].series.last().map(|s| s.name.as_str()),
        Some("quota 4 MB")
    );
    let svg = chart::render(&c);
    assert!(svg.contains("<polyline") && svg.contains(">throughput (req/s)<"));
}

#[test]
fn progress_lines() {
    let d = Duration::from_secs(2);
    assert_eq!(
        progress_line(0, 4, 1, Phase::Starting, d),
        "[------------------------] 1/4  1 worker  starting"
    );
    assert_eq!(
        progress_line(
            1,
            4,
            2,
            Phase::Measuring {
                elapsed: Duration::from_secs(1),
                ok: 812
            },
            d
        ),
        "[#########---------------] 2/4  2 workers  measuring 1.0/2.0 s  812 ok"
    );
    assert_eq!(
        progress_line(3, 4, 4, Phase::Stopping, d),
        "[########################] 4/4  4 workers  stopping"
    );
}

#[test]
fn failed_trials_give_no_advice_and_say_why() {
    let mut t = trial(1, 0.0, 1.0, 0.1);
    t.ok = 0;
    t.sent = 23_147;
    t.failures.insert(Failure::Status4xx, 23_147);
    let why = unusable(&t, "GET", "/work?ms=5").unwrap();
    assert!(
        why.contains("23147 of 23147 requests to GET /work?ms=5 were answered 4xx"),
        "{why}"
    );
    assert!(why.contains("no advice"), "{why}");
    let mut refused = trial(2, 0.0, 1.0, 0.1);
    refused.ok = 0;
    refused.failures.insert(Failure::Refused, 40);
    let why = unusable(&refused, "POST", "/x").unwrap();
    assert!(
        why.starts_with("no request to POST /x succeeded at 2 workers (40 refused)"),
        "{why}"
    );
    // Some failures under load (a worker killed out of memory) still give figures.
    let mut some = trial(2, 100.0, 1.0, 0.5);
    some.failures.insert(Failure::Reset, 3);
    assert_eq!(unusable(&some, "GET", "/"), None);
}

#[test]
fn the_limits_of_the_measurement_are_said() {
    let with_cpu = |workers, rps, cores, client| Trial {
        client_cpu_cores: Some(client),
        ..trial(workers, rps, 1.0, cores)
    };
    // The machine's 2 CPUs are all busy, half of it the load client's.
    let busy = [
        with_cpu(1, 9000.0, 0.9, 0.6),
        with_cpu(2, 12000.0, 1.1, 0.9),
    ];
    let note = limits_note(&busy, 4, 2.0).unwrap();
    assert!(
        note.contains("2 CPUs were all in use, 0.9 of them by the load client"),
        "{note}"
    );
    // Flat throughput with CPU to spare and too few connections.
    let flat = [with_cpu(1, 500.0, 0.3, 0.1), with_cpu(2, 505.0, 0.3, 0.1)];
    let note = limits_note(&flat, 2, 4.0).unwrap();
    assert!(note.contains("the limit was the 2 connections"), "{note}");
    // The same with enough connections: the requests wait on something.
    let note = limits_note(&flat, 8, 4.0).unwrap();
    assert!(note.contains("something the requests wait on"), "{note}");
    // Rising throughput, CPU used: nothing to say.
    let fine = [with_cpu(1, 500.0, 0.9, 0.1), with_cpu(2, 990.0, 1.8, 0.1)];
    assert_eq!(limits_note(&fine, 4, 4.0), None);
}

#[test]
fn the_request_can_be_any_method_with_headers_and_a_body() {
    let s = settings(&[
        "--path",
        "/x",
        "--method",
        "POST",
        "--header",
        "Content-Type: application/json",
        "--header=X-A:1",
        "--body",
        "{\"a\":1}",
        "--",
        "./myapp",
    ]);
    assert_eq!(s.method, "POST");
    assert_eq!(
        s.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-A".to_string(), "1".to_string())
        ]
    );
    assert_eq!(s.body, b"{\"a\":1}");
    assert_eq!(settings(&[]).method, "GET");
    assert!(error(&["--method", "PO ST"]).starts_with("--method: invalid value"));
    assert!(error(&["--header", "no colon"]).starts_with("--header: invalid value"));
    assert_eq!(
        error(&["--body", "a", "--body-file", "/dev/null"]),
        "--body-file and --body exclude each other"
    );
    assert!(error(&["--body-file", "/nonexistent/body"]).starts_with("--body-file: cannot read"));
}
