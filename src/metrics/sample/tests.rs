//! Rendering: every line in Heroku's vocabulary, with fixed figures.

use super::*;

fn id() -> Identity {
    Identity {
        source: "web.1".into(),
        dyno: "d1".into(),
    }
}

use crate::procfs::test_memory as mem;

#[test]
fn identity_from_the_platform_or_the_host() {
    let env = |k: &str| match k {
        "DYNO" => Some("web.3".to_string()),
        "HEROKU_DYNO_ID" => Some("abc-123".to_string()),
        _ => None,
    };
    assert_eq!(
        Identity::from_env(&env, "host".into()),
        Identity {
            source: "web.3".into(),
            dyno: "abc-123".into()
        }
    );
    assert_eq!(
        Identity::from_env(&|_| None, "host".into()),
        Identity {
            source: "web.1".into(),
            dyno: "host".into()
        }
    );
}

#[test]
fn megabytes_are_mebibytes_with_two_decimals() {
    assert_eq!(mb(0), "0.00MB");
    assert_eq!(mb(512 << 20), "512.00MB");
    assert_eq!(mb(22_251_520), "21.22MB");
}

#[test]
fn load_line() {
    assert_eq!(
        render_load(&id(), [0.05, 0.02, 0.0]),
        "source=web.1 dyno=d1 sample#load_avg_1m=0.05 sample#load_avg_5m=0.02 sample#load_avg_15m=0.00"
    );
}

#[test]
fn memory_line_from_a_v1_cgroup_has_every_heroku_key() {
    let figures = CgroupMemory {
        rss_bytes: 20 << 20,
        cache_bytes: 1 << 20,
        swap_bytes: 0,
        pgpgin_pages: Some(348_836),
        pgpgout_pages: Some(343_403),
        quota_bytes: Some(512 << 20),
    };
    let m = DynoMemory::from_cgroup(figures, CgroupVersion::V1);
    assert_eq!(
        render_memory(&id(), &m),
        "source=web.1 dyno=d1 sample#memory_total=21.00MB sample#memory_rss=20.00MB \
         sample#memory_cache=1.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages \
         sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB"
    );
}

#[test]
fn memory_from_processes_counts_shared_pages_once() {
    // Master and two workers: PSS splits shared pages between them; summed RSS would not.
    let procs = [mem(3000, 1400, 900), mem(1400, 400, 80), mem(1400, 400, 80)];
    let m = DynoMemory::from_processes(&procs, None);
    assert_eq!(m.figures.rss_bytes, 2200 * 1024);
    assert_eq!(m.figures.cache_bytes, 0);
    let line = render_memory(&id(), &m);
    assert!(line.contains("sample#memory_total=2.15MB"), "{line}");
    assert!(
        !line.contains("pgpgin") && !line.contains("quota"),
        "{line}"
    );
}

#[test]
fn worker_and_master_lines() {
    let w = WorkerSample {
        slot: 0,
        pid: 4242,
        memory: Some(mem(5222, 1228, 921)),
        tasks: Some(ProcTasks {
            page_tables_kib: Some(92),
            threads: Some(1),
        }),
        requests: 1234,
        age: Duration::from_secs(61),
    };
    assert_eq!(
        render_worker(&id(), &w),
        "source=web.1 dyno=d1 worker=0 pid=4242 sample#memory_rss=5.10MB sample#memory_pss=1.20MB \
         sample#memory_uss=0.90MB sample#memory_swap=0.00MB sample#memory_pte=0.09MB sample#threads=1 \
         sample#requests=1234 sample#age=61s"
    );
    // Without /proc/<pid>/status figures, their keys are left out.
    let w = WorkerSample { tasks: None, ..w };
    assert_eq!(
        render_worker(&id(), &w),
        "source=web.1 dyno=d1 worker=0 pid=4242 sample#memory_rss=5.10MB sample#memory_pss=1.20MB \
         sample#memory_uss=0.90MB sample#memory_swap=0.00MB sample#requests=1234 sample#age=61s"
    );
    let tasks = ProcTasks {
        page_tables_kib: Some(100),
        threads: None,
    };
    assert_eq!(
        render_master(&id(), 4241, &mem(3072, 1024, 512), Some(&tasks), 2),
        "source=web.1 dyno=d1 process=master pid=4241 sample#memory_rss=3.00MB sample#memory_pss=1.00MB \
         sample#memory_uss=0.50MB sample#memory_swap=0.00MB sample#memory_pte=0.10MB sample#workers=2"
    );
}

#[test]
fn request_line_with_and_without_traffic() {
    let quiet = RequestStats {
        busy: 0,
        idle: 2,
        ..RequestStats::default()
    };
    assert_eq!(
        render_requests(&id(), &quiet),
        "source=web.1 dyno=d1 count#requests=0 count#requests_1xx=0 count#requests_2xx=0 \
         count#requests_3xx=0 count#requests_4xx=0 count#requests_5xx=0 count#queued_requests=0 \
         sample#workers_busy=0 sample#workers_idle=2 sample#requests_in_flight=0"
    );
    let mut c = crate::scoreboard::test_counters();
    c.queue.record(50_000);
    c.queue_max_us = 50_000;
    let busy = RequestStats {
        counters: c,
        backlog: Some(ListenQueue {
            depth: 3,
            limit: 1024,
        }),
        busy: 1,
        idle: 1,
        in_flight: 5,
    };
    let line = render_requests(&id(), &busy);
    for part in [
        "count#requests=4 ",
        "count#requests_2xx=3 ",
        "count#requests_4xx=1 ",
        "sample#service_p50=1.984ms",
        "sample#service_p99=200.000ms",
        "sample#service_max=200.000ms",
        "count#queued_requests=1 ",
        "sample#queue_p50=50.000ms",
        "sample#backlog=3 sample#backlog_limit=1024",
        "sample#workers_busy=1 sample#workers_idle=1 sample#requests_in_flight=5",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[test]
fn parent_pid_from_stat() {
    assert_eq!(parent_pid("42 (a) b) S 7 42 42 0"), Some(7));
    assert_eq!(parent_pid("garbage"), None);
}
