//! Rendering: families, types, units, labels and histogram buckets, with fixed figures.

use std::time::Duration;

use super::*;
use crate::procfs::test_memory as mem;

fn workers(n: usize) -> Vec<WorkerSample> {
    (0..n)
        .map(|slot| WorkerSample {
            slot,
            pid: 4242 + slot as i32,
            memory: Some(mem(5222, 1228, 921)),
            tasks: None,
            requests: 1234,
            age: Duration::from_secs(61),
        })
        .collect()
}

use crate::scoreboard::test_counters as counters;

fn ends() -> WorkerEnds {
    let mut e = WorkerEnds::default();
    e.count(WorkerEnd::MaxRequests);
    e.count(WorkerEnd::MaxRequests);
    e.count(WorkerEnd::Failed);
    e
}

fn master() -> MasterSample {
    MasterSample {
        pid: 4241,
        memory: mem(3072, 1024, 512),
        tasks: None,
    }
}

/// A snapshot of a server with no master figures, no backlog and nothing counted but
/// `requests`.
fn bare<'a>(
    version: &'a str,
    workers: &'a [WorkerSample],
    requests: &'a Counters,
    ends: &'a WorkerEnds,
) -> Snapshot<'a> {
    Snapshot {
        version,
        start_time_us: 0,
        master: None,
        workers,
        processes: workers.len(),
        states: WorkerStates::default(),
        in_flight: 0,
        backlog: None,
        requests,
        ends,
        request_timeouts: 0,
        boot_timeouts: 0,
        boot_failures: 0,
    }
}

fn page(workers: &[WorkerSample], c: &Counters) -> String {
    let master = master();
    let ends = ends();
    render(&Snapshot {
        version: "0.1.0",
        start_time_us: 1_700_000_000_250_000,
        master: Some(&master),
        workers,
        processes: workers.len(),
        states: WorkerStates {
            booting: 0,
            idle: 1,
            busy: 1,
            stopping: 0,
        },
        in_flight: 1,
        backlog: Some(ListenQueue {
            depth: 3,
            limit: 1024,
        }),
        requests: c,
        ends: &ends,
        request_timeouts: 2,
        boot_timeouts: 1,
        boot_failures: 4,
    })
}

/// The families of a page, in order, with their type; checks the grammar on the way: HELP
/// then TYPE once per family, every sample under its family (a histogram's under
/// `_bucket`, `_sum`, `_count`), valid names, a number for every value.
fn families(page: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut help: Option<String> = None;
    let name_ok = |n: &str| {
        n.starts_with("runicorn_") && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    assert!(page.ends_with('\n'));
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap();
            assert!(!text.is_empty(), "{line}");
            assert!(
                help.replace(name.to_string()).is_none(),
                "two HELPs: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(
                help.take().as_deref(),
                Some(name),
                "TYPE without HELP: {line}"
            );
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(name_ok(name), "{line}");
            assert!(!out.iter().any(|(n, _)| n == name), "twice: {name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            out.push((name.to_string(), kind.to_string()));
        } else {
            let (family, kind) = out.last().expect("a sample before any TYPE");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")),
                _ => name == family,
            };
            assert!(ok, "{line} under {family}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    out
}

#[test]
fn every_family_has_help_type_and_its_samples() {
    let c = counters();
    let page = page(&workers(2), &c);
    let families = families(&page);
    let kinds: Vec<(&str, &str)> = families
        .iter()
        .map(|(n, k)| (n.as_str(), k.as_str()))
        .collect();
    for want in [
        ("runicorn_build_info", "gauge"),
        ("runicorn_start_time_seconds", "gauge"),
        ("runicorn_requests_total", "counter"),
        ("runicorn_request_duration_seconds", "histogram"),
        ("runicorn_request_queue_seconds", "histogram"),
        ("runicorn_requests_in_flight", "gauge"),
        ("runicorn_workers", "gauge"),
        ("runicorn_worker_processes", "gauge"),
        ("runicorn_listen_backlog", "gauge"),
        ("runicorn_listen_backlog_limit", "gauge"),
        ("runicorn_worker_exits_total", "counter"),
        ("runicorn_worker_timeouts_total", "counter"),
        ("runicorn_worker_boot_failures_total", "counter"),
        ("runicorn_worker_requests_total", "counter"),
        ("runicorn_worker_memory_rss_bytes", "gauge"),
        ("runicorn_worker_memory_pss_bytes", "gauge"),
        ("runicorn_worker_memory_uss_bytes", "gauge"),
        ("runicorn_worker_memory_swap_bytes", "gauge"),
        ("runicorn_master_memory_rss_bytes", "gauge"),
        ("runicorn_master_memory_pss_bytes", "gauge"),
        ("runicorn_master_memory_uss_bytes", "gauge"),
        ("runicorn_master_memory_swap_bytes", "gauge"),
    ] {
        assert!(kinds.contains(&want), "{want:?} not in {kinds:?}");
    }
    assert_eq!(kinds.len(), 22, "{kinds:?}");
}

#[test]
fn the_figures_their_labels_and_units() {
    let c = counters();
    let page = page(&workers(2), &c);
    for want in [
        "runicorn_build_info{version=\"0.1.0\"} 1",
        "runicorn_start_time_seconds 1700000000.25",
        "runicorn_requests_total{status_class=\"1xx\"} 0",
        "runicorn_requests_total{status_class=\"2xx\"} 3",
        "runicorn_requests_total{status_class=\"4xx\"} 1",
        "runicorn_requests_total{status_class=\"5xx\"} 0",
        "runicorn_request_duration_seconds_bucket{le=\"+Inf\"} 4",
        "runicorn_request_duration_seconds_sum 0.206",
        "runicorn_request_duration_seconds_count 4",
        "runicorn_request_queue_seconds_bucket{le=\"+Inf\"} 0",
        "runicorn_request_queue_seconds_sum 0",
        "runicorn_request_queue_seconds_count 0",
        "runicorn_requests_in_flight 1",
        "runicorn_workers{state=\"idle\"} 1",
        "runicorn_workers{state=\"busy\"} 1",
        "runicorn_workers{state=\"booting\"} 0",
        "runicorn_workers{state=\"stopping\"} 0",
        "runicorn_worker_processes 2",
        "runicorn_listen_backlog 3",
        "runicorn_listen_backlog_limit 1024",
        "runicorn_worker_exits_total{reason=\"max_requests\"} 2",
        "runicorn_worker_exits_total{reason=\"failed\"} 1",
        "runicorn_worker_exits_total{reason=\"timeout\"} 0",
        "runicorn_worker_exits_total{reason=\"memory\"} 0",
        "runicorn_worker_exits_total{reason=\"stopped\"} 0",
        "runicorn_worker_exits_total{reason=\"exited\"} 0",
        "runicorn_worker_timeouts_total{kind=\"request\"} 2",
        "runicorn_worker_timeouts_total{kind=\"boot\"} 1",
        "runicorn_worker_boot_failures_total 4",
        "runicorn_worker_requests_total{worker=\"1\",pid=\"4243\"} 1234",
        "runicorn_worker_memory_rss_bytes{worker=\"0\",pid=\"4242\"} 5347328",
        "runicorn_worker_memory_pss_bytes{worker=\"1\",pid=\"4243\"} 1257472",
        "runicorn_worker_memory_uss_bytes{worker=\"0\",pid=\"4242\"} 943104",
        "runicorn_worker_memory_swap_bytes{worker=\"0\",pid=\"4242\"} 0",
        "runicorn_master_memory_rss_bytes{pid=\"4241\"} 3145728",
        "runicorn_master_memory_uss_bytes{pid=\"4241\"} 524288",
    ] {
        assert!(page.lines().any(|l| l == want), "{want} not in\n{page}");
    }
}

#[test]
fn absent_figures_are_absent() {
    let c = Counters::default();
    let mut w = workers(2);
    w[1].memory = None;
    let ends = WorkerEnds::default();
    let page = render(&bare("0.1.0", &w, &c, &ends));
    families(&page);
    assert!(!page.contains("runicorn_listen_backlog"), "{page}");
    assert!(
        !page.contains("runicorn_master_memory_rss_bytes{"),
        "{page}"
    );
    // The family is still declared, with no sample: the scrape says what it would carry.
    assert!(page.contains("# TYPE runicorn_master_memory_rss_bytes gauge"));
    assert!(page.contains("runicorn_worker_memory_rss_bytes{worker=\"0\""));
    assert!(!page.contains("runicorn_worker_memory_rss_bytes{worker=\"1\""));
    // A worker whose memory could not be read still has its request count.
    assert!(page.contains("runicorn_worker_requests_total{worker=\"1\""));
    // Counters are there at 0, so that rate() has a start.
    assert!(page.contains("runicorn_requests_total{status_class=\"5xx\"} 0"));
}

#[test]
fn bucket_bounds_are_edges_of_the_scoreboard_buckets() {
    for b in BOUNDS_US {
        let i = LAYOUT.index(b);
        assert_eq!(LAYOUT.lower(i), b, "{b} starts a bucket");
        assert_eq!(
            LAYOUT.upper(i - 1),
            b - 1,
            "{b}: the bucket before ends below it"
        );
    }
    assert_eq!(BOUNDS_US[0], 8);
    assert_eq!(*BOUNDS_US.last().unwrap(), 1 << 27);
    assert!(BOUNDS_US.windows(2).all(|w| w[1] == 2 * w[0]));
}

/// The cumulative counts, from values on either side of the bounds.
#[test]
fn buckets_count_the_times_below_each_bound() {
    let mut c = Counters::default();
    let values = [
        0,
        7,
        8,
        15,
        16,
        1023,
        1024,
        1025,
        (1 << 27) - 1,
        1 << 27,
        1 << 40,
    ];
    for v in values {
        c.service.record(v);
        c.service_sum_us += v;
    }
    let page = page(&workers(1), &c);
    let bucket = |le: &str| -> u64 {
        let key = format!("runicorn_request_duration_seconds_bucket{{le=\"{le}\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key}"))
            .parse()
            .unwrap()
    };
    for (le, b) in BOUNDS_US.iter().map(|&b| (Secs(b).to_string(), b)) {
        let want = values.iter().filter(|&&v| v < b).count() as u64;
        assert_eq!(bucket(&le), want, "le={le}");
    }
    assert_eq!(bucket("0.000008"), 2);
    assert_eq!(bucket("0.000016"), 4);
    assert_eq!(bucket("0.001024"), 6);
    assert_eq!(bucket("0.002048"), 8);
    assert_eq!(bucket("134.217728"), 9);
    assert_eq!(bucket("+Inf"), values.len() as u64);
    let sum: u64 = values.iter().sum();
    assert!(page.contains(&format!(
        "runicorn_request_duration_seconds_sum {}\n",
        Secs(sum)
    )));
}

#[test]
fn seconds_are_written_exactly() {
    for (us, want) in [
        (0, "0"),
        (8, "0.000008"),
        (1_048_576, "1.048576"),
        (134_217_728, "134.217728"),
        (3_000_000, "3"),
        (1_500_000, "1.5"),
        (u64::MAX, "18446744073709.551615"),
    ] {
        assert_eq!(Secs(us).to_string(), want);
    }
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape_label("0.1.0"), "0.1.0");
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    let c = Counters::default();
    let ends = WorkerEnds::default();
    let page = render(&bare("1.0\"\n\\", &[], &c, &ends));
    assert!(page.contains("runicorn_build_info{version=\"1.0\\\"\\n\\\\\"} 1\n"));
    families(&page);
}

/// Every family is in docs/metrics.md's Prometheus table.
#[test]
fn every_family_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let c = counters();
    for (name, kind) in families(&page(&workers(1), &c)) {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/metrics.md does not list `{name}` ({kind})"
        );
    }
}
