//! The load generator: `clients` threads on 127.0.0.1, each making one request after
//! another, each request on a new connection: `connect`, `GET /`, read the answer to end of
//! file, close. That is the traffic whose cost differs between the strategies: everything
//! they do differently happens once per connection.
//!
//! It is bounded three ways, so it always stops by itself: a duration, a cap on the number of
//! connections, and a time limit on every single step (`connect`, `write`, `read`). A request
//! counts only if it finished before the duration was up, so the rate is completions over
//! the duration, with no tail of late stragglers.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::http;
use crate::sys;

/// What one client sends: the smallest request every server here answers.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// One load.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub addr: SocketAddr,
    /// Concurrent clients (threads), each with one connection at a time.
    pub clients: usize,
    pub duration: Duration,
    /// Stop after this many connections even if time is left.
    pub max_connections: u64,
    /// The limit on each step of a request.
    pub step_limit: Duration,
}

/// What a load produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Requests answered within the duration.
    pub completed: u64,
    /// Requests that failed (refused, reset, timed out, or a bad answer).
    pub errors: u64,
    /// Each completed request's time, connect to end of file, in microseconds.
    pub latencies_us: Vec<u32>,
    /// `answered[id]`: how many answers named worker `id` (index 0 is unused).
    pub answered: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        if self.answered.len() < other.answered.len() {
            self.answered.resize(other.answered.len(), 0);
        }
        for (i, n) in other.answered.into_iter().enumerate() {
            self.answered[i] += n;
        }
    }

    /// How many answers named each of workers `1..=workers` (0 for one that answered none).
    pub(crate) fn counts(&self, workers: usize) -> Vec<u64> {
        (1..=workers)
            .map(|id| self.answered.get(id).copied().unwrap_or(0))
            .collect()
    }

    /// How many distinct workers answered at least once.
    pub(crate) fn workers_seen(&self) -> usize {
        self.answered.iter().skip(1).filter(|&&n| n > 0).count()
    }
}

// ANCHOR: run
/// Run `load` and gather every client's tally. `stop` ends it early (Ctrl-C).
pub(crate) fn run(load: &Load, stop: fn() -> bool) -> Tally {
    let deadline = Instant::now() + load.duration;
    let started = AtomicU64::new(0);
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..load.clients.max(1))
            .map(|_| s.spawn(|| client(load, deadline, &started, stop)))
            .collect();
        for c in clients {
            // A client thread cannot panic on anything a server does; if it did, its
            // requests are simply missing from the tally.
            if let Ok(t) = c.join() {
                total.merge(t);
            }
        }
    });
    total
}

/// One client: requests back to back until the deadline or the connection cap.
fn client(load: &Load, deadline: Instant, started: &AtomicU64, stop: fn() -> bool) -> Tally {
    let mut t = Tally::default();
    let mut buf = [0u8; 1024];
    loop {
        let t0 = Instant::now();
        if t0 >= deadline
            || stop()
            || started.fetch_add(1, Ordering::Relaxed) >= load.max_connections
        {
            return t;
        }
        let answer = request(load.addr, load.step_limit, &mut buf);
        let t1 = Instant::now();
        if t1 > deadline {
            return t; // finished too late to count, either way
        }
        match answer.and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
            Some(text) if text.starts_with("HTTP/1.1 200") => {
                t.completed += 1;
                let us = (t1 - t0).as_micros().min(u128::from(u32::MAX)) as u32;
                t.latencies_us.push(us);
                let id = http::answered_by(text).unwrap_or(0) as usize;
                if id >= t.answered.len() {
                    t.answered.resize(id + 1, 0);
                }
                t.answered[id] += 1;
            }
            _ => {
                t.errors += 1;
                // A server that refuses is refused again at once: do not spin on it.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
// ANCHOR_END: run

/// One request on a new connection; the first bytes of the answer land in `buf`. Returns how
/// many, or `None` if any step failed.
fn request(addr: SocketAddr, limit: Duration, buf: &mut [u8]) -> Option<usize> {
    let conn = sys::connect_with_limit(addr, limit).ok()?;
    let fd = conn.as_fd();
    if sys::write(fd, REQUEST).ok()? != REQUEST.len() {
        return None;
    }
    let mut len = 0;
    let mut rest = [0u8; 512];
    loop {
        let n = match buf.get_mut(len..).filter(|b| !b.is_empty()) {
            Some(room) => sys::read(fd, room).ok()?,
            None => sys::read(fd, &mut rest).ok()?, // more than we keep: drain it
        };
        if n == 0 {
            return Some(len);
        }
        if len < buf.len() {
            len += n;
        }
    }
}
