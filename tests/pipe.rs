//! Path servers (`server.listen('/dir/app.sock')`, a unix socket: Node's "pipe") under our
//! primary: round robin and `SCHED_NONE`, our workers and real Node 20 and 24 workers
//! (`tests/node/pipe-worker.js`), the bytes on the wire against Node's own primary
//! (`tests/node/pipe-primary.js`), a stale socket file, `readableAll`/`writableAll`, abstract
//! names, and what the primary refuses. Every socket file lives in a temporary directory
//! removed afterwards. Without `node` (or `strace`, or `python3`) a test says so in one
//! `skipped:` line and passes.

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");
const LIMIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(name)
}

/// Who runs the workers: ours, or Node's `pipe-worker.js` with this Node binary.
#[derive(Clone, Copy)]
enum Workers<'a> {
    Ours,
    Node(&'a Path),
}

/// `lab --json --node MAJOR ARGS [--exec node pipe-worker.js]`: the summary and the run.
fn lab(major: u32, args: &[&str], workers: Workers<'_>) -> (Value, common::Run) {
    let mut cmd = Command::new(BIN);
    cmd.args(["lab", "--json", "--node", &major.to_string()])
        .args(args);
    if let Workers::Node(node) = workers {
        cmd.arg("--exec").arg(node).arg(script("pipe-worker.js"));
    }
    let run = common::run(cmd, LIMIT);
    let last = run.stdout.lines().last().unwrap_or("{}");
    let v: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    (v["summary"].clone(), run)
}

fn rotation(ids: &[u64]) -> Vec<Option<u64>> {
    ids.iter().copied().map(Some).collect()
}

fn who(workers: Workers<'_>) -> String {
    match workers {
        Workers::Ours => "our workers".into(),
        Workers::Node(n) => format!("{} workers", n.display()),
    }
}

#[test]
fn a_socket_file_round_robin_and_sched_none_our_workers_and_nodes() {
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for workers in [Workers::Ours, Workers::Node(&node)] {
            for policy in ["rr", "none"] {
                let dir = tempfile::tempdir().expect("tempdir");
                let sock = dir.path().join("app.sock");
                let path = sock.to_str().expect("a UTF-8 path");
                let args = ["--workers", "3", "--connections", "6", "--policy", policy];
                let (s, run) = lab(major, &[&args[..], &["--path", path]].concat(), workers);
                let what = format!("node {major}, {}, {policy}", who(workers));
                assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
                let answered = common::answered(&s);
                match policy {
                    "rr" => assert_eq!(answered, rotation(&[1, 2, 3, 1, 2, 3]), "{what}"),
                    _ => assert!(answered.iter().all(Option::is_some), "{what}: {answered:?}"),
                }
                for w in s["workers"].as_array().expect("workers") {
                    assert_eq!(w["paths"], serde_json::json!([path]), "{what}: {w}");
                    assert_eq!(w["exit"]["code"], 0, "{what}: {w}");
                }
                assert!(
                    !sock.exists(),
                    "{what}: the primary removed its socket file"
                );
            }
        }
    }
}

#[test]
fn without_a_directory_the_lab_makes_its_own_and_removes_it() {
    let (s, run) = lab(
        24,
        &["--workers", "2", "--connections", "2", "--path"],
        Workers::Ours,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(common::answered(&s), rotation(&[1, 2]));
    let path = s["workers"][0]["paths"][0].as_str().expect("a path");
    let dir = Path::new(path).parent().expect("a directory");
    assert!(path.ends_with("/app.sock"), "{path}");
    assert!(!dir.exists(), "{} is removed", dir.display());
}

/// The same lines, whichever primary: the primary's in order, the workers' (which
/// interleave) sorted; the temporary directory named `[DIR]`.
fn lines_of(trace: &str, dir: &Path) -> (Vec<String>, Vec<String>) {
    let dir = dir.to_str().expect("UTF-8");
    let lines: Vec<String> = wire::written_lines(trace)
        .into_iter()
        .map(|l| l.replace(dir, "[DIR]"))
        .collect();
    let primary = |l: &String| {
        l.contains(r#""errno":"#)
            || l.contains(r#""act":"newconn""#)
            || l.contains(r#""act":"disconnect""#)
    };
    let ours: Vec<String> = lines.iter().filter(|l| primary(l)).cloned().collect();
    let mut theirs: Vec<String> = lines.into_iter().filter(|l| !primary(l)).collect();
    theirs.sort();
    (ours, theirs)
}

#[test]
fn on_the_wire_our_primary_writes_what_nodes_writes() {
    if let Some(why) = cluster_walkthrough::strace::missing_tools() {
        eprintln!("skipped: {why} (needed to read both primaries' bytes)");
        return;
    }
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for policy in ["rr", "none"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let sock = dir.path().join("app.sock");
            let out = dir.path().join("node.strace");
            let args = [
                script("pipe-primary.js").into_os_string(),
                "2".into(),
                "4".into(),
            ];
            let mut cmd = wire::traced(&out, &node, &args);
            cmd.env("SOCKET_PATH", &sock)
                .env("NODE_CLUSTER_SCHED_POLICY", policy);
            let done = helper::run(&mut cmd, Capture::Both, LIMIT).expect("node's primary");
            assert!(done.status.success(), "{}", done.stderr);
            let theirs = lines_of(&std::fs::read_to_string(&out).expect("trace"), dir.path());

            let out = dir.path().join("ours.strace");
            let (major_s, sock_s) = (major.to_string(), sock.display().to_string());
            let args = [
                "lab",
                "--workers",
                "2",
                "--connections",
                "4",
                "--policy",
                policy,
                "--node",
                &major_s,
                "--path",
                &sock_s,
                "--exec",
            ];
            let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            args.extend([
                node.clone().into_os_string(),
                script("pipe-worker.js").into(),
            ]);
            let mut cmd = wire::traced(&out, BIN, &args);
            let done = helper::run(&mut cmd, Capture::Both, LIMIT).expect("our lab");
            assert!(done.status.success(), "{}", done.stderr);
            let ours = lines_of(&std::fs::read_to_string(&out).expect("trace"), dir.path());

            let what = format!("node {major}, {policy}");
            assert!(!ours.0.is_empty() && !ours.1.is_empty(), "{what}: {ours:?}");
            assert_eq!(ours.0, theirs.0, "{what}: the primary's lines");
            assert_eq!(ours.1, theirs.1, "{what}: the workers' lines");
            assert!(!sock.exists(), "{what}");
        }
    }
}

#[test]
fn a_stale_socket_file_is_eaddrinuse_for_every_worker_and_stays() {
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for workers in [Workers::Ours, Workers::Node(&node)] {
            for policy in ["rr", "none"] {
                let dir = tempfile::tempdir().expect("tempdir");
                let sock = dir.path().join("app.sock");
                std::fs::write(&sock, "left by someone").expect("a stale file");
                let path = sock.to_str().expect("UTF-8");
                let args = ["--workers", "2", "--policy", policy, "--path", path];
                let (s, run) = lab(major, &args, workers);
                let what = format!("node {major}, {}, {policy}", who(workers));
                assert_eq!(run.code, Some(1), "{what}: nobody listens");
                let text = format!("bind EADDRINUSE {path}");
                let seen = match workers {
                    Workers::Ours => s["errors"]
                        .as_array()
                        .expect("errors")
                        .iter()
                        .filter(|e| e["message"] == text.as_str() && e["port"] == -1)
                        .count(),
                    Workers::Node(_) => run.stderr.matches(&format!("Error: {text}\n")).count(),
                };
                assert_eq!(seen, 2, "{what}: {}\n{s}", run.stderr);
                let kept = std::fs::read_to_string(&sock).expect("still there");
                assert_eq!(kept, "left by someone", "{what}: never removed");
            }
        }
    }
}

/// Our lab with Node's pipe worker, serving; the socket file's mode while it serves.
fn mode_under_our_primary(node: &Path, major: u32, policy: &str, sock: &Path) -> String {
    let stdout = sock.with_file_name("lab.json");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "lab",
        "--json",
        "--workers",
        "2",
        "--serve",
        "60",
        "--policy",
        policy,
    ])
    .args([
        "--node",
        &major.to_string(),
        "--readable-all",
        "--writable-all",
        "--path",
    ])
    .arg(sock)
    .arg("--exec")
    .arg(node)
    .arg(script("pipe-worker.js"))
    .stdout(std::fs::File::create(&stdout).expect("lab.json"))
    .stderr(Stdio::null());
    let mut lab = helper::spawn(&mut cmd, Capture::Nothing).expect("the lab starts");
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_to_string(&stdout)
        .unwrap_or_default()
        .contains("serving on the unix socket")
    {
        assert!(Instant::now() < deadline, "the lab never served");
        assert!(
            matches!(lab.wait(Duration::ZERO), Ok(None)),
            "the lab ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sock)
        .expect("the socket file")
        .permissions()
        .mode();
    lab.stop(Duration::from_secs(10));
    format!("{:o}", mode & 0o777)
}

#[test]
fn readable_all_and_writable_all_leave_the_mode_nodes_primary_leaves() {
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for policy in ["rr", "none"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let sock = dir.path().join("app.sock");
            let mut cmd = Command::new(&node);
            cmd.arg(script("pipe-primary.js"))
                .args(["2", "0"])
                .env("SOCKET_PATH", &sock)
                .env("SOCKET_READABLE_ALL", "1")
                .env("SOCKET_WRITABLE_ALL", "1")
                .env("NODE_CLUSTER_SCHED_POLICY", policy);
            let run = common::run(cmd, LIMIT);
            let v: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
            let theirs = v["mode"].as_str().expect("a mode").to_string();
            let ours = mode_under_our_primary(&node, major, policy, &sock);
            assert_eq!(ours, theirs, "node {major}, {policy}");
            assert!(!sock.exists(), "node {major}, {policy}: removed");
        }
    }
}

#[test]
fn abstract_names_our_workers_and_nodes() {
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for workers in [Workers::Ours, Workers::Node(&node)] {
            for policy in ["rr", "none"] {
                let name = format!("@cw-test-{}-{major}-{policy}", std::process::id());
                let args = ["--workers", "2", "--connections", "4", "--policy", policy];
                let (s, run) = lab(major, &[&args[..], &["--path", &name]].concat(), workers);
                let what = format!("node {major}, {}, {policy}", who(workers));
                assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
                let answered = common::answered(&s);
                match policy {
                    "rr" => assert_eq!(answered, rotation(&[1, 2, 1, 2]), "{what}"),
                    _ => assert!(answered.iter().all(Option::is_some), "{what}: {answered:?}"),
                }
            }
        }
    }
}

#[test]
fn a_worker_gets_no_socket_file_outside_the_lab_s_directory() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_worker.py");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "lab",
        "--json",
        "--workers",
        "3",
        "--connections",
        "6",
        "--exec-workers",
        "2",
    ])
    .arg("--exec")
    .arg("python3")
    .arg(fake)
    .arg("pipe-outside");
    let run = common::run(cmd, LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let last = run.stdout.lines().last().unwrap_or("{}");
    let s = serde_json::from_str::<Value>(last).expect("JSON")["summary"].clone();
    let problems: Vec<&str> = s["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        problems,
        ["worker 2 refused: /tmp/cw-outside.sock: no socket files without lab --path"],
    );
    assert!(!Path::new("/tmp/cw-outside.sock").exists());
    assert_eq!(common::answered(&s), rotation(&[1, 2, 3, 1, 2, 3]));
}

/// The channel messages of a `--trace-wire` run, one per line: `who -> whom {json}`.
fn wire_text(stdout: &str) -> String {
    let wire: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "wire")
        .map(|e| {
            let who = e["process"].as_str().unwrap_or("");
            format!("{who} {}", e["text"].as_str().unwrap_or(""))
        })
        .collect();
    wire.join("\n")
}

#[test]
fn wire_snapshots_of_the_pipe_case() {
    for (name, policy, workers, connections) in [
        ("lab_wire_pipe_rr_2_workers", "rr", "2", "2"),
        ("lab_wire_pipe_none_1_worker", "none", "1", "1"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("app.sock");
        let path = sock.to_str().expect("UTF-8");
        let args = [
            "--workers",
            workers,
            "--connections",
            connections,
            "--policy",
            policy,
            "--trace-wire",
            "--path",
            path,
        ];
        let (_, run) = lab(24, &args, Workers::Ours);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let text = wire_text(&run.stdout);
        let dir = dir.path().to_str().expect("UTF-8");
        let text = text.replace(dir, "[DIR]");
        assert!(text.contains(r#""address":"[DIR]/app.sock","port":-1,"addressType":-1,"#));
        let mut s = common::settings();
        s.add_filter(r"\[fd \d+\]", "[fd N]");
        s.bind(|| insta::assert_snapshot!(name, text));
    }
}
