//! The benchmark (chapter 11): its statistics, its report's arithmetic, and a tiny bounded
//! run end to end. No assertion here is about speed: the numbers belong to the machine.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use cluster_walkthrough::bench::report::{Machine, Report, WIDTH};
use cluster_walkthrough::bench::servers::Strategy;
use cluster_walkthrough::bench::{Plan, RunResult, stats};
use serde_json::Value;

use common::{MARK, marked_processes};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

#[test]
fn percentiles_are_nearest_rank() {
    let mut v: Vec<u32> = (1..=1000).rev().collect();
    let l = stats::latency(&mut v);
    assert_eq!(l.p50_us, Some(500));
    assert_eq!(l.p99_us, Some(990));
    assert_eq!(stats::percentile(&[5, 9], 50.0), Some(5));
    assert_eq!(stats::percentile(&[5, 9], 51.0), Some(9));
    assert_eq!(stats::latency(&mut []).p99_us, None);
}

#[test]
fn fairness_is_shares_and_max_over_min() {
    let f = stats::fairness(&[600, 200, 200]);
    assert_eq!(f.shares, vec![0.6, 0.2, 0.2]);
    assert_eq!(f.max_min, Some(3.0));
    assert_eq!(
        stats::fairness(&[10, 0]).max_min,
        None,
        "an idle worker: infinite"
    );
}

fn result(strategy: Strategy, workers: u32, round: u32, conn_per_s: f64) -> RunResult {
    let counts = vec![10; workers as usize];
    RunResult {
        strategy,
        workers,
        round,
        connections: 10 * u64::from(workers),
        errors: 0,
        conn_per_s,
        latency: stats::Latency {
            p50_us: Some(100),
            p99_us: Some(400),
        },
        fairness: Some(stats::fairness(&counts)),
        counts,
        primary_cpu_us: None,
        server_cpu_us: None,
        client_cpu_us: None,
    }
}

fn plan(strategies: Vec<Strategy>, rounds: u32) -> Plan {
    Plan {
        workers: vec![2],
        clients: 4,
        duration: Duration::from_millis(100),
        rounds,
        strategies,
        port: 0,
        node: None,
        syscalls: Vec::new(),
    }
}

#[test]
fn ratios_are_taken_per_round_then_the_median() {
    use Strategy::{NodeRr, Reuseport, Rr};
    let p = plan(vec![Rr, Reuseport, NodeRr], 3);
    // The machine got twice as fast in round 2: per-round ratios do not care.
    let runs = vec![
        result(Rr, 2, 1, 100.0),
        result(Reuseport, 2, 1, 130.0),
        result(NodeRr, 2, 1, 40.0),
        result(Rr, 2, 2, 200.0),
        result(Reuseport, 2, 2, 280.0),
        result(NodeRr, 2, 2, 80.0),
        result(Rr, 2, 3, 100.0),
        result(Reuseport, 2, 3, 120.0),
        result(NodeRr, 2, 3, 50.0),
    ];
    let r = Report::new(&p, runs, Machine::this_one(&p, SystemTime::now()));
    let reuse = r
        .summary
        .iter()
        .find(|s| s.strategy == Reuseport)
        .expect("a summary for SO_REUSEPORT");
    assert_eq!(reuse.vs_rr_per_round, vec![Some(1.3), Some(1.4), Some(1.2)]);
    assert_eq!(reuse.vs_rr, Some(1.3));
    assert_eq!(reuse.conn_per_s, 130.0, "the median over rounds");
    let spread = reuse.vs_rr_spread().expect("a spread");
    assert!(
        (spread - 1.4 / 1.2).abs() < 1e-9,
        "highest round over lowest: {spread}"
    );
    let targets = r.targets();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].key, "rr_over_node_rr");
    assert_eq!(
        targets[0].ratios,
        vec![(2, Some(2.5))],
        "1 / median(0.4, 0.4, 0.5): round by round"
    );
    assert_eq!(targets[1].key, "reuseport_over_rr");
    assert_eq!(targets[1].ratios, vec![(2, Some(1.3))]);
    assert!(targets[0].met(2.5) && !targets[1].met(1.6) && targets[1].met(1.5));
    let table = r.table();
    assert!(table.contains("Target: our rr ≥ 2 × node-rr"), "{table}");
    assert!(table.contains("measured    2.50"), "{table}");
    assert!(table.contains("reuseport   1.30"), "{table}");
    assert!(
        table.contains("reuseport   1.17"),
        "the spread of the rounds: {table}"
    );
    for line in table.lines() {
        assert!(
            line.chars().count() <= WIDTH,
            "wider than a phone: {line:?}"
        );
    }
}

#[test]
fn the_chart_is_legible_on_a_phone() {
    use Strategy::{NodeRr, Reuseport, Rr};
    let mut p = plan(vec![Rr, Reuseport, NodeRr], 1);
    p.workers = vec![1, 2, 4, 8];
    let runs = p
        .workers
        .iter()
        .flat_map(|&w| {
            [
                result(Rr, w, 1, 100.0),
                result(Reuseport, w, 1, 150.0),
                result(NodeRr, w, 1, 30.0),
            ]
        })
        .collect();
    let r = Report::new(&p, runs, Machine::this_one(&p, SystemTime::now()));
    let svg = r.svg().expect("a chart");
    assert!(svg.starts_with("<svg width=\"400\""), "{}", &svg[..80]);
    let sizes: Vec<f64> = svg
        .split("font-size=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect();
    assert!(!sizes.is_empty());
    assert!(
        sizes.iter().all(|&s| s >= 14.0),
        "text under 14 px: {sizes:?}"
    );
    for label in [
        "our round robin",
        "SO_REUSEPORT",
        "Node round robin",
        "workers (log scale)",
    ] {
        assert!(svg.contains(label), "no {label:?} in the chart");
    }
    for w in ["1", "2", "4", "8"] {
        assert!(
            svg.contains(&format!("\n{w}\n</text>")),
            "no tick for {w} workers"
        );
    }
}

#[test]
fn a_tiny_run_answers_on_every_strategy_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let svg = dir.path().join("chart.svg");
    let table = dir.path().join("table.txt");
    let mark = format!("tiny-{}", std::process::id());
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", "--quick", "--duration", "0.1", "--rounds", "1"])
        .args(["--workers", "2", "--clients", "2", "--json", "--svg"])
        .arg(&svg)
        .arg("--table")
        .arg(&table)
        .env(MARK, &mark);
    let run = common::run(cmd, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("one JSON object on stdout");

    for key in ["machine", "plan", "runs", "summary", "targets"] {
        assert!(v.get(key).is_some(), "no {key:?} in {v}");
    }
    assert_eq!(v["plan"]["workers"], serde_json::json!([2]));
    let strategies: Vec<&str> = v["plan"]["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let node = Command::new("node").arg("--version").output();
    let have_node = node.is_ok_and(|o| o.status.success());
    let mut expected = vec!["rr", "none", "prefork", "reuseport", "fork"];
    if have_node {
        expected.extend(["node-rr", "node-none"]);
    }
    assert_eq!(strategies, expected);

    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), strategies.len(), "one run per strategy");
    for r in runs {
        let name = r["strategy"].as_str().expect("a strategy name");
        let connections = r["connections"].as_u64().expect("connections");
        assert!(connections > 0, "{name} answered nothing: {r}");
        for key in [
            "conn_per_s",
            "latency_us",
            "errors",
            "primary_cpu_us_per_conn",
        ] {
            assert!(r.get(key).is_some(), "{name}: no {key:?} in {r}");
        }
        let per_worker = r["per_worker"].as_array().expect("per_worker");
        if name == "fork" {
            assert!(per_worker.is_empty(), "fork per connection has no workers");
            assert!(r["max_min"].is_null());
        } else {
            assert_eq!(per_worker.len(), 2, "{name}: {r}");
            let sum: u64 = per_worker.iter().filter_map(Value::as_u64).sum();
            assert_eq!(sum, connections, "{name}: every answer named a worker");
            assert_eq!(r["shares"].as_array().map(Vec::len), Some(2));
        }
        let has_primary = !matches!(name, "prefork" | "reuseport");
        assert_eq!(
            r["primary_cpu_us_per_conn"].is_null(),
            !has_primary,
            "{name}: a primary's CPU time exactly where there is a primary: {r}"
        );
    }
    let summary = v["summary"].as_array().expect("summary");
    let rr = summary
        .iter()
        .find(|s| s["strategy"] == "rr")
        .expect("a summary for rr");
    assert_eq!(rr["vs_rr"], 1.0);
    assert!(v["targets"]["reuseport_over_rr"]["measured"]["2"].is_number());
    assert!(
        v["code"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("fnv1a64:")),
        "the JSON names the code it measured: {}",
        v["code"]
    );
    for r in runs {
        let name = r["strategy"].as_str().unwrap_or("?");
        assert!(r["server_cpu_us_per_conn"].is_number(), "{name}: {r}");
        assert!(r["client_cpu_us_per_conn"].is_number(), "{name}: {r}");
    }

    let chart = std::fs::read_to_string(&svg).expect("the chart was written");
    assert!(
        chart.starts_with("<svg"),
        "{}",
        &chart[..chart.len().min(80)]
    );
    assert!(chart.contains("our round robin"));
    let text = std::fs::read_to_string(&table).expect("the table was written");
    assert!(text.contains("SO_REUSEPORT"), "{text}");

    assert_eq!(marked_processes(&mark), Vec::<String>::new(), "left behind");
}

#[test]
fn the_chapter_program_prints_its_table() {
    let mark = format!("chapter-{}", std::process::id());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ch11-cost"));
    cmd.env(MARK, &mark);
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    for needle in [
        "our round robin",
        "SO_REUSEPORT",
        "Connections per second",
        "Primary's CPU per connection",
    ] {
        assert!(
            run.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            run.stdout
        );
    }
    assert_eq!(marked_processes(&mark), Vec::<String>::new(), "left behind");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for args in [
        &["--workers", "0"][..],
        &["--strategies", "carrier-pigeon"],
        &["--duration", "0"],
        &["--clients", "0"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.arg("bench").args(args);
        let run = common::run(cmd, Duration::from_secs(10));
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn system_calls_are_counted_per_connection_under_strace() {
    if let Some(why) = cluster_walkthrough::strace::missing_tools() {
        eprintln!("skipped: {why} (the system call counts of chapter 11)");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mark = format!("syscalls-{}", std::process::id());
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", "--quick", "--duration", "0.3", "--rounds", "1"])
        .args(["--workers", "2", "--clients", "2", "--strategies", "rr"])
        .args(["--syscalls", "rr,reuseport", "--out"])
        .arg(dir.path())
        .env(MARK, &mark);
    let run = common::run(cmd, Duration::from_secs(180));
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let json = std::fs::read_to_string(dir.path().join("bench.json")).expect("bench.json");
    let v: Value = serde_json::from_str(&json).expect("JSON");
    let counted = v["syscalls"].as_array().expect("syscalls");
    assert_eq!(counted.len(), 2);
    let calls =
        |i: usize, name: &str, side: &str| counted[i]["calls"][name][side].as_u64().unwrap_or(0);
    let conns = counted[0]["connections"].as_u64().expect("connections");
    assert!(conns > 0, "{}", counted[0]);
    // Our primary accepts every connection and passes it on: one accept4 and one sendmsg
    // each, in the primary; its workers accept nothing.
    assert_eq!(calls(0, "accept4", "primary"), conns, "{}", counted[0]);
    assert_eq!(calls(0, "accept4", "workers"), 0, "{}", counted[0]);
    assert_eq!(calls(0, "sendmsg", "primary"), conns, "{}", counted[0]);
    // SO_REUSEPORT's children accept for themselves; the parent only waits.
    let conns = counted[1]["connections"].as_u64().expect("connections");
    assert_eq!(calls(1, "accept4", "children"), conns, "{}", counted[1]);
    assert_eq!(calls(1, "accept4", "parent"), 0, "{}", counted[1]);
    let table = std::fs::read_to_string(dir.path().join("bench-syscalls.txt")).expect("the table");
    assert!(
        table.contains("our round robin") && table.contains("SO_REUSEPORT"),
        "{table}"
    );
    for line in table.lines() {
        assert!(
            line.chars().count() <= WIDTH,
            "wider than a phone: {line:?}"
        );
    }
    assert_eq!(marked_processes(&mark), Vec::<String>::new(), "left behind");
}
