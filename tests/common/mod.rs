//! Shared by the integration tests: run a program of ours with a time limit, and the
//! snapshot filters (pids, then ports, then paths, then timings).
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};

mod nodes;
#[allow(unused_imports)] // each test binary uses what it needs
pub use nodes::{node, nodes};

/// What a finished program left behind.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Run `cmd` to completion, killing it (and failing the test) if it outlives `limit`. It
/// runs as the program's own helpers do (`cluster_walkthrough::helper`): no stdin, and it
/// dies with the test.
pub fn run(mut cmd: Command, limit: Duration) -> Run {
    cmd.env("NO_COLOR", "1");
    match helper::run(&mut cmd, Capture::Both, limit) {
        Ok(done) => Run {
            stdout: done.stdout,
            stderr: done.stderr,
            code: done.status.code(),
        },
        Err(e) => panic!("{e}"),
    }
}

/// A chapter program by its binary name, with a 60 s limit.
pub fn chapter(bin: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run(cmd, Duration::from_secs(60))
}

/// Insta settings with our filters, in the house order: pids, ports, paths, timings.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"pid \d+", "pid [PID]");
    s.add_filter(r#""pid":\d+"#, r#""pid":"[PID]""#);
    // Port 0 stays: `0.0.0.0:0` is what an unbound socket reports, and chapter 7 shows it.
    s.add_filter(r"(127\.0\.0\.1|\[::1\]|0\.0\.0\.0):[1-9]\d*", "$1:[PORT]");
    s.add_filter(r"port: [1-9]\d*", "port: [PORT]");
    s.add_filter(r"\(port \d+\)", "(port [PORT])");
    s.add_filter(r#""ports":\[[\d,]*\]"#, r#""ports":[PORTS]"#);
    s.add_filter(r#""port":[1-9]\d*"#, r#""port":"[PORT]""#);
    s.add_filter(r"(\d+\.)?\d+ ?(ms|µs|s)\b", "[TIME]");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

/// The part of a chapter's output under the heading that starts with `title`, up to the next
/// blank-line-separated heading.
pub fn section(out: &str, title: &str) -> String {
    let start = out
        .find(title)
        .unwrap_or_else(|| panic!("no section {title:?} in:\n{out}"));
    let rest = &out[start..];
    let end = rest.find("\n\n").map(|i| i + 1).unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Whether `tool --version` runs. When it does not, say in one line which test is skipped
/// and why (`.ci/run` installs the tools, so CI never skips).
pub fn have(tool: &str, why: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: `{tool}` is not installed ({why})");
    }
    ok
}

/// A lab summary's `answered_by`: who answered each connection (`None`: nobody).
pub fn answered(summary: &serde_json::Value) -> Vec<Option<u64>> {
    summary["answered_by"]
        .as_array()
        .expect("answered_by")
        .iter()
        .map(serde_json::Value::as_u64)
        .collect()
}

/// A lab summary's ports, per worker.
pub fn ports(summary: &serde_json::Value) -> Vec<Vec<u64>> {
    summary["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            let ports = w["ports"].as_array().expect("ports");
            ports.iter().filter_map(serde_json::Value::as_u64).collect()
        })
        .collect()
}

/// Every process a test run started carries this in its environment (with a value of the
/// test's own), so that what it left behind can be found.
pub const MARK: &str = "CLUSTER_WALKTHROUGH_TEST_MARK";

/// Processes still alive with `MARK=value` in their environment, after giving the last ones
/// killed (at most 2 s) to go. A zombie's environment is empty: a dead process that nobody
/// has reaped yet is not left behind.
pub fn marked_processes(value: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<String> = marked_once(value).into_iter().map(|p| p.cmdline).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process found by its mark.
pub struct Marked {
    pub pid: u32,
    /// Its command line, words joined by spaces.
    pub cmdline: String,
}

/// The processes alive right now with `MARK=value` in their environment.
pub fn marked_once(value: &str) -> Vec<Marked> {
    let needle = format!("{MARK}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_string_lossy().parse::<u32>().ok()?, e)))
        .filter(|(_, e)| {
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
        })
        .map(|(pid, e)| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            Marked {
                pid,
                cmdline: words.join(" "),
            }
        })
        .collect()
}

/// A port free on 127.0.0.1 right now (the kernel picks it; the listener is closed at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}
