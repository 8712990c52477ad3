//! Rendering: names, types, units, prefix, tags and datagram packing, with fixed figures.

use std::time::Duration;

use super::*;
use crate::metrics::cgroup::{CgroupMemory, CgroupVersion};
use crate::metrics::sample::{
    DynoMemory, Identity, MasterSample, RequestStats, WorkerEnd, WorkerEnds, WorkerSample,
};
use crate::metrics::tcp::ListenQueue;
use crate::procfs::ProcTasks;

use crate::procfs::test_memory as mem;

fn sample(workers: usize) -> Sample {
    let c = crate::scoreboard::test_counters();
    Sample {
        load: [0.05, 0.02, 0.0],
        dyno: DynoMemory::from_cgroup(
            CgroupMemory {
                rss_bytes: 20 << 20,
                cache_bytes: 1 << 20,
                swap_bytes: 0,
                pgpgin_pages: Some(348_836),
                pgpgout_pages: None,
                quota_bytes: Some(512 << 20),
            },
            CgroupVersion::V1,
        ),
        master: Some(MasterSample {
            pid: 4241,
            memory: mem(3072, 1024, 512),
            tasks: Some(ProcTasks {
                page_tables_kib: Some(100),
                threads: Some(1),
            }),
        }),
        worker_count: workers,
        workers: (0..workers)
            .map(|slot| WorkerSample {
                slot,
                pid: 4242 + slot as i32,
                memory: Some(mem(5222, 1228, 921)),
                tasks: None,
                requests: 1234,
                age: Duration::from_secs(61),
            })
            .collect(),
        requests: RequestStats {
            counters: c,
            backlog: Some(ListenQueue {
                depth: 3,
                limit: 1024,
            }),
            busy: 1,
            idle: 1,
            in_flight: 1,
        },
        ends: {
            let mut ends = WorkerEnds::default();
            ends.count(WorkerEnd::Stopped);
            ends.count(WorkerEnd::Timeout);
            ends
        },
    }
}

fn plain() -> Format {
    Format::new("", &[])
}

#[test]
fn every_figure_has_its_name_type_and_unit() {
    let lines = lines(&sample(1), &plain());
    for want in [
        "runicorn.load_avg_1m:0.05|g",
        "runicorn.load_avg_15m:0.00|g",
        "runicorn.memory_total:22020096|g",
        "runicorn.memory_rss:20971520|g",
        "runicorn.memory_cache:1048576|g",
        "runicorn.memory_swap:0|g",
        "runicorn.memory_pgpgin:348836|g",
        "runicorn.memory_quota:536870912|g",
        "runicorn.master.memory_rss:3145728|g",
        "runicorn.master.memory_uss:524288|g",
        "runicorn.master.memory_pte:102400|g",
        "runicorn.master.threads:1|g",
        "runicorn.workers:1|g",
        "runicorn.worker.0.memory_rss:5347328|g",
        "runicorn.worker.0.memory_pss:1257472|g",
        "runicorn.worker.0.memory_uss:943104|g",
        "runicorn.worker.0.memory_swap:0|g",
        "runicorn.worker.0.requests:1234|g",
        "runicorn.worker.0.age:61|g",
        "runicorn.requests:4|c",
        "runicorn.requests_1xx:0|c",
        "runicorn.requests_2xx:3|c",
        "runicorn.requests_4xx:1|c",
        "runicorn.service_p50:1.984|g",
        "runicorn.service_p99:200.000|g",
        "runicorn.service_max:200.000|g",
        "runicorn.queued_requests:0|c",
        "runicorn.backlog:3|g",
        "runicorn.backlog_limit:1024|g",
        "runicorn.workers_busy:1|g",
        "runicorn.workers_idle:1|g",
        "runicorn.requests_in_flight:1|g",
        "runicorn.worker_exits:2|c",
        "runicorn.worker_timeouts:1|c",
        "runicorn.worker_failures:0|c",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} not in {lines:#?}");
    }
    // What the metric lines leave out, StatsD leaves out too: figures that do not exist.
    for absent in [
        "memory_pgpgout",
        "queue_p50",
        "worker.0.memory_pte",
        "worker.0.threads",
    ] {
        assert!(!lines.iter().any(|l| l.contains(absent)), "{absent}");
    }
    // Every line is one metric: name:value|type.
    for l in &lines {
        let (name, rest) = l.split_once(':').unwrap();
        assert!(name.starts_with("runicorn."), "{l}");
        assert!(rest.ends_with("|g") || rest.ends_with("|c"), "{l}");
    }
}

#[test]
fn the_figures_agree_with_the_metric_lines() {
    let s = sample(2);
    let text = s
        .lines(&Identity {
            source: "web.1".into(),
            dyno: "d".into(),
        })
        .join("\n");
    let statsd = lines(&s, &plain());
    for key in ["service_p50", "service_p95", "service_p99", "service_max"] {
        let v = statsd
            .iter()
            .find_map(|l| l.strip_prefix(&format!("runicorn.{key}:")))
            .unwrap()
            .trim_end_matches("|g");
        assert!(text.contains(&format!("sample#{key}={v}ms")), "{key}={v}");
    }
    assert!(text.contains("count#requests=4 "));
    assert!(text.contains("sample#workers=2"));
}

#[test]
fn prefix_and_tags_go_on_every_line() {
    let f = Format::new("myapp.", &["env:prod".into(), "canary".into()]);
    let lines = lines(&sample(1), &f);
    assert!(lines.contains(&"myapp.runicorn.requests:4|c|#env:prod,canary".to_string()));
    for l in &lines {
        assert!(l.starts_with("myapp.runicorn."), "{l}");
        assert!(l.ends_with("|#env:prod,canary"), "{l}");
    }
}

#[test]
fn datagrams_hold_whole_lines_under_the_limit() {
    assert_eq!(
        pack(["a:1|c".into(), "b:2|c".into(), "c:3|c".into()], 11),
        ["a:1|c\nb:2|c", "c:3|c"]
    );
    assert_eq!(
        pack(["a:1|c".into(), "b:2|c".into()], 5),
        ["a:1|c", "b:2|c"]
    );
    assert_eq!(pack(["toolong:1|c".into()], 5), ["toolong:1|c"]);
    assert!(pack(Vec::new(), 5).is_empty());

    // A large pool, with the longest prefix and tags the settings accept.
    let prefix = format!("{}.", "p".repeat(200));
    let tags = vec!["t".repeat(500)];
    let s = sample(64);
    let f = Format::new(&prefix, &tags);
    let want = lines(&s, &f);
    let datagrams = render(&s, &f);
    assert!(datagrams.len() > 1);
    for d in &datagrams {
        assert!(d.len() <= MAX_DATAGRAM, "{} bytes", d.len());
        assert!(!d.starts_with('\n') && !d.ends_with('\n'));
    }
    // Nothing lost, nothing reordered.
    let got: Vec<&str> = datagrams.iter().flat_map(|d| d.split('\n')).collect();
    assert_eq!(got, want);
    // And with no prefix or tags, a 2-worker sample fits a few datagrams.
    assert!(render(&sample(2), &plain()).len() <= 3);
}

/// Every name sent is in docs/metrics.md's StatsD table (worker slots as `N`).
#[test]
fn every_name_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut s = sample(1);
    s.requests.counters.queue.record(1000);
    s.dyno.figures.pgpgout_pages = Some(1);
    s.workers[0].tasks = Some(ProcTasks {
        page_tables_kib: Some(1),
        threads: Some(1),
    });
    for line in lines(&s, &plain()) {
        let name = line
            .split(':')
            .next()
            .unwrap()
            .replace(".worker.0.", ".worker.N.");
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/metrics.md does not list `{name}`"
        );
    }
}
