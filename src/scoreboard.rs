//! The scoreboard: one slot of atomics per worker in memory shared by the master and every
//! worker, so that the master knows what each worker is doing without a pipe, a file or a
//! syscall per request (Apache's scoreboard, Unicorn's raindrops, Pitchfork's shared memory).
//!
//! A worker writes only its own slot; the master reads every slot and resets a slot when it
//! reaps its worker. The request description (method, path, request id) is published under a
//! sequence lock so that the master never reads a half-written one.

use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use crate::sys::{self, SharedArray};

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
    fn from_u8(v: u8) -> WorkerState {
        match v {
            1 => WorkerState::Booting,
            2 => WorkerState::Idle,
            3 => WorkerState::Busy,
            4 => WorkerState::Stopping,
            _ => WorkerState::Free,
        }
    }
}

const TEXT_WORDS: usize = 32;
const TEXT_BYTES: usize = TEXT_WORDS * 8;
const METHOD_MAX: usize = 15;
const RID_MAX: usize = 56;
const PATH_MAX: usize = TEXT_BYTES - 3 - METHOD_MAX - RID_MAX;

/// One worker's slot. Cache-line aligned so that workers never write the same line.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU8,
    stop: AtomicU8,
    seq: AtomicU32,
    busy_since_ns: AtomicU64,
    requests: AtomicU64,
    text: [AtomicU64; TEXT_WORDS],
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

/// A consistent copy of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// The worker's pid as it published it (0 if not yet).
    pub pid: i32,
    /// Its state.
    pub state: WorkerState,
    /// When it became busy (CLOCK_MONOTONIC nanoseconds), if busy.
    pub busy_since_ns: Option<u64>,
    /// Requests served since it started.
    pub requests: u64,
}

impl Slot {
    /// Resets the slot for a new worker (master side, before fork).
    pub fn reset(&self) {
        self.pid.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.busy_since_ns.store(0, Ordering::Relaxed);
        self.stop.store(0, Ordering::Relaxed);
        self.state
            .store(WorkerState::Booting as u8, Ordering::Release);
    }

    /// Frees the slot (master side, after reaping its worker).
    pub fn free(&self) {
        self.pid.store(0, Ordering::Relaxed);
        self.state.store(WorkerState::Free as u8, Ordering::Release);
    }

    /// Asks the worker to stop after its current request (master side). The master also
    /// writes to the worker's control pipe, to wake a worker waiting for connections; this
    /// flag is what a busy worker checks between requests, without a syscall.
    pub fn request_stop(&self) {
        self.stop.store(1, Ordering::Release);
    }

    /// Has the master asked this worker to stop? (worker side)
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire) != 0
    }

    /// Publishes the worker's pid (worker side, at boot).
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Publishes a new state; entering `Busy` also records the start time and clears the
    /// request description.
    pub fn set_state(&self, state: WorkerState) {
        if state == WorkerState::Busy {
            self.write_text(b"", b"", b"");
            self.busy_since_ns
                .store(sys::monotonic_ns(), Ordering::Relaxed);
        }
        self.state.store(state as u8, Ordering::Release);
    }

    /// Publishes what the busy worker is serving (worker side, once the head is parsed).
    pub fn set_request(&self, method: &[u8], path: &[u8], request_id: &[u8]) {
        self.write_text(method, path, request_id);
    }

    /// Counts one request served.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the slot's counters and state.
    pub fn view(&self) -> SlotView {
        let state = WorkerState::from_u8(self.state.load(Ordering::Acquire));
        SlotView {
            pid: self.pid.load(Ordering::Relaxed),
            state,
            busy_since_ns: (state == WorkerState::Busy)
                .then(|| self.busy_since_ns.load(Ordering::Relaxed)),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    /// The request the worker is serving (master side).
    pub fn current_request(&self) -> CurrentRequest {
        let mut bytes = [0u8; TEXT_BYTES];
        // A seqlock read: retry while the writer is mid-update. The writer is a single worker
        // that updates at most once per request, so a few tries always suffice.
        for _ in 0..64 {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (i, w) in self.text.iter().enumerate() {
                bytes[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return decode_text(&bytes);
            }
        }
        CurrentRequest::default()
    }

    fn write_text(&self, method: &[u8], path: &[u8], request_id: &[u8]) {
        let bytes = encode_text(method, path, request_id);
        self.seq.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, w) in self.text.iter().enumerate() {
            let word = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            w.store(word, Ordering::Relaxed);
        }
        self.seq.fetch_add(1, Ordering::Release);
    }
}

fn encode_text(method: &[u8], path: &[u8], request_id: &[u8]) -> [u8; TEXT_BYTES] {
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
    out
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
    slots: SharedArray<Slot>,
}

impl Scoreboard {
    /// A scoreboard with `capacity` free slots.
    pub fn new(capacity: usize) -> std::io::Result<Scoreboard> {
        Ok(Scoreboard {
            slots: SharedArray::new(capacity)?,
        })
    }

    /// The slot at `index`.
    pub fn slot(&self, index: usize) -> &Slot {
        &self.slots[index]
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_truncates() {
        let long_path = vec![b'p'; 500];
        let t = decode_text(&encode_text(b"GET", &long_path, b"abc-123"));
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
        slot.count_request();
        slot.set_state(WorkerState::Idle);
        assert_eq!(slot.view().requests, 1);
        assert_eq!(slot.view().busy_since_ns, None);
        assert_eq!(std::mem::size_of::<Slot>() % 64, 0);
    }
}
