//! A worker that answers a `newconn` with `NODE_HANDLE_NACK` (`tests/fake_worker.py nack`:
//! "the fd did not arrive"), under our primary and under real Node 20 and 24 primaries
//! (`tests/node/nack-primary.js`), checked to do the same: the `newconn` is sent once and
//! never again, no warning, the client left hanging (the primary keeps its copy of the
//! connection, waiting for an `{accepted}` that never comes), and the NACKing worker out of
//! the rotation for good (it is never idle again), while the others serve on.
//!
//! Node re-sends a NACKed handle (up to 3 times, then `SentHandleNotReceivedWarning`) only
//! when its type keeps a `_pendingMessage`: `net.Socket`, and `net.BoundSocket` from 24
//! (`closeHandleAfterAck` as `postSend`, `lib/internal/child_process.js` L97–110, L156, L214
//! at v24.22.3). The cluster sends `net.Native`, which has none.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

fn fake_worker() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_worker.py")
}

/// The lines the fake worker wrote about its NACK.
fn fake_says(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("fake worker:"))
        .collect()
}

/// What we expect of any primary: 1 answers, 2 NACKs (nobody answers), then 3 and 1 only.
const EXPECTED: [Option<u64>; 6] = [Some(1), None, Some(3), Some(1), Some(3), Some(1)];

#[test]
fn a_nacked_newconn_is_sent_once_without_a_warning_as_nodes_primary_does() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    // Ours: three workers, the second the fake one.
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args(["lab", "--json", "--workers", "3", "--connections", "6"])
        .args(["--exec-workers", "2", "--exec", "python3"])
        .arg(fake_worker())
        .arg("nack");
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let last = run.stdout.lines().last().unwrap_or("{}");
    let s = serde_json::from_str::<Value>(last).expect("JSON")["summary"].clone();
    assert_eq!(common::answered(&s), EXPECTED);
    assert_eq!(s["problems"], serde_json::json!([]), "no warning");
    let ours = fake_says(&run.stderr);
    assert_eq!(ours, ["fake worker: NACKed newconn seq 4"], "sent once");
    // The lab's client gives each request 5 s: the NACKed one used all of it, hanging.
    assert!(started.elapsed() >= Duration::from_secs(5));

    // Node's own primaries, the same app.
    for (node, major) in common::nodes(&[20, 24]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/nack-primary.js");
        let mut cmd = Command::new(node);
        cmd.arg(script).args(["6", "1500"]);
        let run = common::run(cmd, Duration::from_secs(60));
        assert_eq!(run.code, Some(0), "node {major}: {}", run.stderr);
        let v: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
        let answered: Vec<Option<u64>> = v["answered_by"]
            .as_array()
            .expect("answers")
            .iter()
            .map(Value::as_u64)
            .collect();
        assert_eq!(answered, EXPECTED, "node {major}");
        assert_eq!(
            v["warnings"],
            serde_json::json!([]),
            "node {major}: no warning"
        );
        assert_eq!(fake_says(&run.stderr), ours, "node {major}: the same, once");
    }
}
