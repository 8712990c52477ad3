use super::*;

fn w(slot: usize, generation: u64, ready: bool) -> WorkerView {
    WorkerView {
        slot,
        generation,
        ready,
        stopping: false,
    }
}

#[test]
fn tops_up_to_target() {
    assert_eq!(
        plan(&[], 3, 0),
        Plan {
            spawn: 3,
            stop: vec![]
        }
    );
    assert_eq!(
        plan(&[w(0, 0, true)], 3, 0),
        Plan {
            spawn: 2,
            stop: vec![]
        }
    );
    assert_eq!(
        plan(&[w(0, 0, true), w(1, 0, false), w(2, 0, true)], 3, 0),
        Plan::default()
    );
}

#[test]
fn stops_the_newest_extras() {
    let ws = [w(0, 0, true), w(1, 0, true), w(2, 0, true)];
    assert_eq!(
        plan(&ws, 2, 0),
        Plan {
            spawn: 0,
            stop: vec![2]
        }
    );
    assert_eq!(
        plan(&ws, 0, 0),
        Plan {
            spawn: 0,
            stop: vec![2, 1, 0]
        }
    );
}

#[test]
fn stopping_workers_do_not_count() {
    let ws = [
        w(0, 0, true),
        WorkerView {
            stopping: true,
            ..w(1, 0, true)
        },
    ];
    assert_eq!(
        plan(&ws, 2, 0),
        Plan {
            spawn: 1,
            stop: vec![]
        }
    );
}

#[test]
fn hup_keeps_old_workers_until_new_ones_are_ready() {
    let old = [w(0, 0, true), w(1, 0, true)];
    // Right after HUP: spawn two new ones, stop nothing.
    assert_eq!(
        plan(&old, 2, 1),
        Plan {
            spawn: 2,
            stop: vec![]
        }
    );
    // One new worker ready: one old one may go.
    let ws = [old[0], old[1], w(2, 1, true), w(3, 1, false)];
    assert_eq!(
        plan(&ws, 2, 1),
        Plan {
            spawn: 0,
            stop: vec![0]
        }
    );
    // Both ready: both old ones go.
    let ws = [old[0], old[1], w(2, 1, true), w(3, 1, true)];
    assert_eq!(
        plan(&ws, 2, 1),
        Plan {
            spawn: 0,
            stop: vec![0, 1]
        }
    );
}

#[test]
fn request_limits_spread_within_the_jitter() {
    assert_eq!(request_limit(0, 50, 12345), 0);
    assert_eq!(request_limit(100, 0, 12345), 100);
    let limits: Vec<u64> = (0..1000).map(|r| request_limit(100, 9, r * 7919)).collect();
    assert!(limits.iter().all(|&l| (100..=109).contains(&l)));
    assert_eq!(*limits.iter().min().unwrap(), 100);
    assert_eq!(*limits.iter().max().unwrap(), 109);
    assert_eq!(request_limit(u64::MAX, u64::MAX, 3), u64::MAX);
}

#[test]
fn memory_limits_spread_over_the_top_tenth() {
    assert_eq!(memory_limit_kib(0, 12345), 0);
    assert_eq!(memory_limit_kib(100, 0), 102_400);
    for r in [1, 999, 10_240, 10_241, u64::MAX] {
        let l = memory_limit_kib(100, r);
        assert!((92_160..=102_400).contains(&l), "{l}");
    }
    assert_eq!(memory_limit_kib(100, 10_240), 92_160);
}

#[test]
fn free_slots_are_reused_lowest_first() {
    assert_eq!(free_slot([0, 2].into_iter(), 4), Some(1));
    assert_eq!(free_slot([0, 1].into_iter(), 2), None);
}

#[test]
fn worker_ends_split_as_the_exit_log_does() {
    use crate::metrics::sample::WorkerEnd;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;
    let pid = Pid::from_raw(42);
    let exited = |code| WaitStatus::Exited(pid, code);
    let signaled = |sig| WaitStatus::Signaled(pid, sig, false);
    let unasked = Reaped::default();
    let killed = |why| Reaped {
        killed: Some(why),
        ..Reaped::default()
    };
    let asked = Reaped {
        asked_to_stop: true,
        ..Reaped::default()
    };
    let memory = Reaped {
        asked_to_stop: true,
        over_memory: true,
        ..Reaped::default()
    };
    let served = Reaped {
        served_its_max: true,
        ..Reaped::default()
    };
    assert_eq!(worker_end(exited(0), &unasked), WorkerEnd::Exited);
    assert_eq!(worker_end(exited(0), &asked), WorkerEnd::Stopped);
    assert_eq!(worker_end(exited(0), &memory), WorkerEnd::Memory);
    assert_eq!(worker_end(exited(0), &served), WorkerEnd::MaxRequests);
    // Asked to stop first, then it reached its limit too: the master's ask is the cause.
    let both = Reaped {
        asked_to_stop: true,
        served_its_max: true,
        ..Reaped::default()
    };
    assert_eq!(worker_end(exited(0), &both), WorkerEnd::Stopped);
    assert_eq!(worker_end(exited(1), &unasked), WorkerEnd::Failed);
    assert_eq!(worker_end(exited(3), &asked), WorkerEnd::Failed);
    let sigkill = signaled(Signal::SIGKILL);
    assert_eq!(worker_end(sigkill, &killed("timeout")), WorkerEnd::Timeout);
    assert_eq!(
        worker_end(sigkill, &killed("boot timeout")),
        WorkerEnd::Timeout
    );
    assert_eq!(
        worker_end(sigkill, &killed("graceful timeout")),
        WorkerEnd::Stopped
    );
    assert_eq!(
        worker_end(sigkill, &killed("quick stop")),
        WorkerEnd::Stopped
    );
    assert_eq!(worker_end(sigkill, &unasked), WorkerEnd::Failed);
    assert_eq!(worker_end(sigkill, &asked), WorkerEnd::Failed);
    assert_eq!(
        worker_end(signaled(Signal::SIGSEGV), &unasked),
        WorkerEnd::Failed
    );
}
