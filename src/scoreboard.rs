//! The scoreboard: one slot of atomic words per worker in memory shared by the master and
//! every worker, so that the master knows what each worker is doing, and how its requests
//! went, without a pipe, a file or a syscall per request (Apache's scoreboard, Unicorn's
//! raindrops, Pitchfork's shared memory).
//!
//! A worker writes only its own slot; the master reads every slot, takes the per-interval
//! counters (swapping them to zero), and resets a slot before forking a worker into it. The
//! request description (method, path, request id) is published under a sequence lock so that
//! the master never reads a half-written one.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::histogram::{Histogram, Layout};
use crate::sys::{self, SharedWords};

/// What a worker is doing, as published in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerState {
    /// No worker in this slot.
    Free = 0,
    /// Forked; not yet accepting (setting up, running `after_fork`).
    Booting = 1,
    /// Waiting for a connection.
    Idle = 2,
    /// Serving a connection.
    Busy = 3,
    /// Finishing up after a stop request; accepts no more connections.
    Stopping = 4,
}

impl WorkerState {
    fn from_word(v: u64) -> WorkerState {
        match v {
            1 => WorkerState::Booting,
            2 => WorkerState::Idle,
            3 => WorkerState::Busy,
            4 => WorkerState::Stopping,
            _ => WorkerState::Free,
        }
    }
}

/// The latency histograms' buckets: 8 per power of two (a bucket's midpoint is within 1/16
/// of any value in it), microseconds up to 2^36 (19 hours). Coarse so that a slot stays
/// small: two histograms are most of a slot's words.
pub const LAYOUT: Layout = Layout::new(3, 36);
/// Histogram buckets per histogram.
pub const BUCKETS: usize = LAYOUT.len();

/// Word offsets within a slot.
const PID: usize = 0;
const STATE: usize = 1;
const STOP: usize = 2;
const SEQ: usize = 3;
const BUSY_SINCE: usize = 4;
const REQUESTS: usize = 5;
const SERVICE_MAX: usize = 6;
const QUEUE_MAX: usize = 7;
const QUEUED: usize = 8;
const STATUS: usize = 9; // five words: 1xx to 5xx
const BUSY_US: usize = 14;
const IN_FLIGHT: usize = 15;
const TEXT: usize = 16;
const TEXT_WORDS: usize = 32;
const SERVICE_HIST: usize = TEXT + TEXT_WORDS;
const QUEUE_HIST: usize = SERVICE_HIST + BUCKETS;
/// The sums of the service and queue times, µs: what a Prometheus histogram's `_sum` needs,
/// and the buckets cannot give exactly.
const SERVICE_SUM: usize = QUEUE_HIST + BUCKETS;
const QUEUE_SUM: usize = SERVICE_SUM + 1;
/// Words per slot, rounded up to whole cache lines so that workers never share one.
const SLOT_WORDS: usize = (QUEUE_SUM + 1).div_ceil(8) * 8;

const TEXT_BYTES: usize = TEXT_WORDS * 8;
const METHOD_MAX: usize = 15;
const RID_MAX: usize = 56;
const PATH_MAX: usize = TEXT_BYTES - 3 - METHOD_MAX - RID_MAX;

/// One worker's slot: a view into the shared words.
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    w: &'a [AtomicU64],
}

/// What the worker in a slot is serving, as read by the master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentRequest {
    /// The method ("" before the request head arrived).
    pub method: String,
    /// The path, truncated to fit the slot.
    pub path: String,
    /// The request id (X-Request-Id), truncated to fit the slot.
    pub request_id: String,
}

/// A consistent copy of a slot's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// The worker's pid as it published it (0 if not yet).
    pub pid: i32,
    /// Its state.
    pub state: WorkerState,
    /// When it became busy (CLOCK_MONOTONIC nanoseconds), if busy; for a worker serving
    /// several requests at once, when its loop last made progress.
    pub busy_since_ns: Option<u64>,
    /// Requests it is serving (0 when not busy; above 1 only with `--worker-connections`).
    pub in_flight: u64,
    /// Requests served since it started.
    pub requests: u64,
    /// Time spent serving them, microseconds: the sum of their service times, or for a
    /// worker serving several at once, the time it held at least one.
    pub busy_us: u64,
}

/// Request counters since they were last taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status: [u64; 5],
    /// Service time (accept to response written), microseconds.
    pub service: Histogram,
    /// The longest service time, microseconds.
    pub service_max_us: u64,
    /// The sum of the service times, microseconds.
    pub service_sum_us: u64,
    /// Queue time before the worker took the request (from `X-Request-Start`), microseconds.
    pub queue: Histogram,
    /// The longest queue time, microseconds.
    pub queue_max_us: u64,
    /// The sum of the queue times, microseconds.
    pub queue_sum_us: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            status: [0; 5],
            service: Histogram::new(LAYOUT),
            service_max_us: 0,
            service_sum_us: 0,
            queue: Histogram::new(LAYOUT),
            queue_max_us: 0,
            queue_sum_us: 0,
        }
    }
}

impl Counters {
    /// Responses counted.
    pub fn requests(&self) -> u64 {
        self.status.iter().sum()
    }

    /// Adds another set of counters.
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.service.merge(&other.service);
        self.queue.merge(&other.queue);
        self.service_max_us = self.service_max_us.max(other.service_max_us);
        self.queue_max_us = self.queue_max_us.max(other.queue_max_us);
        self.service_sum_us += other.service_sum_us;
        self.queue_sum_us += other.queue_sum_us;
    }
}

impl Slot<'_> {
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.w[i]
    }

    /// Resets the slot for a new worker (master side, before fork).
    pub fn reset(&self) {
        for w in self.w {
            w.store(0, Ordering::Relaxed);
        }
        self.word(STATE)
            .store(WorkerState::Booting as u64, Ordering::Release);
    }

    /// Frees the slot (master side, after reaping its worker and taking its counters).
    pub fn free(&self) {
        self.word(PID).store(0, Ordering::Relaxed);
        self.word(STATE)
            .store(WorkerState::Free as u64, Ordering::Release);
    }

    /// Asks the worker to stop after its current request (master side). The master also
    /// writes to the worker's control pipe, to wake a worker waiting for connections; this
    /// flag is what a busy worker checks between requests, without a syscall.
    pub fn request_stop(&self) {
        self.word(STOP).store(1, Ordering::Release);
    }

    /// Has the master asked this worker to stop? (worker side)
    pub fn stop_requested(&self) -> bool {
        self.word(STOP).load(Ordering::Acquire) != 0
    }

    /// Publishes the worker's pid (worker side, at boot).
    pub fn set_pid(&self, pid: i32) {
        self.word(PID).store(pid as u32 as u64, Ordering::Relaxed);
    }

    /// Publishes a new state; entering `Busy` also records the start time, one request in
    /// flight, and clears the request description; leaving it, none in flight.
    pub fn set_state(&self, state: WorkerState) {
        if state == WorkerState::Busy {
            self.write_text(b"", b"", b"");
            self.word(BUSY_SINCE)
                .store(sys::monotonic_ns(), Ordering::Relaxed);
        }
        self.word(IN_FLIGHT)
            .store(u64::from(state == WorkerState::Busy), Ordering::Relaxed);
        self.word(STATE).store(state as u64, Ordering::Release);
    }

    /// Adds time the worker spent serving (worker side): each request's service time, or for
    /// a worker serving several at once, the time it held at least one.
    pub fn add_busy(&self, us: u64) {
        self.word(BUSY_US).fetch_add(us, Ordering::Relaxed);
    }

    /// A worker serving several requests at once: how many it holds now.
    pub fn set_in_flight(&self, n: usize) {
        self.word(IN_FLIGHT).store(n as u64, Ordering::Relaxed);
    }

    /// A worker serving several requests at once: its loop made progress now. The master's
    /// `--timeout` then measures how long the loop has been stuck, not how long it has been
    /// busy (each request has its own timeout inside the worker).
    pub fn mark_progress(&self) {
        self.word(BUSY_SINCE)
            .store(sys::monotonic_ns(), Ordering::Relaxed);
    }

    /// Publishes what the busy worker is serving (worker side, once the head is parsed).
    pub fn set_request(&self, method: &[u8], path: &[u8], request_id: &[u8]) {
        self.write_text(method, path, request_id);
    }

    /// Counts one response (worker side): its status, service time and, when the router
    /// said when it received the request, its queue time. A handful of atomic adds on the
    /// worker's own cache lines; no syscall.
    pub fn count_response(&self, status: u16, service_us: u64, queue_us: Option<u64>) {
        self.word(REQUESTS).fetch_add(1, Ordering::Relaxed);
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.word(STATUS + class).fetch_add(1, Ordering::Relaxed);
        self.word(SERVICE_HIST + LAYOUT.index(service_us))
            .fetch_add(1, Ordering::Relaxed);
        self.word(SERVICE_MAX)
            .fetch_max(service_us, Ordering::Relaxed);
        self.word(SERVICE_SUM)
            .fetch_add(service_us, Ordering::Relaxed);
        if let Some(q) = queue_us {
            self.word(QUEUED).fetch_add(1, Ordering::Relaxed);
            self.word(QUEUE_HIST + LAYOUT.index(q))
                .fetch_add(1, Ordering::Relaxed);
            self.word(QUEUE_MAX).fetch_max(q, Ordering::Relaxed);
            self.word(QUEUE_SUM).fetch_add(q, Ordering::Relaxed);
        }
    }

    /// Takes the counters accumulated since the last call (master side): each word is
    /// swapped to zero, so a response counted concurrently lands in this interval or the
    /// next, never in none.
    pub fn take_counters(&self) -> Counters {
        let take = |i: usize| self.word(i).swap(0, Ordering::Relaxed);
        let mut c = Counters::default();
        for (k, s) in c.status.iter_mut().enumerate() {
            *s = take(STATUS + k);
        }
        for (k, n) in c.service.counts_mut().iter_mut().enumerate() {
            *n = take(SERVICE_HIST + k);
        }
        for (k, n) in c.queue.counts_mut().iter_mut().enumerate() {
            *n = take(QUEUE_HIST + k);
        }
        c.service_max_us = take(SERVICE_MAX);
        c.queue_max_us = take(QUEUE_MAX);
        c.service_sum_us = take(SERVICE_SUM);
        c.queue_sum_us = take(QUEUE_SUM);
        take(QUEUED);
        c
    }

    /// A copy of the slot's state and total.
    pub fn view(&self) -> SlotView {
        let state = WorkerState::from_word(self.word(STATE).load(Ordering::Acquire));
        SlotView {
            pid: self.word(PID).load(Ordering::Relaxed) as u32 as i32,
            state,
            busy_since_ns: (state == WorkerState::Busy)
                .then(|| self.word(BUSY_SINCE).load(Ordering::Relaxed)),
            in_flight: self.word(IN_FLIGHT).load(Ordering::Relaxed),
            requests: self.word(REQUESTS).load(Ordering::Relaxed),
            busy_us: self.word(BUSY_US).load(Ordering::Relaxed),
        }
    }

    /// The request the worker is serving (master side).
    pub fn current_request(&self) -> CurrentRequest {
        let mut bytes = [0u8; TEXT_BYTES];
        // A seqlock read: retry while the writer is mid-update. The writer is a single worker
        // that updates at most twice per request, so a few tries always suffice.
        for _ in 0..64 {
            let before = self.word(SEQ).load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for i in 0..TEXT_WORDS {
                let word = self.word(TEXT + i).load(Ordering::Relaxed);
                bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
            }
            fence(Ordering::Acquire);
            if self.word(SEQ).load(Ordering::Relaxed) == before {
                return decode_text(&bytes);
            }
        }
        CurrentRequest::default()
    }

    fn write_text(&self, method: &[u8], path: &[u8], request_id: &[u8]) {
        let (bytes, used) = encode_text(method, path, request_id);
        self.word(SEQ).fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        // Only the words that hold the text: the reader stops at the lengths in the first
        // bytes, so what lies beyond, from a longer earlier text, is never read.
        for (i, chunk) in bytes[..used.div_ceil(8) * 8].chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(TEXT + i)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        self.word(SEQ).fetch_add(1, Ordering::Release);
    }
}

/// The text's bytes, and how many of them are used (the three lengths and the parts).
fn encode_text(method: &[u8], path: &[u8], request_id: &[u8]) -> ([u8; TEXT_BYTES], usize) {
    let method = &method[..method.len().min(METHOD_MAX)];
    let path = &path[..path.len().min(PATH_MAX)];
    let rid = &request_id[..request_id.len().min(RID_MAX)];
    let mut out = [0u8; TEXT_BYTES];
    out[0] = method.len() as u8;
    out[1] = path.len() as u8;
    out[2] = rid.len() as u8;
    let mut at = 3;
    for part in [method, path, rid] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    (out, at)
}

fn decode_text(bytes: &[u8; TEXT_BYTES]) -> CurrentRequest {
    let lens = [bytes[0] as usize, bytes[1] as usize, bytes[2] as usize];
    if lens[0] > METHOD_MAX || lens[1] > PATH_MAX || lens[2] > RID_MAX {
        return CurrentRequest::default();
    }
    let mut at = 3;
    let mut parts = lens.iter().map(|&n| {
        let s = String::from_utf8_lossy(&bytes[at..at + n]).into_owned();
        at += n;
        s
    });
    CurrentRequest {
        method: parts.next().unwrap_or_default(),
        path: parts.next().unwrap_or_default(),
        request_id: parts.next().unwrap_or_default(),
    }
}

/// Every worker's slot, in a shared mapping made before the first fork.
pub struct Scoreboard {
    words: SharedWords,
    capacity: usize,
}

impl Scoreboard {
    /// A scoreboard with `capacity` free slots. Only the pages of slots in use are backed by
    /// memory (4.7 KiB a slot).
    pub fn new(capacity: usize) -> std::io::Result<Scoreboard> {
        Ok(Scoreboard {
            words: SharedWords::new(capacity * SLOT_WORDS)?,
            capacity,
        })
    }

    /// The slot at `index`.
    pub fn slot(&self, index: usize) -> Slot<'_> {
        Slot {
            w: &self.words[index * SLOT_WORDS..(index + 1) * SLOT_WORDS],
        }
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Four responses (three 2xx, one 4xx) served in 1, 2, 200 and 3 ms: fixed counters for
/// the renderers' tests.
#[cfg(test)]
pub(crate) fn test_counters() -> Counters {
    let mut c = Counters {
        status: [0, 3, 0, 1, 0],
        ..Counters::default()
    };
    for us in [1000, 2000, 200_000, 3000] {
        c.service.record(us);
    }
    c.service_sum_us = 206_000;
    c.service_max_us = 200_000;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_truncates() {
        let long_path = vec![b'p'; 500];
        let t = decode_text(&encode_text(b"GET", &long_path, b"abc-123").0);
        assert_eq!(t.method, "GET");
        assert_eq!(t.path.len(), PATH_MAX);
        assert_eq!(t.request_id, "abc-123");
    }

    #[test]
    fn slots_publish_state_and_request() {
        let board = Scoreboard::new(4).unwrap();
        let slot = board.slot(2);
        assert_eq!(slot.view().state, WorkerState::Free);
        slot.reset();
        slot.set_pid(42);
        assert_eq!(slot.view().state, WorkerState::Booting);
        slot.set_state(WorkerState::Busy);
        slot.set_request(b"POST", b"/upload", b"rid-1");
        let v = slot.view();
        assert_eq!((v.pid, v.state), (42, WorkerState::Busy));
        assert!(v.busy_since_ns.unwrap() > 0);
        assert_eq!(
            slot.current_request(),
            CurrentRequest {
                method: "POST".into(),
                path: "/upload".into(),
                request_id: "rid-1".into()
            }
        );
        // A shorter text after a longer one: what is left of the longer one beyond the new
        // text's words is never read.
        slot.set_request(b"GET", b"/", b"");
        assert_eq!(
            slot.current_request(),
            CurrentRequest {
                method: "GET".into(),
                path: "/".into(),
                request_id: String::new()
            }
        );
        assert_eq!(slot.view().in_flight, 1);
        slot.set_in_flight(3);
        assert_eq!(slot.view().in_flight, 3);
        slot.count_response(201, 1500, None);
        slot.set_state(WorkerState::Idle);
        assert_eq!(slot.view().requests, 1);
        assert_eq!(slot.view().in_flight, 0);
        assert_eq!(slot.view().busy_since_ns, None);
        assert_eq!(
            board.slot(1).view().state,
            WorkerState::Free,
            "slots do not overlap"
        );
    }

    #[test]
    fn counters_are_taken_once() {
        let board = Scoreboard::new(2).unwrap();
        let slot = board.slot(1);
        slot.reset();
        slot.count_response(200, 1000, Some(50_000));
        slot.count_response(404, 3000, None);
        slot.count_response(503, 2000, None);
        let c = slot.take_counters();
        assert_eq!(c.status, [0, 1, 0, 1, 1]);
        assert_eq!(c.requests(), 3);
        assert_eq!(c.service.count(), 3);
        assert_eq!(c.service_max_us, 3000);
        assert_eq!(c.queue.count(), 1);
        assert_eq!(c.queue_max_us, 50_000);
        assert_eq!(c.service_sum_us, 6000);
        assert_eq!(c.queue_sum_us, 50_000);
        let again = slot.take_counters();
        assert_eq!(again.requests(), 0);
        assert_eq!(again.service_max_us, 0);
        assert_eq!((again.service_sum_us, again.queue_sum_us), (0, 0));
        assert_eq!(slot.view().requests, 3, "the lifetime total is not taken");
    }

    #[test]
    fn buckets_cover_values_within_a_sixteenth() {
        for us in (0..200_000u64).chain([1 << 20, 123_456_789, 1 << 35]) {
            let b = LAYOUT.index(us);
            let mid = LAYOUT.mid(b) as f64;
            let err = (mid - us as f64).abs();
            assert!(
                err <= (us as f64 / 16.0).max(0.5),
                "{us} -> bucket {b} value {mid}"
            );
        }
        assert_eq!(LAYOUT.index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn the_highest_bucket_bounds_the_max() {
        let mut h = Histogram::new(LAYOUT);
        assert_eq!(h.highest_lower_bound(), 0);
        h.record(1000);
        h.record(200_000);
        assert!(h.highest_lower_bound() <= 200_000);
        assert!(h.highest_lower_bound() > 180_000);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new(LAYOUT);
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 - 50_000.0).abs() <= 50_000.0 / 16.0, "{p50}");
        assert!((p99 - 99_000.0).abs() <= 99_000.0 / 16.0, "{p99}");
        assert_eq!(h.quantile(1.0), Some(LAYOUT.mid(LAYOUT.index(100_000))));
    }
}
