//! System calls per connection (`bench --syscalls`): a strategy once more, under
//! `strace -f -ttt`, with the same warm-up and the same load as a measured run. Only the calls
//! made while the load ran count; they are split between the server's first process (the
//! primary, or the parent of chapter 9's children) and all the others (its workers or
//! children), and divided by the connections accepted meanwhile (every `accept` or `accept4`
//! that returned one, whoever made it: each connection is accepted exactly once).
//!
//! strace slows every process down a great deal, so these runs are not timed, and they come
//! after the timed ones. Counts per connection change far less than speed does: a call made
//! once for every connection stays at 1. Calls that wait (`epoll_pwait`, `poll`) can differ
//! without strace, since how many connections one wake-up finds depends on speed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::servers::{RunningServer, Strategy};
use super::{BenchError, Plan, load};
use crate::helper::{self, Capture, ThisProgram};
use crate::strace::{parse, processes};

/// How often one kind of call was made while the load ran, in each part of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct SyscallCounts {
    pub strategy: Strategy,
    pub workers: u32,
    /// Connections accepted while the load ran.
    pub connections: u64,
    /// `accept4`, or `accept4 EAGAIN` for the calls that failed with `EAGAIN` → how many
    /// the first process made, and how many all the others made together.
    pub calls: BTreeMap<String, [u64; 2]>,
}

/// Calls rarer than this per connection are left out of the table (not out of the JSON).
pub(crate) const SHOWN_FROM: f64 = 0.05;

/// `None` if strace runs here and may trace; otherwise why not, in a few words.
pub(crate) fn missing_strace() -> Option<String> {
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-qq", "-o", "/dev/null", "-e", "trace=none", "true"]);
    match helper::run(&mut cmd, Capture::Both, Duration::from_secs(10)) {
        Ok(done) if done.status.success() => None,
        Ok(_) => Some("`strace` cannot trace here (is ptrace allowed?)".into()),
        Err(_) => Some("`strace` is not installed".into()),
    }
}

/// The worker count the calls are counted with: the plan's first that is 2 or more (one
/// worker has nobody to share with), or its first.
pub(crate) fn workers_for(plan: &Plan) -> u32 {
    let first = plan.workers.first().copied().unwrap_or(2);
    plan.workers
        .iter()
        .copied()
        .find(|&w| w >= 2)
        .unwrap_or(first)
}

/// A file name for strace's output that no other run uses.
fn trace_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    std::env::temp_dir().join(format!("cluster-walkthrough-bench-strace-{pid}-{n}.txt"))
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// ANCHOR: count
/// Run `strategy` with `workers` workers under strace, warm it up, load it for the plan's
/// duration, stop it, and count the calls made meanwhile.
pub(crate) fn count(
    plan: &Plan,
    program: &ThisProgram,
    strategy: Strategy,
    workers: u32,
) -> Result<SyscallCounts, BenchError> {
    let out = trace_path();
    let lifetime = plan.duration + super::WARM_UP_LIMIT_TRACED + Duration::from_secs(60);
    let started =
        RunningServer::start_traced(strategy, workers, plan.port, program, lifetime, &out);
    let run = started.and_then(|server| {
        let mut load = super::short_load(server.addr, plan.clients);
        super::warm_up(&load, strategy, workers, super::WARM_UP_LIMIT_TRACED).map_err(|why| {
            BenchError::Run {
                strategy: strategy.name(),
                workers,
                why,
            }
        })?;
        load.duration = plan.duration;
        let from = unix_secs(SystemTime::now());
        load::run(&load, crate::sys::interrupted);
        let to = unix_secs(SystemTime::now());
        drop(server); // stopped: strace has written every call
        Ok((from, to))
    });
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    let (from, to) = run?;
    if crate::sys::interrupted() {
        return Err(BenchError::Interrupted);
    }
    let text = text.map_err(|e| BenchError::Run {
        strategy: strategy.name(),
        workers,
        why: format!("cannot read strace's output: {e}"),
    })?;
    Ok(count_calls(&text, from, to, strategy, workers))
}
// ANCHOR_END: count

/// `PID SECONDS.MICROS rest` (or `SECONDS.MICROS rest` for the first process while it is
/// alone; strace pads the pid with spaces) → the time, and the line without it, as [`parse`]
/// reads it.
fn split_time(line: &str) -> Option<(f64, String)> {
    let (first, rest) = first_word(line);
    if first.contains('.') {
        return Some((first.parse().ok()?, rest.to_string()));
    }
    let (second, rest) = first_word(rest);
    Some((second.parse().ok()?, format!("{first} {rest}")))
}

/// The first word of `text`, and what follows it.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(' ').unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

/// Count what strace wrote (with `-f -ttt`): every call made from `from` to `to` (seconds
/// since 1970), in the first process or in any other.
pub(crate) fn count_calls(
    text: &str,
    from: f64,
    to: f64,
    strategy: Strategy,
    workers: u32,
) -> SyscallCounts {
    let mut all = String::new();
    let mut during = String::new();
    for (t, line) in text.lines().filter_map(split_time) {
        all.push_str(&line);
        all.push('\n');
        if (from..=to).contains(&t) {
            during.push_str(&line);
            during.push('\n');
        }
    }
    // Who is who comes from the whole trace: the forks were made before the load.
    let procs = processes(&parse(&all));
    let mut calls: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    let mut connections = 0;
    for call in parse(&during) {
        let side = usize::from(procs.process_of(call.tid) != procs.root);
        let key = match &call.result {
            Err(errno) if errno.starts_with('E') => format!("{} {errno}", call.name),
            _ => call.name.clone(),
        };
        if matches!(call.name.as_str(), "accept" | "accept4") && call.result.is_ok() {
            connections += 1;
        }
        calls.entry(key).or_default()[side] += 1;
    }
    SyscallCounts {
        strategy,
        workers,
        connections,
        calls,
    }
}

impl SyscallCounts {
    /// How the two parts of the server are called: a cluster's primary and workers, or a
    /// parent and its children.
    pub fn sides(&self) -> [&'static str; 2] {
        match self.strategy {
            Strategy::Prefork | Strategy::Reuseport | Strategy::Fork => ["parent", "children"],
            _ => ["primary", "workers"],
        }
    }

    /// Per connection, the calls made at least [`SHOWN_FROM`] times in either part, the
    /// most frequent first.
    pub fn per_connection(&self) -> Vec<(String, [f64; 2])> {
        let n = self.connections.max(1) as f64;
        let mut rows: Vec<(String, [f64; 2])> = self
            .calls
            .iter()
            .map(|(k, [a, b])| (k.clone(), [*a as f64 / n, *b as f64 / n]))
            .filter(|(_, [a, b])| a.max(*b) >= SHOWN_FROM)
            .collect();
        rows.sort_by(|(ka, a), (kb, b)| {
            (b[0] + b[1])
                .total_cmp(&(a[0] + a[1]))
                .then_with(|| ka.cmp(kb))
        });
        rows
    }

    pub fn to_json(&self) -> Value {
        let [first, others] = self.sides();
        let calls: serde_json::Map<String, Value> = self
            .calls
            .iter()
            .map(|(k, [a, b])| (k.clone(), json!({ first: a, others: b })))
            .collect();
        json!({
            "strategy": self.strategy.name(),
            "workers": self.workers,
            "connections": self.connections,
            "calls": calls,
        })
    }
}

/// The tables of system calls per connection, one per strategy, each line at most
/// [`super::report::WIDTH`] characters.
pub(crate) fn table(counts: &[SyscallCounts]) -> String {
    let mut t = String::new();
    let Some(first) = counts.first() else {
        return t;
    };
    let _ = writeln!(t, "System calls per connection,");
    let _ = writeln!(t, "{} workers, under strace -f", first.workers);
    let _ = writeln!(t, "(fewer than {SHOWN_FROM} left out)");
    for c in counts {
        let [first, others] = c.sides();
        let _ = writeln!(t);
        let _ = writeln!(t, "{}", c.strategy.label());
        let _ = writeln!(
            t,
            "{} connections",
            super::report::thousands(c.connections as f64)
        );
        let _ = writeln!(t, "{:<17}{first:>8}{others:>10}", "");
        for (name, [a, b]) in c.per_connection() {
            let _ = writeln!(t, "{name:<17}{:>8}{:>10}", per(a), per(b));
        }
    }
    t
}

fn per(x: f64) -> String {
    if x < 0.005 {
        "-".to_string()
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A primary (100) with a worker (101, one extra thread 102), as `strace -f -ttt` writes.
    const TRACE: &str = "\
1.000000 execve(\"/bin/x\", [\"x\"], 0x7ffc /* 9 vars */) = 0
100 2.000000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD) = 101
101 2.100000 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND) = 102
100 3.000000 accept4(3, NULL, NULL, SOCK_CLOEXEC) = 5
100 3.000100 sendmsg(6, {msg_name=NULL}, 0) = 60
100 3.000200 accept4(3, NULL, NULL, SOCK_CLOEXEC) = -1 EAGAIN (Resource temporarily unavailable)
101 3.000300 recvmsg(4, {msg_name=NULL}, 0) = 60
102 3.000400 futex(0x1, FUTEX_WAKE, 1) = 0
100 3.000500 close(5) = 0
100 3.000600 accept4(3, NULL, NULL, SOCK_CLOEXEC <unfinished ...>
101 3.000700 write(5, \"\", 80) = 80
100 3.000800 <... accept4 resumed>) = 7
100 9.000000 exit_group(0) = ?
";

    #[test]
    fn calls_are_counted_per_side_within_the_load() {
        let c = count_calls(TRACE, 2.5, 4.0, Strategy::Rr, 1);
        assert_eq!(c.connections, 2, "two accept4 that returned a connection");
        assert_eq!(c.calls["accept4"], [2, 0]);
        assert_eq!(c.calls["accept4 EAGAIN"], [1, 0]);
        assert_eq!(c.calls["recvmsg"], [0, 1]);
        assert_eq!(
            c.calls["futex"],
            [0, 1],
            "a worker's thread is the worker's"
        );
        assert!(!c.calls.contains_key("clone"), "before the load");
        assert!(!c.calls.contains_key("exit_group"), "after the load");
        let rows = c.per_connection();
        assert_eq!(rows[0], ("accept4".to_string(), [1.0, 0.0]));
        let text = table(&[c]);
        assert!(
            text.contains("accept4 EAGAIN       0.50         -"),
            "{text}"
        );
        for line in text.lines() {
            assert!(
                line.chars().count() <= super::super::report::WIDTH,
                "{line:?}"
            );
        }
    }

    #[test]
    fn times_come_off_each_line() {
        assert_eq!(
            split_time("100 3.5 close(5) = 0"),
            Some((3.5, "100 close(5) = 0".to_string()))
        );
        assert_eq!(
            split_time("3.5 close(5) = 0"),
            Some((3.5, "close(5) = 0".to_string()))
        );
        assert_eq!(
            split_time("2872  3.5 close(5) = 0"),
            Some((3.5, "2872 close(5) = 0".to_string())),
            "strace pads a short pid"
        );
        assert_eq!(split_time("garbage"), None);
    }
}
