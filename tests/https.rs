//! An unmodified Node HTTPS app under our primary (`lab --exec node tests/node/https-worker.js`),
//! with Node 20 and 24: both workers answer over TLS, and the `data` each `queryServer` reply
//! carries is byte for byte what Node's own primary sends for the same app.
//!
//! A TLS server's `queryServer` carries its session ticket keys in `data`
//! (`tls.Server.prototype._getServerData`). Node's primary keeps the first worker's for the
//! key (`handle.data ||= message.data`) and sends it in every reply; each worker installs it
//! (`_setServerData`). The keys are random, so "the same bytes" is checked this way: both
//! primaries run under `strace` (`common/wire.rs`), every line any process wrote is read back, each worker's keys are named by whose query they came in
//! (`[keys of query 1]`), the port is blanked, and the replies must then be identical lines.
//!
//! The key pair is made for the test with `openssl` in a temporary directory, removed
//! afterwards. Without `openssl`, `node` or a working `strace`, each test prints one
//! `skipped:` line and passes.

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use cluster_walkthrough::strace;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");
const LIMIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(name)
}

/// A throwaway self-signed key and certificate for `localhost`, in a fresh temporary
/// directory (removed when it is dropped); `None`, with one `skipped:` line, without openssl.
fn tls_pair() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"));
    match helper::run(&mut cmd, Capture::Both, Duration::from_secs(30)) {
        Ok(done) if done.status.success() => Some(dir),
        _ => {
            eprintln!("skipped: `openssl` could not make a key pair (needed for an HTTPS app)");
            None
        }
    }
}

/// `strace` around `program args` (see [`wire::traced`]), with the key pair and the policy.
fn traced(
    out: &Path,
    program: &Path,
    args: &[&std::ffi::OsStr],
    tls: &Path,
    policy: &str,
) -> Command {
    let mut cmd = wire::traced(out, program, args);
    cmd.env("TLS_KEY", tls.join("key.pem"))
        .env("TLS_CERT", tls.join("cert.pem"))
        .env("NODE_CLUSTER_SCHED_POLICY", policy);
    cmd
}

/// The `queryServer` lines and the primary's replies to them, with each worker's ticket keys
/// named by the query they came in, and the port blanked.
fn queries_and_replies(lines: &[String]) -> (Vec<String>, Vec<String>) {
    let queries: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(r#""act":"queryServer""#))
        .collect();
    let keys: Vec<String> = queries
        .iter()
        .map(|q| {
            let v: Value = serde_json::from_str(q).expect("a query is JSON");
            let k = v["data"]["ticketKeys"]
                .as_str()
                .expect("a TLS query has ticket keys");
            assert_eq!(k.len(), 96, "48 bytes of keys, in hex: {q}");
            k.to_string()
        })
        .collect();
    let name = |line: &str| {
        let mut line = line.to_string();
        for (n, k) in keys.iter().enumerate() {
            line = line.replace(k, &format!("[keys of query {}]", n + 1));
        }
        let v: Value = serde_json::from_str(&line).expect("JSON");
        if let Some(port) = v["sockname"]["port"].as_u64() {
            line = line.replace(&format!(r#""port":{port}}}"#), r#""port":[PORT]}"#);
        }
        line
    };
    let replies = lines
        .iter()
        .filter(|l| l.contains(r#""errno":"#) && l.contains(r#""ack":"#))
        .map(|l| name(l))
        .collect();
    (queries.iter().map(|q| name(q)).collect(), replies)
}

/// Node's own primary (`tests/node/https-primary.js`), 2 workers, 4 requests: the answers and
/// every line written.
fn under_nodes_primary(node: &Path, tls: &Path, policy: &str) -> (Vec<String>, Vec<String>) {
    let out = tls.join("node-primary.strace");
    let args = [
        script("https-primary.js").into_os_string(),
        "2".into(),
        "4".into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut cmd = traced(&out, node, &args, tls, policy);
    let done = helper::run(&mut cmd, Capture::Both, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "{}", done.stderr);
    let v: Value = serde_json::from_str(done.stdout.trim()).expect("one JSON line");
    let answers = v["answers"].as_array().expect("answers");
    let answers = answers.iter().filter_map(|a| Some(a.as_str()?.to_string()));
    let trace = std::fs::read_to_string(&out).expect("strace's output");
    (answers.collect(), wire::written_lines(&trace))
}

/// The JSON lines the lab wrote to `path` so far.
fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Our primary (`lab --serve --exec node tests/node/https-worker.js`), 2 workers; a Node TLS
/// client asks until both have answered; then SIGTERM ends the lab. The answers and every
/// line written.
fn under_our_primary(
    node: &Path,
    major: u32,
    tls: &Path,
    policy: &str,
) -> (Vec<String>, Vec<String>) {
    let out = tls.join("our-primary.strace");
    let stdout = tls.join("lab.json");
    let args: Vec<std::ffi::OsString> = [
        "lab",
        "--json",
        "--workers",
        "2",
        "--serve",
        "60",
        "--node",
        &major.to_string(),
        "--exec",
    ]
    .iter()
    .map(Into::into)
    .chain([
        node.as_os_str().into(),
        script("https-worker.js").into_os_string(),
    ])
    .collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut cmd = traced(&out, Path::new(BIN), &args, tls, policy);
    cmd.stdout(std::fs::File::create(&stdout).expect("lab.json"))
        .stderr(Stdio::null());
    let mut lab = helper::spawn(&mut cmd, Capture::Nothing).expect("strace starts");
    let deadline = Instant::now() + LIMIT;
    let (primary, port) = loop {
        let lines = json_lines(&stdout);
        let serving = lines.iter().find_map(|v| {
            let text = v["text"].as_str()?;
            let rest = &text[text.find("http://127.0.0.1:")? + 17..];
            let port: u16 = rest[..rest.find('/')?].parse().ok()?;
            Some((v["pid"].as_u64()? as u32, port))
        });
        if let Some(found) = serving {
            break found;
        }
        assert!(Instant::now() < deadline, "the lab never served");
        assert!(
            matches!(lab.wait(Duration::ZERO), Ok(None)),
            "the lab ended early: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut client = Command::new("node");
    client
        .arg(script("https-get.js"))
        .args([port.to_string(), "2".into(), "10".into()]);
    let answers = helper::run(&mut client, Capture::Both, LIMIT).expect("the client runs");
    cluster_walkthrough::sys::kill(primary, cluster_walkthrough::sys::Signal::SIGTERM);
    let done = lab.finish(LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "the lab ends well on SIGTERM");
    let answers: Vec<String> = serde_json::from_str(answers.stdout.trim()).expect("answers");
    let trace = std::fs::read_to_string(&out).expect("strace's output");
    (answers, wire::written_lines(&trace))
}

fn workers_in(answers: &[String]) -> Vec<u32> {
    let mut ids: Vec<u32> = answers
        .iter()
        .filter_map(|a| cluster_walkthrough::http::answered_by(a))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Who answered: each worker once (round robin), or at least one of the two (SCHED_NONE:
/// whoever the kernel wakes).
fn assert_served(policy: &str, answers: &[String], who: &str) {
    let ids = workers_in(answers);
    match policy {
        "rr" => assert_eq!(ids, [1, 2], "{who}: {answers:?}"),
        _ => assert!(
            !ids.is_empty() && ids.iter().all(|id| [1, 2].contains(id)),
            "{who}: {answers:?}"
        ),
    }
}

#[test]
fn node_https_workers_get_the_first_workers_ticket_keys_as_from_nodes_primary() {
    if let Some(why) = strace::missing_tools() {
        eprintln!("skipped: {why} (needed to read both primaries' bytes)");
        return;
    }
    let Some(tls) = tls_pair() else { return };
    for major in [20, 24] {
        let Some(node) = common::node(major) else {
            continue;
        };
        for policy in ["rr", "none"] {
            let (answers, lines) = under_nodes_primary(&node, tls.path(), policy);
            assert_served(
                policy,
                &answers,
                &format!("node {major}'s primary, {policy}"),
            );
            let (node_queries, node_replies) = queries_and_replies(&lines);

            let (answers, lines) = under_our_primary(&node, major, tls.path(), policy);
            assert_served(policy, &answers, &format!("ours, node {major}, {policy}"));
            let (our_queries, our_replies) = queries_and_replies(&lines);

            // Each worker made keys of its own; both replies carry the first worker's.
            let first = r#""data":{"ticketKeys":"[keys of query 1]"}"#;
            assert_eq!(node_queries.len(), 2, "{node_queries:?}");
            assert!(
                node_queries[1].contains("[keys of query 2]"),
                "{node_queries:?}"
            );
            assert_eq!(node_replies.len(), 2, "{node_replies:?}");
            assert!(
                node_replies.iter().all(|r| r.contains(first)),
                "{node_replies:?}"
            );
            let what = format!("node {major}, {policy}");
            assert_eq!(our_queries, node_queries, "{what}: the same queries");
            assert_eq!(
                our_replies, node_replies,
                "{what}: the same replies, byte for byte"
            );
        }
    }
}
