//! Nothing is left behind: workers end with their primary however it ends, the primary's fd
//! count does not grow, a worker holds only stdio and its channel, and Ctrl-C stops it all.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// A `lab --json --serve` run, read line by line as it goes; killed and reaped on drop.
struct Serving {
    child: Child,
    lines: Receiver<Value>,
    primary: u32,
    workers: Vec<u32>,
    target: String,
}

impl Serving {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut cmd = Command::new(BIN);
        cmd.args(["lab", "--json", "--serve"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().expect("the lab starts");
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut s = Serving {
            child,
            lines: rx,
            primary: 0,
            workers: Vec::new(),
            target: String::new(),
        };
        s.read_until(|v, s| {
            let pid = v["pid"].as_u64().unwrap_or(0) as u32;
            let who = v["process"].as_str().unwrap_or("");
            if who == "primary" {
                s.primary = pid;
            } else if who.starts_with("worker ") && !s.workers.contains(&pid) {
                s.workers.push(pid);
            }
            let text = v["text"].as_str().unwrap_or("");
            if let Some(at) = text.find("http://") {
                let rest = &text[at + 7..];
                s.target = rest[..rest.find('/').unwrap_or(rest.len())].to_string();
                return true;
            }
            false
        });
        s
    }

    /// Read events until `stop` says so (at most 10 s).
    fn read_until(&mut self, mut stop: impl FnMut(&Value, &mut Serving) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100))
                && stop(&v, self)
            {
                return;
            }
        }
        panic!("the lab did not get there within 10 s");
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Running: the process exists and is not a zombie (an exited child waiting for its reaper).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// The fds a process holds, leaving out its event loop's own epoll instance (bookkeeping,
/// not a file or a socket: `sys::Epoll` keeps it at 100 or above).
fn fds(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path())
                .map_or(true, |l| l.to_string_lossy() != "anon_inode:[eventpoll]")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The fds of `pid` once `settled` says they are as expected, or as they are after 5 s.
fn fds_once(pid: u32, settled: impl Fn(&Vec<u32>) -> bool) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = fds(pid);
        if settled(&now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn all_gone_within(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !pids.iter().any(|&p| running(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn get(target: &str) -> String {
    let addr = target.parse().expect("an address");
    cluster_walkthrough::http::get(addr, Duration::from_secs(2)).unwrap_or_default()
}

#[test]
fn no_orphans_whichever_way_the_primary_ends() {
    for how in ["SIGINT", "SIGTERM", "SIGKILL", "panic"] {
        let env: &[(&str, &str)] = match how {
            "panic" => &[("CLUSTER_WALKTHROUGH_TEST_PANIC", "1")],
            _ => &[],
        };
        let mut s = Serving::start(&["--workers", "3"], env);
        assert_eq!(s.workers.len(), 3, "{how}: three workers started");
        let signal = match how {
            "SIGINT" => Some(Signal::SIGINT),
            "SIGTERM" => Some(Signal::SIGTERM),
            "SIGKILL" => Some(Signal::SIGKILL),
            _ => None,
        };
        if let Some(sig) = signal {
            kill(Pid::from_raw(s.primary as i32), sig).expect("signal the primary");
        }
        assert!(
            s.wait_exit(Duration::from_secs(5)).is_some(),
            "{how}: the primary exits"
        );
        assert!(
            all_gone_within(&s.workers, Duration::from_secs(1)),
            "{how}: every worker is gone within a second"
        );
    }
}

/// The children of `pid` (`/proc/PID/task/PID/children`).
fn children(pid: u32) -> Vec<u32> {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    let list = list.unwrap_or_default();
    list.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What `tests/node/exit-note-worker.js` noted about how it ended, per worker id.
fn notes(dir: &std::path::Path) -> Vec<String> {
    (1..=2)
        .map(|id| std::fs::read_to_string(dir.join(format!("worker-{id}"))).unwrap_or_default())
        .collect()
}

/// SIGKILL the primary `pid` and check that its Node workers left as Node's do: each saw
/// `'disconnect'` and exited 0, running its `'exit'` handler, and none is left.
fn kill_and_read_notes(primary: u32, dir: &std::path::Path, what: &str) {
    let workers = children(primary);
    assert_eq!(workers.len(), 2, "{what}: two workers");
    kill(Pid::from_raw(primary as i32), Signal::SIGKILL).expect("kill the primary");
    assert!(
        all_gone_within(&workers, Duration::from_secs(3)),
        "{what}: the workers leave"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let want = vec!["disconnect\nexit 0\n".to_string(); 2];
    while notes(dir) != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(notes(dir), want, "{what}");
}

/// When the primary dies, a Node worker sees the end of its channel and leaves on it:
/// `'disconnect'`, then `exit(0)` and its `'exit'` handlers. Under our primary as under
/// Node's own (20 and 24): no parent-death signal kills it first.
#[test]
fn node_workers_of_a_killed_primary_leave_as_under_nodes_own() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (node, major) in common::nodes(&[20, 24]) {
        let worker = root.join("tests/node/exit-note-worker.js");
        let dir = tempfile::tempdir().expect("tempdir");
        let notes_dir = dir.path().to_str().expect("UTF-8");
        let (node_s, worker_s, major_s) = (
            node.to_str().expect("UTF-8"),
            worker.to_str().expect("UTF-8"),
            major.to_string(),
        );
        let args = [
            "--workers",
            "2",
            "--node",
            &major_s,
            "--exec",
            node_s,
            worker_s,
        ];
        let mut s = Serving::start(&args, &[("NOTES_DIR", notes_dir)]);
        kill_and_read_notes(s.primary, dir.path(), &format!("ours, node {major}"));
        assert!(s.wait_exit(Duration::from_secs(5)).is_some());

        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(&node);
        cmd.arg(root.join("tests/node/exit-note-primary.js"))
            .env("NOTES_DIR", dir.path());
        let primary = helper::spawn(&mut cmd, Capture::Stdout).expect("node's primary");
        assert_eq!(
            primary.first_line(Duration::from_secs(20)).as_deref(),
            Some("ready")
        );
        kill_and_read_notes(primary.pid(), dir.path(), &format!("node {major}'s own"));
    }
}

#[test]
fn the_primary_does_not_leak_fds() {
    let mut s = Serving::start(&["--workers", "2"], &[]);
    let before = fds(s.primary);
    for _ in 0..10_000 {
        assert!(
            get(&s.target).contains("worker "),
            "every request is answered"
        );
    }
    // The primary closes its copy of a connection when the worker's `{accepted}` arrives,
    // which can be after the client has its answer: wait for the baseline, with a deadline.
    assert_eq!(
        fds_once(s.primary, |now| *now == before),
        before,
        "same fds after 10,000 round-robin connections"
    );

    // A worker goes: exactly its channel goes with it.
    let victim = s.workers[1];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).expect("kill a worker");
    s.read_until(|v, _| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("exited (signal SIGKILL)"))
    });
    assert_eq!(
        fds_once(s.primary, |now| now.len() == before.len() - 1).len(),
        before.len() - 1,
        "the dead worker's channel is closed"
    );
    assert!(
        get(&s.target).contains("worker 1"),
        "the other worker still serves"
    );
    kill(Pid::from_raw(s.primary as i32), Signal::SIGTERM).expect("stop");
    assert!(
        s.wait_exit(Duration::from_secs(5))
            .is_some_and(|st| st.success())
    );
}

#[test]
fn a_worker_holds_only_stdio_and_its_channel() {
    let s = Serving::start(&["--workers", "2"], &[]);
    for &w in &s.workers {
        assert_eq!(
            fds(w),
            vec![0, 1, 2, 3],
            "round robin: worker {w} has no socket of its own"
        );
    }
    drop(s);
    let s = Serving::start(&["--workers", "2", "--policy", "none"], &[]);
    for &w in &s.workers {
        assert_eq!(
            fds(w),
            vec![0, 1, 2, 3, 4],
            "SCHED_NONE: plus the shared socket"
        );
    }
}

#[test]
fn the_channel_is_an_af_unix_socketpair() {
    let s = Serving::start(&["--workers", "1"], &[]);
    let link = std::fs::read_link(format!("/proc/{}/fd/3", s.workers[0])).expect("fd 3");
    let link = link.to_string_lossy();
    let inode = link
        .strip_prefix("socket:[")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("fd 3 is not a socket: {link}"));
    // /proc/net/unix lists every AF_UNIX socket by inode; a pair has no path.
    let unix = std::fs::read_to_string("/proc/net/unix").expect("/proc/net/unix");
    let row = unix
        .lines()
        .find(|l| l.split_whitespace().nth(6) == Some(inode))
        .unwrap_or_else(|| panic!("socket {inode} is not AF_UNIX"));
    assert_eq!(
        row.split_whitespace().count(),
        7,
        "no path: a socketpair, not a listener"
    );
}

#[test]
fn ctrl_c_during_the_tour_stops_everything() {
    let mut cmd = Command::new(BIN);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("the tour starts");
    std::thread::sleep(Duration::from_millis(60));
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGINT); // what a terminal does on Ctrl-C
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "the tour stops within 5 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Either it had finished already, or it says so in one line and exits 130.
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut err)
            .expect("stderr");
        assert_eq!(status.code(), Some(130), "stderr: {err}");
        assert_eq!(err.trim(), "tour interrupted");
    }
    let left = group_members(child.id());
    assert!(
        all_gone_within(&left, Duration::from_secs(1)),
        "nothing of the tour remains: {left:?}"
    );
}

/// Every process whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) {
            v.push(pid);
        }
    }
    v
}
