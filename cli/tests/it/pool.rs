use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn worker_count_follows_web_concurrency_and_the_flag_wins() {
    let s = Spawn::new(&[]).env("WEB_CONCURRENCY", "3").start();
    s.wait_log(&["worker ready"], 3);
    assert_eq!(s.workers().len(), 3);
    assert_eq!(s.get("/").status, 200);

    let s = Spawn::new(&["--workers", "2"])
        .env("WEB_CONCURRENCY", "3")
        .start();
    s.wait_log(&["worker ready"], 2);
    assert_eq!(s.workers().len(), 2);
    assert_eq!(s.count_log(&["worker ready"]), 2);
}

#[test]
fn ttin_and_ttou_change_the_count() {
    let s = Server::start(&["--workers", "3"]);
    s.wait_log(&["worker ready"], 3);
    s.signal(libc::SIGTTIN);
    s.wait_log(&["worker ready"], 4);
    assert_eq!(s.workers().len(), 4);
    s.signal(libc::SIGTTOU);
    s.wait_log(&["worker exited"], 1);
    assert_eq!(s.workers().len(), 3);
    // Never below one.
    s.signal(libc::SIGTTOU);
    s.wait_log(&["worker exited"], 2);
    s.signal(libc::SIGTTOU);
    s.wait_log(&["one worker fewer", "workers=1"], 1);
    s.signal(libc::SIGTTOU);
    s.signal(libc::SIGTTIN);
    s.wait_log(&["one worker more", "workers=2"], 1);
    assert_eq!(s.count_log(&["workers=0"]), 0, "TTOU went below one worker");
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn winch_stops_every_worker_and_ttin_brings_one_back() {
    let s = Server::start(&["--workers", "2"]);
    s.wait_log(&["worker ready"], 2);
    s.signal(libc::SIGWINCH);
    s.wait_log(&["worker exited"], 2);
    assert!(s.workers().is_empty());
    assert!(alive(s.pid), "the master stays");
    s.signal(libc::SIGTTIN);
    s.wait_log(&["worker ready"], 3);
    assert_eq!(s.workers().len(), 1);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn hup_replaces_every_worker_while_requests_keep_succeeding() {
    let s = Server::start(&["--workers", "3"]);
    s.wait_log(&["worker ready"], 3);
    let old = s.workers();
    assert_eq!(old.len(), 3);

    let addr = s.addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let until = Instant::now() + DEADLINE;
                for _ in 0..5000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > until {
                        break;
                    }
                    let r = request(addr, "GET /sleep?ms=2 HTTP/1.1\r\nHost: t\r\n\r\n");
                    if r.status != 200 {
                        eprintln!("failed during HUP: {:?}", r.head);
                    }
                    if r.status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    s.signal(libc::SIGHUP);
    s.wait_log(&["worker exited"], 3);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let new = s.workers();
    assert_eq!(new.len(), 3);
    assert!(
        new.iter().all(|p| !old.contains(p)),
        "old {old:?} new {new:?}"
    );
    assert!(alive(s.pid), "the master keeps its pid");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during HUP"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
}

#[test]
fn the_master_has_one_thread() {
    let s = Server::start(&["--workers", "2"]);
    s.wait_log(&["worker ready"], 2);
    assert_eq!(s.get("/").status, 200);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap();
    let threads = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    assert_eq!(threads.split_whitespace().nth(1), Some("1"), "{threads}");
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let mut s = Server::start(&["--workers", "2"]);
    s.wait_log(&["worker ready"], 2);
    let workers = s.workers();
    assert_eq!(workers.len(), 2);
    s.signal(libc::SIGKILL);
    s.wait_exit();
    let deadline = Instant::now() + DEADLINE;
    while workers.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "workers outlived the master: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn auto_sizes_the_pool_at_boot_from_cpus_and_memory() {
    let s = Server::start(&["--workers", "auto"]);
    let line = &s.wait_log(&["auto: workers at boot"], 1)[0];
    let field = |k: &str| -> usize {
        let v = line.split(&format!(" {k}=")).nth(1).unwrap();
        v.split(' ').next().unwrap().parse().unwrap()
    };
    let (workers, cpus) = (field("workers"), field("cpus"));
    assert!((1..=cpus).contains(&workers), "{line}");
    assert!(line.contains("worker_estimate_mb=32.00"), "{line}");
    s.wait_log(&["worker ready"], workers);
    assert_eq!(s.get("/").status, 200);
}

/// Requests that mostly wait (sleep) use little CPU: `auto` measures that and grows the pool
/// past one worker per CPU, after two agreeing evaluations.
#[test]
fn auto_grows_the_pool_for_requests_that_wait() {
    let s = Server::start(&["--workers", "auto", "--auto-interval", "1"]);
    let boot = s.wait_log(&["auto: workers at boot"], 1)[0].clone();
    let addr = s.addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + DEADLINE;
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > until {
                        break;
                    }
                    request(addr, "GET /sleep?ms=20 HTTP/1.1\r\nHost: t\r\n\r\n");
                }
            })
        })
        .collect();
    let line = s.wait_log(&["auto: resizing the pool"], 1)[0].clone();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let num = |l: &str, k: &str| -> usize {
        let v = l.split(&format!(" {k}=")).nth(1).unwrap();
        v.split(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(num(&line, "from"), num(&boot, "workers"), "{line}");
    assert!(num(&line, "workers") > num(&line, "from"), "{line}");
    assert!(line.contains("on_cpu=0."), "{line}");
    s.wait_log(&["worker ready"], num(&line, "workers"));
}

/// The slots (`worker=N`, `WorkerInfo::slot`) of the workers that are ready now, in order.
fn live_slots(s: &Server) -> Vec<usize> {
    let mut live: Vec<(usize, String)> = Vec::new();
    for line in s.logs() {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(key))
                .map(str::to_string)
        };
        let (Some(slot), Some(pid)) = (field("worker="), field("pid=")) else {
            continue;
        };
        if line.contains("msg=\"worker ready\"") {
            live.push((slot.parse().unwrap(), pid));
        } else if line.contains("msg=\"worker exiting\"") {
            live.retain(|(_, p)| *p != pid);
        }
    }
    let mut slots: Vec<usize> = live.into_iter().map(|(s, _)| s).collect();
    slots.sort_unstable();
    slots
}

/// Fails, with the log, unless the live slots are `want`.
fn assert_slots(s: &Server, want: &[usize]) {
    let got = live_slots(s);
    if got != want {
        s.fail(&format!("live slots {got:?}, expected {want:?}"));
    }
}

#[test]
fn slots_are_the_lowest_free_ones_as_documented_across_ttin_ttou_hup_and_usr2() {
    // A slot is free again once the master has reaped its worker (`worker exited`): each
    // step waits for that, so that the numbers do not depend on how fast the workers exit.
    let s = Server::start(&["--workers", "2"]);
    s.wait_log(&["workers ready", "generation=0"], 1);
    assert_slots(&s, &[0, 1]);
    // TTIN: the lowest free slot.
    s.signal(libc::SIGTTIN);
    s.wait_log(&["worker ready"], 3);
    assert_slots(&s, &[0, 1, 2]);
    // TTOU: the worker in the highest slot leaves.
    s.signal(libc::SIGTTOU);
    s.wait_log(&["worker exited"], 1);
    assert_slots(&s, &[0, 1]);
    // HUP: the new workers start beside the old ones, in the next free slots, and keep them.
    s.signal(libc::SIGHUP);
    s.wait_log(&["workers ready", "generation=1"], 1);
    s.wait_log(&["worker exited"], 3);
    assert_slots(&s, &[2, 3]);
    // TTIN then takes the lowest free slot, below the others; TTOU still stops the highest.
    s.signal(libc::SIGTTIN);
    s.wait_log(&["worker ready"], 6);
    assert_slots(&s, &[0, 2, 3]);
    s.signal(libc::SIGTTOU);
    s.wait_log(&["worker exited"], 4);
    assert_slots(&s, &[0, 2]);
}

#[test]
fn after_usr2_the_new_binary_numbers_its_workers_from_zero() {
    let s = Server::start(&["--workers", "2"]);
    s.wait_log(&["workers ready", "generation=0"], 1);
    s.signal(libc::SIGHUP);
    s.wait_log(&["workers ready", "generation=1"], 1);
    s.wait_log(&["worker exited"], 2);
    assert_slots(&s, &[2, 3]);
    // The new image has a scoreboard of its own: its workers take slots 0 and 1 while the
    // old image's workers, in 2 and 3 of the old one, serve on until they are ready.
    s.signal(libc::SIGUSR2);
    s.wait_log(&["upgraded:"], 1);
    s.wait_log(&["worker exiting"], 4);
    assert_slots(&s, &[0, 1]);
}
