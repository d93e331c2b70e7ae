//! Shared by the integration tests: run a program of ours with a time limit, and the
//! snapshot filters (pids, then ports, then paths, then timings).
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished program left behind.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Run `cmd` to completion, killing it (and failing the test) if it outlives `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("NODE_UNIQUE_ID")
        .env_remove("NODE_CHANNEL_FD")
        .env("NO_COLOR", "1");
    let mut child = cmd.spawn().expect("the program under test starts");
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait works") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not finish within {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        stdout: out_reader.join().expect("reader thread"),
        stderr: err_reader.join().expect("reader thread"),
        code: status.code(),
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
