//! Nothing a peer sends may crash the primary: a fake worker (tests/fake_worker.py) misbehaves
//! in one way per case; the primary says which worker did what, drops or ignores it as the
//! case deserves, and the other workers keep serving.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// The most memory the primary may use while one worker floods it: its peak resident set
/// (`VmHWM`). A debug build peaks near 30 MB under the floods below; before the bounds, the
/// replies to an `ack-flood` alone took it past 500 MB.
const PRIMARY_RSS_BOUND_KB: u64 = 100 * 1024;

/// Three workers, the second one fake, six connections. Returns the summary.
fn with_fake_worker(case: &str) -> Value {
    let cmd = fake_worker_lab(case);
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{case}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
    summary(&run.stdout)
}

/// The summary, from the last line of a `lab --json` run.
fn summary(stdout: &str) -> Value {
    let last = stdout.lines().last().expect("a summary");
    let v: Value = serde_json::from_str(last).expect("JSON");
    v["summary"].clone()
}

/// What a flood did to the primary: the run's summary, the primary's peak RSS, how long.
struct Flooded {
    summary: Value,
    peak_rss_kb: u64,
    took: Duration,
}

/// [`with_fake_worker`], watching the primary's peak resident set (`VmHWM` in
/// `/proc/<pid>/status`, a high-water mark, so sampling every 10 ms misses nothing but the
/// last few ms).
fn flood(case: &str, limit: Duration) -> Flooded {
    let start = Instant::now();
    let mut cmd = fake_worker_lab(case);
    cmd.env("NO_COLOR", "1");
    let mut lab = helper::spawn(&mut cmd, Capture::Both).expect("the lab starts");
    let status_file = format!("/proc/{}/status", lab.pid());
    let mut peak_rss_kb = 0;
    while lab.wait(Duration::from_millis(10)).expect("wait").is_none() {
        peak_rss_kb = peak_rss_kb.max(vm_hwm_kb(&status_file).unwrap_or(0));
        assert!(
            start.elapsed() < limit,
            "{case}: still running after {limit:?}"
        );
    }
    let took = start.elapsed();
    let done = lab.finish(Duration::from_secs(1)).expect("finished");
    assert!(done.status.success(), "{case}: {}", done.stderr);
    assert!(!done.stderr.contains("panicked"), "{case}: {}", done.stderr);
    Flooded {
        summary: summary(&done.stdout),
        peak_rss_kb,
        took,
    }
}

/// `VmHWM:   12345 kB` from a `/proc/<pid>/status`.
fn vm_hwm_kb(status_file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `lab --json` with three workers, the second one `tests/fake_worker.py CASE`.
fn fake_worker_lab(case: &str) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_worker.py");
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
    .arg(script)
    .arg(case);
    cmd
}

fn problems(s: &Value) -> Vec<String> {
    s["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

/// One case: the fake worker's mistake is reported once, naming worker 2, and the rotation
/// afterwards shows whether it was dropped (`1 3 1 3 ...`) or kept (`1 2 3 ...`).
fn assert_case(case: &str, expect: &str, rotation: &[u64]) {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    let s = with_fake_worker(case);
    let p = problems(&s);
    assert_eq!(p.len(), 1, "{case}: {p:?}");
    assert!(
        p[0].starts_with("worker 2 ") && p[0].contains(expect),
        "{case}: {p:?}"
    );
    let rotation: Vec<Option<u64>> = rotation.iter().copied().map(Some).collect();
    assert_eq!(common::answered(&s), rotation, "{case}");
}

/// The fake worker was dropped: the others served everything, in turn.
fn assert_dropped(case: &str, expect: &str) {
    assert_case(case, expect, &[1, 3, 1, 3, 1, 3]);
}

/// The fake worker's mistake was reported and ignored: it stays in the rotation.
fn assert_ignored(case: &str, expect: &str) {
    assert_case(case, expect, &[1, 2, 3, 1, 2, 3]);
}

#[test]
fn a_line_that_is_not_json() {
    assert_dropped(
        "not-json",
        "sent a line that is not JSON: \"hello, this is not json\"",
    );
}

#[test]
fn an_unknown_act() {
    assert_ignored("unknown-act", "unknown act \"frobnicate\"");
}

#[test]
fn an_unknown_internal_cmd() {
    assert_ignored("unknown-cmd", "unknown cmd \"NODE_SOMETHING_ELSE\"");
}

#[test]
fn a_reply_whose_ack_matches_nothing() {
    assert_ignored("stray-ack", "(ack 99999) that matches no request");
}

#[test]
fn a_node_handle_without_an_fd() {
    assert_ignored(
        "handle-without-fd",
        "NODE_HANDLE without a file descriptor; answered NACK",
    );
}

#[test]
fn fds_without_node_handle_lines() {
    // Fds that pile up on a line that never ends: more than a handle line could take.
    assert_dropped("stray-fds", "file descriptors without NODE_HANDLE lines");
}

#[test]
fn an_fd_on_a_plain_message_is_closed_at_once_and_reported() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    let run = common::run(fake_worker_lab("fd-on-message"), Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let s = summary(&run.stdout);
    assert_eq!(
        problems(&s),
        ["worker 2 sent a file descriptor with a message that is not NODE_HANDLE; closed it"]
    );
    assert_eq!(common::answered(&s), [1, 2, 3, 1, 2, 3].map(Some), "kept");
    // The worker kept the pipe's other end: a write failed, as nobody held the end it sent.
    assert!(
        run.stderr
            .contains("fake worker: the primary closed the fd it was sent"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_line_of_several_megabytes() {
    assert_dropped("huge-line", "a line longer than 1048576 bytes");
}

#[test]
fn a_line_that_never_ends() {
    assert_dropped("endless-line", "a line longer than 1048576 bytes");
}

#[test]
fn closing_in_the_middle_of_a_line() {
    assert_dropped(
        "mid-line-close",
        "closed the channel in the middle of a line",
    );
}

#[test]
fn a_bind_beyond_loopback_is_refused_with_eacces() {
    assert_ignored("any-address", "refused: 0.0.0.0 is beyond loopback");
}

#[test]
fn a_privileged_port_is_refused_with_eacces() {
    assert_ignored("privileged-port", "refused: port 80 is privileged");
}

#[test]
fn a_query_for_something_not_an_ip_is_never_widened() {
    assert_ignored(
        "path-address",
        "refused: \"/tmp/not-an-ip.sock\" is not an IP address",
    );
}

#[test]
fn a_query_flood_stops_at_the_per_worker_limit_and_the_others_keep_serving() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    let s = with_fake_worker("query-flood");
    let p = problems(&s);
    let refused = p
        .iter()
        .filter(|w| w.contains("refused: holds 64 servers"))
        .count();
    assert!(refused > 0 && refused == p.len(), "{p:?}");
    // 137 refusals (136 of the flood, and the honest query after it): six told, then a count.
    assert_eq!(p.len(), 7, "{p:?}");
    assert!(
        p[6].starts_with("worker 2: 137 problems of this kind in all"),
        "{p:?}"
    );
    let answered: Vec<Option<u64>> = common::answered(&s);
    assert!(
        answered.iter().all(|w| matches!(w, Some(1) | Some(3))) && answered.len() == 6,
        "the honest workers serve every connection: {answered:?}"
    );
}

#[test]
fn a_worker_that_never_reads_its_replies_is_dropped_and_memory_stays_bounded() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    // Up to 1M `exitedAfterDisconnect` (~66 MB), each answered with an `{ack}` it never reads.
    let f = flood("ack-flood", Duration::from_secs(30));
    let p = problems(&f.summary);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("worker 2 stopped reading its channel: ")
            && p[0].ends_with(" bytes queued; dropping it"),
        "{p:?}"
    );
    assert_eq!(
        common::answered(&f.summary),
        [1, 3, 1, 3, 1, 3].map(Some),
        "the other workers keep answering"
    );
    assert!(
        f.peak_rss_kb > 0 && f.peak_rss_kb < PRIMARY_RSS_BOUND_KB,
        "the primary peaked at {} kB",
        f.peak_rss_kb
    );
    assert!(f.took < Duration::from_secs(10), "took {:?}", f.took);
}

#[test]
fn a_flood_of_unknown_acts_is_counted_not_kept() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    let f = flood("act-flood", Duration::from_secs(30));
    let p = problems(&f.summary);
    // Five told, the sixth with the note, and the count when the worker goes.
    assert_eq!(p.len(), 7, "{p:?}");
    assert!(
        p[..6]
            .iter()
            .all(|w| w.starts_with("worker 2 sent an unknown act \"frobnicate-")),
        "{p:?}"
    );
    assert!(
        p[5].ends_with("(further problems of this kind from worker 2 are counted, not shown)"),
        "{p:?}"
    );
    assert!(
        p[6].starts_with("worker 2: 100000 problems of this kind in all, 6 shown; the first: "),
        "{p:?}"
    );
    assert_eq!(
        common::answered(&f.summary),
        [1, 2, 3, 1, 2, 3].map(Some),
        "the flooder is ignored, not dropped"
    );
    assert!(
        f.peak_rss_kb > 0 && f.peak_rss_kb < PRIMARY_RSS_BOUND_KB,
        "the primary peaked at {} kB",
        f.peak_rss_kb
    );
    assert!(f.took < Duration::from_secs(10), "took {:?}", f.took);
}

/// A lab that keeps serving (`--serve`) with one fake worker, `lab_args` added: running, and
/// past its setup (it said where it serves), so the primary can be looked at while it runs.
fn serving(case: &str, lab_args: &[&str]) -> helper::Running {
    serving_as(Command::new(BIN), case, lab_args)
}

/// [`serving`], started by `cmd` (this program, or `prlimit ... -- program`).
fn serving_as(mut cmd: Command, case: &str, lab_args: &[&str]) -> helper::Running {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_worker.py");
    cmd.args(["lab", "--json", "--no-syscalls", "--serve", "30"])
        .args(lab_args)
        .arg("--exec")
        .arg("python3")
        .arg(script)
        .arg(case)
        .env("NO_COLOR", "1");
    let lab = helper::spawn(&mut cmd, Capture::Both).expect("the lab starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab.stdout_so_far().contains("\"serving on ") {
        assert!(
            Instant::now() < deadline,
            "{case}: not serving after 15 s: {}",
            lab.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    lab
}

/// What the fds of process `pid` are (`/proc/<pid>/fd`): `socket:[N]`, `pipe:[N]`, paths.
fn fds_of(pid: u32) -> Vec<String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the primary runs");
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect()
}

/// End a [`serving`] lab as Ctrl-C would; it must stop its workers and exit 0, unpanicked.
/// Returns its summary.
fn stop_serving(lab: helper::Running) -> Value {
    cluster_walkthrough::sys::kill(lab.pid(), cluster_walkthrough::sys::Signal::SIGTERM);
    let done = lab.finish(Duration::from_secs(10)).expect("it stops");
    assert!(done.status.success(), "{}", done.stderr);
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    summary(&done.stdout)
}

#[test]
fn more_fds_than_a_read_has_room_for_are_all_closed() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    // Worker 2 sends five copies of a pipe's read end in one sendmsg; a read of the primary
    // has room for four (MSG_CTRUNC).
    let lab = serving("ctrunc", &["--workers", "3", "--exec-workers", "2"]);
    let said = lab.stderr_so_far();
    let pipe = said
        .lines()
        .find_map(|l| l.strip_prefix("fake worker: sends five copies of "))
        .expect("the fake worker names its pipe")
        .to_string();
    let held: Vec<String> = fds_of(lab.pid())
        .into_iter()
        .filter(|f| *f == pipe)
        .collect();
    assert!(held.is_empty(), "the primary still holds {held:?}");
    let s = stop_serving(lab);
    assert_eq!(
        problems(&s),
        [
            "worker 2 sent more file descriptors in one message than a read has room for \
          (MSG_CTRUNC); the ones that arrived were closed; dropping it"
        ]
    );
}

/// `MAX_UNDELIVERED` in `src/cluster/round_robin_handle.rs`: the most accepted connections
/// the primary keeps for a worker to take.
const MAX_UNDELIVERED: usize = 512;

#[test]
fn connections_no_worker_takes_wait_in_the_kernel_not_in_the_primary() {
    if !common::have("python3", "it runs the fake worker") {
        return;
    }
    // The only worker takes its first connection and never answers: it is busy for ever, so
    // every later connection waits in the primary's queue, up to the bound.
    let port = common::free_port();
    let lab = serving(
        "hold-conns",
        &[
            "--workers",
            "1",
            "--exec-workers",
            "1",
            "--port",
            &port.to_string(),
        ],
    );
    let before = fds_of(lab.pid()).len();
    // More clients than the bound; the kernel's backlog (511) takes the rest of them.
    let clients: Vec<TcpStream> = (0..MAX_UNDELIVERED + 64)
        .map(|_| {
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect")
        })
        .collect();
    // The one connection the worker holds, and the bound: no more.
    let most = before + 1 + MAX_UNDELIVERED;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds_of(lab.pid()).len() < most && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // time to take more, if it would
    let held = fds_of(lab.pid()).len();
    assert_eq!(
        held, most,
        "the primary holds {held} fds, {before} before the clients"
    );
    assert!(
        lab.stdout_so_far().contains(&format!(
            "{MAX_UNDELIVERED} connections accepted on 127.0.0.1:{port}"
        )),
        "the bound is told"
    );
    drop(clients);
    let s = stop_serving(lab);
    assert_eq!(problems(&s), Vec::<String>::new());
}

/// CPU time a process has used so far, in clock ticks (`utime + stime` of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the primary runs");
    let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn a_primary_out_of_fds_rests_its_socket_instead_of_spinning() {
    if !common::have("python3", "it runs the fake worker")
        || !common::have("prlimit", "it gives the lab a small fd limit")
    {
        return;
    }
    // 64 fds: far fewer than the queue's bound, so accept4 meets EMFILE first. The only
    // worker holds its first connection and never answers, so nothing frees an fd.
    let port = common::free_port();
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--", BIN]);
    let args = [
        "--workers",
        "1",
        "--exec-workers",
        "1",
        "--port",
        &port.to_string(),
    ];
    let lab = serving_as(cmd, "hold-conns", &args);
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.stdout_so_far().contains("accept4 EMFILE") {
        assert!(
            Instant::now() < deadline,
            "no EMFILE: {}",
            lab.stdout_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A socket left watched would wake every wait: a whole CPU second in this second.
    let before = cpu_ticks(lab.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(lab.pid()) - before;
    assert!(
        used < 30,
        "the primary used {used} ticks of CPU in one second"
    );
    drop(clients);
    let s = stop_serving(lab);
    assert_eq!(problems(&s), Vec::<String>::new());
}
