//! "EADDRINUSE with clustering": the lab's observable behaviour in every branch, read from its
//! `--json` output (one object per event, then a summary).

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

struct Lab {
    summary: Value,
    events: Vec<Value>,
    stderr: String,
}

fn lab(args: &[&str]) -> Lab {
    lab_exiting(args, 0)
}

/// A lab run that must end with `code` (1: no worker could listen).
fn lab_exiting(args: &[&str], code: i32) -> Lab {
    let mut cmd = Command::new(BIN);
    cmd.arg("lab").arg("--json").args(args);
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(code), "lab {args:?}: {}", run.stderr);
    let mut events: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary = events.pop().expect("a summary line")["summary"].clone();
    assert!(summary.is_object(), "the last line is the summary");
    Lab {
        summary,
        events,
        stderr: run.stderr,
    }
}

/// Pids and ports differ on every run: replace them, wherever they are.
fn scrub(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "pid" => *x = Value::from("[PID]"),
                    "port" => *x = Value::from("[PORT]"),
                    "ports" => *x = Value::from("[PORTS]"),
                    _ => scrub(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("addr").port().to_string()
}

fn workers(s: &Value) -> &Vec<Value> {
    s["workers"].as_array().expect("workers")
}

fn errors(s: &Value) -> Vec<&Value> {
    s["errors"].as_array().expect("errors").iter().collect()
}

#[test]
fn round_robin_4_workers_40_connections_strict_rotation() {
    let port = free_port();
    let l = lab(&[
        "--workers",
        "4",
        "--policy",
        "rr",
        "--port",
        &port,
        "--connections",
        "40",
    ]);
    let expected: Vec<Option<u64>> = (0..40).map(|i| Some(i % 4 + 1)).collect();
    assert_eq!(common::answered(&l.summary), expected);
    assert!(errors(&l.summary).is_empty());
    for w in workers(&l.summary) {
        assert_eq!(w["ports"][0].as_u64(), Some(port.parse().expect("port")));
        assert_eq!(w["exit"]["code"], 0);
    }
    let mut summary = l.summary.clone();
    scrub(&mut summary);
    let pretty = serde_json::to_string_pretty(&summary).expect("json");
    insta::assert_snapshot!("lab_rr_4_workers_40", pretty);
}

#[test]
fn sched_none_4_workers_40_connections_all_served() {
    let l = lab(&["--workers", "4", "--policy", "none", "--connections", "40"]);
    let a = common::answered(&l.summary);
    assert_eq!(a.len(), 40);
    assert!(
        a.iter().all(Option::is_some),
        "every connection answered: {a:?}"
    );
    let total: u64 = l.summary["counts"]
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 40);
    assert!(errors(&l.summary).is_empty());
}

#[test]
fn the_env_variable_chooses_the_policy_as_node_reads_it() {
    for (value, policy) in [("none", "none"), ("rr", "rr"), ("foo", "rr")] {
        let mut cmd = Command::new(BIN);
        cmd.args(["lab", "--json", "--workers", "1"])
            .env("NODE_CLUSTER_SCHED_POLICY", value);
        let run = common::run(cmd, Duration::from_secs(30));
        let last: Value =
            serde_json::from_str(run.stdout.lines().last().expect("summary")).expect("JSON");
        assert_eq!(
            last["summary"]["policy"], policy,
            "NODE_CLUSTER_SCHED_POLICY={value}"
        );
    }
}

#[test]
fn exclusive_one_winner_and_node_error_text_for_the_rest() {
    let port = free_port();
    let l = lab(&["--workers", "4", "--exclusive", "--port", &port]);
    let listening: Vec<&Value> = workers(&l.summary)
        .iter()
        .filter(|w| !w["ports"].as_array().expect("ports").is_empty())
        .collect();
    assert_eq!(listening.len(), 1, "exactly one winner");
    let errs = errors(&l.summary);
    assert_eq!(errs.len(), 3);
    for e in errs {
        assert_eq!(
            e["message"],
            format!("listen EADDRINUSE: address already in use 127.0.0.1:{port}")
        );
        assert_eq!(e["code"], "EADDRINUSE");
        assert_eq!(e["syscall"], "listen");
        assert_eq!(e["errno"], -98);
    }
    let query_servers = l
        .events
        .iter()
        .filter(|e| {
            e["text"]
                .as_str()
                .is_some_and(|t| t.contains("queryServer"))
        })
        .count();
    assert_eq!(query_servers, 0, "exclusive never asks the primary");
}

#[test]
fn primary_bind_failure_reaches_every_worker_as_bind_eaddrinuse() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().expect("addr").port().to_string();
    for policy in ["rr", "none"] {
        let args = [
            "--workers",
            "3",
            "--policy",
            policy,
            "--port",
            &port,
            "--handle-errors",
        ];
        let l = lab_exiting(&args, 1);
        assert_eq!(
            l.stderr.trim(),
            format!("error: no worker could listen (bind EADDRINUSE 127.0.0.1:{port})")
        );
        let errs = errors(&l.summary);
        assert_eq!(errs.len(), 3, "{policy}: every worker fails");
        for e in errs {
            assert_eq!(e["message"], format!("bind EADDRINUSE 127.0.0.1:{port}"));
            assert_eq!(e["syscall"], "bind");
            assert_eq!(e["errno"], -98);
        }
        let binds = l
            .events
            .iter()
            .filter(|e| e["call"].as_str().is_some_and(|c| c.starts_with("bind(")))
            .count();
        let expected = if policy == "rr" { 3 } else { 1 };
        assert_eq!(binds, expected, "{policy}: the primary's binds");
    }
}

#[test]
fn port_0_two_servers_per_worker_share_two_ports() {
    let l = lab(&["--workers", "3", "--servers-per-worker", "2", "--port", "0"]);
    let ports: Vec<Vec<u64>> = workers(&l.summary)
        .iter()
        .map(|w| {
            w["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .filter_map(Value::as_u64)
                .collect()
        })
        .collect();
    assert_eq!(ports[0].len(), 2);
    assert_ne!(ports[0][0], ports[0][1], "a worker's two servers differ");
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "all workers share both: {ports:?}"
    );
}

#[test]
fn two_servers_on_one_fixed_port_in_one_worker() {
    let port = free_port();
    let l = lab(&[
        "--workers",
        "1",
        "--servers-per-worker",
        "2",
        "--port",
        &port,
        "--handle-errors",
    ]);
    let errs = errors(&l.summary);
    assert_eq!(
        errs.len(),
        1,
        "index 1 is a second key: a second bind, which fails"
    );
    assert_eq!(
        errs[0]["message"],
        format!("bind EADDRINUSE 127.0.0.1:{port}")
    );
}

#[test]
fn udp_exclusive_loser_gets_bind_eaddrinuse() {
    let port = free_port();
    let args = [
        "--workers",
        "2",
        "--udp",
        "--exclusive",
        "--port",
        &port,
        "--handle-errors",
    ];
    let l = lab(&args);
    let errs = errors(&l.summary);
    assert_eq!(errs.len(), 1, "one winner, one loser");
    assert_eq!(
        errs[0]["message"],
        format!("bind EADDRINUSE 127.0.0.1:{port}")
    );
    assert_eq!(errs[0]["syscall"], "bind");
    assert_eq!(errs[0]["errno"], -98);
}

#[test]
fn udp_workers_share_one_port() {
    let l = lab(&["--workers", "3", "--udp", "--connections", "9"]);
    let ports: Vec<u64> = workers(&l.summary)
        .iter()
        .filter_map(|w| w["ports"][0].as_u64())
        .collect();
    assert_eq!(ports.len(), 3);
    assert!(ports.iter().all(|p| *p == ports[0]));
    assert!(common::answered(&l.summary).iter().all(Option::is_some));
}

#[test]
fn a_udp_port_in_use_ends_the_lab_at_once_with_bind_eaddrinuse() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").expect("hold a UDP port");
    let port = holder.local_addr().expect("addr").port().to_string();
    for handled in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args(["lab", "--json", "--workers", "2", "--udp", "--port", &port])
            .args(["--connections", "1"]);
        if handled {
            cmd.arg("--handle-errors");
        }
        let start = std::time::Instant::now();
        let run = common::run(cmd, Duration::from_secs(30));
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "handled {handled}: took {took:?}"
        );
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            !run.stderr.contains("did not finish starting"),
            "{}",
            run.stderr
        );
        let errors: Vec<Value> = run
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "error")
            .collect();
        assert_eq!(errors.len(), 2, "handled {handled}: every worker fails");
        for e in errors {
            // dgram's `ExceptionWithHostPort`: no colon after the code, no text.
            assert_eq!(e["message"], format!("bind EADDRINUSE 127.0.0.1:{port}"));
            assert_eq!(e["syscall"], "bind");
            assert_eq!(e["errno"], -98);
        }
    }
}

#[test]
fn a_sigkilled_worker_leaves_the_rotation_and_the_rest_keep_serving() {
    let l = lab(&[
        "--workers",
        "3",
        "--connections",
        "9",
        "--kill-worker",
        "2",
        "--after",
        "3",
    ]);
    let a = common::answered(&l.summary);
    assert!(a.iter().all(Option::is_some), "{a:?}");
    assert!(
        a[3..].iter().all(|w| *w != Some(2)),
        "worker 2 gone after 3: {a:?}"
    );
    let w2 = &workers(&l.summary)[1];
    assert_eq!(w2["exit"]["signal"], "SIGKILL");
}

/// The channel messages of a `--trace-wire` run, one per line: `who -> whom {json}`.
fn wire_text(l: &Lab) -> String {
    let wire: Vec<String> = l
        .events
        .iter()
        .filter(|e| e["event"] == "wire")
        .map(|e| {
            let who = e["process"].as_str().unwrap_or("");
            format!("{who} {}", e["text"].as_str().unwrap_or(""))
        })
        .collect();
    wire.join("\n")
}

/// `text` (a [`wire_text`]) with the lines the appendix shows before its fold marked
/// (`trace::mark_line`): Node's messages, not the lab's own `{"lab":...}`, up to the first
/// connection's `accepted`. Both workers' start-up and one connection show every rule the
/// appendix checks but the numbering of the later `newconn`s and `disconnect`s.
fn mark_start_and_first_connection(text: &str) -> String {
    let mut answered = false;
    let lines = text.lines().map(|line| {
        let nodes = !line.contains(r#"{"lab":"#);
        let shown = nodes && !answered;
        answered |= line.contains(r#""accepted":true"#);
        match shown {
            true => cluster_walkthrough::trace::mark_line(line),
            false => line.to_string(),
        }
    });
    lines.collect::<Vec<_>>().join("\n")
}

fn snapshot_wire(name: &str, text: &str) {
    let mut s = common::settings();
    s.add_filter(r"\[fd \d+\]", "[fd N]");
    s.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn wire_messages_have_nodes_exact_shape() {
    let l = lab(&["--workers", "2", "--connections", "2", "--trace-wire"]);
    let text = wire_text(&l);
    for shape in [
        r#"worker 1 -> primary {"cmd":"NODE_CLUSTER","act":"online","seq":0}"#,
        r#"worker 1 -> primary {"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":0,"addressType":4,"flags":0,"backlog":0,"seq":1}"#,
        r#"worker 1 -> primary {"cmd":"NODE_HANDLE_ACK"}"#,
    ] {
        assert!(text.contains(shape), "missing {shape} in\n{text}");
    }
    snapshot_wire(
        "lab_wire_rr_2_workers",
        &mark_start_and_first_connection(&text),
    );
}

/// The other message kinds, each from a real run: the shared socket (SCHED_NONE), UDP, and
/// the answer to a bind that failed in the primary.
#[test]
fn wire_messages_of_the_other_branches() {
    let none = lab(&[
        "--workers",
        "1",
        "--policy",
        "none",
        "--connections",
        "1",
        "--trace-wire",
    ]);
    let text = wire_text(&none);
    assert!(text.contains(
        r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"#
    ));
    snapshot_wire("lab_wire_none_1_worker", &text);

    let udp = lab(&[
        "--workers",
        "1",
        "--udp",
        "--connections",
        "1",
        "--trace-wire",
    ]);
    let text = wire_text(&udp);
    assert!(text.contains(r#""addressType":"udp4","fd":-1,"flags":0,"seq":1}"#));
    assert!(text.contains(r#"{"cmd":"NODE_HANDLE","type":"dgram.Native","#));
    snapshot_wire("lab_wire_udp_1_worker", &text);

    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().expect("addr").port().to_string();
    let args = [
        "--workers",
        "1",
        "--port",
        &port,
        "--handle-errors",
        "--trace-wire",
    ];
    let failed = lab_exiting(&args, 1);
    let text = wire_text(&failed);
    assert!(text.contains(r#"{"cmd":"NODE_CLUSTER","errno":-98,"key":"127.0.0.1:"#));
    snapshot_wire("lab_wire_bind_failure", &text);
}

/// A port another program holds: the lab's last line says why nobody listens, not only that.
#[test]
fn a_taken_port_ends_the_lab_with_the_reason() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port().to_string();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cluster-walkthrough"));
    cmd.args([
        "lab",
        "--workers",
        "1",
        "--connections",
        "1",
        "--no-syscalls",
        "--port",
        &port,
    ]);
    let run = common::run(cmd, std::time::Duration::from_secs(30));
    assert_ne!(run.code, Some(0));
    let want = format!("(first error: bind EADDRINUSE 127.0.0.1:{port})");
    assert!(run.stderr.contains(&want), "stderr: {}", run.stderr);
}
