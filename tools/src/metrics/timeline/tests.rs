use super::*;
use crate::metrics::parse::parse_line;

fn feed(t: &mut Timeline, line: &str, arrival: f64) -> Vec<String> {
    t.feed(&parse_line(line).expect(line), arrival)
}

#[test]
fn numbers_and_strings_are_json() {
    let mut s = String::new();
    for v in [0.0, 12.0, 1.5, 0.0125, -3.25, f64::NAN, f64::INFINITY] {
        push_number(&mut s, v);
        s.push(' ');
    }
    assert_eq!(s, "0 12 1.5 0.013 -3.25 null null ");
    let mut s = String::new();
    push_string(&mut s, "a\"b\\c\nd</script>\u{1}");
    assert_eq!(s, r#""a\"b\\c\nd\u003c/script>\u0001""#);
}

#[test]
fn heroku_memory_lines_give_a_paging_rate_from_the_second_on() {
    let mut t = Timeline::new();
    let first = feed(
        &mut t,
        "2016-08-14T14:22:11+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.a sample#memory_total=62.30MB sample#memory_rss=62.30MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=19039pages sample#memory_pgpgout=3090pages sample#memory_quota=512.00MB",
        0.0,
    );
    assert_eq!(
        first,
        [
            r#"{"k":"mem","t":1471184531,"d":"web.1","from":"platform","total":62.3,"rss":62.3,"swap":0,"cache":0,"quota":512}"#
        ]
    );
    let second = feed(
        &mut t,
        "2016-08-14T14:22:31+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.a sample#memory_total=63.00MB sample#memory_pgpgin=19439pages sample#memory_pgpgout=3190pages",
        0.0,
    );
    assert!(
        second[0].ends_with(r#""total":63,"paging":25}"#),
        "{second:?}"
    );
}

#[test]
fn a_new_dyno_id_is_a_restart_mark_and_resets_the_paging_counters() {
    let mut t = Timeline::new();
    feed(
        &mut t,
        "2016-08-14T14:22:11+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.a sample#memory_total=62.30MB sample#memory_pgpgin=100pages sample#memory_pgpgout=100pages",
        0.0,
    );
    let after = feed(
        &mut t,
        "2016-08-14T14:22:31+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.b sample#memory_total=20.00MB sample#memory_pgpgin=10pages sample#memory_pgpgout=10pages",
        0.0,
    );
    assert_eq!(after.len(), 2);
    assert!(after[0].contains(r#""k":"mark""#) && after[0].contains(r#""what":"restart""#));
    assert!(!after[1].contains("paging"), "{after:?}");
}

/// runicorn's lines, bare: one sample set.
const SET: [&str; 5] = [
    "source=web.1 dyno=vm sample#load_avg_1m=0.50 sample#load_avg_5m=0.20 sample#load_avg_15m=0.10",
    "source=web.1 dyno=vm sample#memory_total=40.00MB sample#memory_rss=30.00MB sample#memory_cache=10.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=10pages sample#memory_pgpgout=5pages sample#memory_quota=512.00MB",
    "source=web.1 dyno=vm process=master pid=10 sample#memory_rss=5.00MB sample#memory_pss=2.00MB sample#memory_uss=1.00MB sample#workers=2",
    "source=web.1 dyno=vm worker=0 pid=11 sample#memory_rss=9.00MB sample#memory_pss=6.00MB sample#memory_uss=4.00MB sample#requests=5 sample#age=20s",
    "source=web.1 dyno=vm count#requests=40 count#requests_1xx=0 count#requests_2xx=30 count#requests_3xx=0 count#requests_4xx=6 count#requests_5xx=4 sample#service_p50=1.000ms sample#service_p95=2.000ms sample#service_p99=3.000ms count#queued_requests=0 sample#backlog=1 sample#backlog_limit=1024 sample#workers_busy=1 sample#workers_idle=1",
];

#[test]
fn a_runicorn_set_gives_load_memory_requests_and_the_stack_of_processes() {
    let mut t = Timeline::new();
    let events: Vec<String> = SET.iter().flat_map(|l| feed(&mut t, l, 1000.0)).collect();
    assert_eq!(
        events,
        [
            r#"{"k":"load","t":1000,"d":"web.1","v":0.5}"#,
            r#"{"k":"mem","t":1000,"d":"web.1","from":"runicorn","total":40,"rss":30,"swap":0,"cache":10,"quota":512}"#,
            r#"{"k":"req","t":1000,"d":"web.1","rps":2,"classes":[0,1.5,0,0.3,0.2],"interval":20,"service":[1,2,3],"backlog":1,"backlog_limit":1024,"busy":1,"idle":1}"#,
            r#"{"k":"procs","t":1000,"d":"web.1","master":2,"workers":{"0":[6,4]}}"#,
        ]
    );
    assert_eq!(t.latest(), Some(1000.0));
}

#[test]
fn untimed_sets_read_in_a_burst_are_spaced_by_the_default_interval_and_live_ones_by_arrival() {
    let mut t = Timeline::new();
    let time = |e: &str| {
        e.split(r#""t":"#)
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    let mut times = Vec::new();
    for arrival in [1000.0, 1000.1, 1000.2] {
        let events: Vec<String> = SET.iter().flat_map(|l| feed(&mut t, l, arrival)).collect();
        // Every line of a set has the set's time.
        assert!(
            events.iter().all(|e| time(e) == time(&events[0])),
            "{events:?}"
        );
        times.push(time(&events[0]));
    }
    // Live again: the arrival time, never before the replayed sets.
    let live = feed(&mut t, SET[0], 1100.0);
    times.push(time(&live[0]));
    let later = feed(&mut t, SET[0], 1300.0);
    assert_eq!(times, ["1000", "1020", "1040", "1100"]);
    // Same set (not complete yet): same time.
    assert_eq!(time(&later[0]), "1100");
}

#[test]
fn a_new_pid_in_a_slot_is_a_recycle_unless_a_log_line_already_said_so() {
    let mut t = Timeline::new();
    for l in SET {
        feed(&mut t, l, 0.0);
    }
    let replaced = feed(&mut t, &SET[3].replace("pid=11", "pid=12"), 20.0);
    assert!(replaced[0].contains(r#""what":"recycle""#), "{replaced:?}");
    assert!(replaced[0].contains("pid 11 -> 12"), "{replaced:?}");
    feed(&mut t, SET[4], 20.0);
    let ended = feed(
        &mut t,
        r#"at=info msg="worker killed" worker=0 pid=12 signal=SIGKILL requests=3 reason=timeout"#,
        30.0,
    );
    assert!(
        ended[0].contains(r#""what":"timeout""#) && ended[0].contains("worker 0 ended: timeout")
    );
    assert!(feed(&mut t, &SET[3].replace("pid=11", "pid=13"), 40.0).is_empty());
}

#[test]
fn platform_errors_are_marks() {
    let mut t = Timeline::new();
    let e = feed(
        &mut t,
        "2015-03-11T00:00:49+00:00 heroku[web.1]: Error R14 (Memory quota exceeded)",
        0.0,
    );
    assert_eq!(
        e,
        [
            r#"{"k":"mark","t":1426032049,"d":"web.1","what":"R14","text":"R14 memory quota exceeded: the dyno swaps"}"#
        ]
    );
}

#[test]
fn the_advice_event_carries_the_count_the_sizes_and_the_lines() {
    let report = [DynoAdvice {
        source: "web.1".into(),
        quota_mb: 512.0,
        size: Some("standard-1x"),
        workers: 3,
        range: None,
        reason: "memory".into(),
        by_size: vec![("standard-1x", "3".into(), "memory")],
        lines: vec!["WEB_CONCURRENCY=3".into()],
    }];
    assert_eq!(
        advice_event(5.0, &report),
        r#"{"k":"advice","t":5,"dynos":[{"d":"web.1","quota":512,"size":"standard-1x","workers":3,"reason":"memory","sizes":[{"size":"standard-1x","advice":"3","bound":"memory"}],"lines":["WEB_CONCURRENCY=3"]}]}"#
    );
}

#[test]
fn the_first_start_is_no_restart_and_a_later_one_is() {
    let mut t = Timeline::new();
    let start = r#"at=info msg="master started" pid=9680 workers=2"#;
    assert!(feed(&mut t, start, 0.0).is_empty());
    for l in SET {
        feed(&mut t, l, 0.0);
    }
    let again = feed(&mut t, start, 60.0);
    assert!(again[0].contains(r#""what":"restart""#), "{again:?}");
    // The new server's workers are new processes, not recycles.
    assert!(feed(&mut t, &SET[3].replace("pid=11", "pid=99"), 61.0).is_empty());
}
