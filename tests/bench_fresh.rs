//! The benchmark run that chapter 11 shows (`book/src/img/bench.*`) measured the code as it
//! is now: its JSON names the code it measured (a fingerprint of the code, comments and blank
//! lines left out, of every file under `src/cluster/` and `src/bench/`), and that must be the code in this checkout. When it is
//! not, the run is made again, with the one command below, and committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cluster_walkthrough::bench::fingerprint::{Fingerprint, MEASURED};
use cluster_walkthrough::bench::report::WIDTH;
use cluster_walkthrough::bench::{OUT_JSON, OUT_SVG, OUT_SYSCALLS, OUT_TABLE};
use serde_json::Value;

/// The command that makes the book's run. The README and chapter 11 show it as it is here.
const COMMAND: &str = "cargo run --release -- bench --workers 1,2,4,8 \
                       --out book/src/img --syscalls rr,none,reuseport,node-rr";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn img(name: &str) -> PathBuf {
    root().join("book/src/img").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; make the book's bench run with `{COMMAND}`",
            path.display()
        )
    })
}

fn committed() -> Value {
    serde_json::from_str(&read(&img(OUT_JSON))).expect("book/src/img/bench.json is JSON")
}

#[test]
fn the_committed_run_measured_the_code_as_it_is() {
    let run = committed();
    let now = Fingerprint::of_crate(&root()).expect("the sources can be read");
    let code = &run["code"];
    let files: BTreeMap<String, String> = code["files"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let then = Fingerprint::of_files(files);
    let changed = now.differences(&then);
    assert!(
        code["fingerprint"].as_str() == Some(now.all.as_str()) && changed.is_empty(),
        "the committed bench run measured other code: regenerate it with `{COMMAND}` \
         (on a quiet machine; it takes about five minutes) and commit book/src/img/bench*. \
         What changed since: {}",
        match (code.is_null(), changed.is_empty()) {
            (true, _) => "the run names no code".to_string(),
            (false, true) => "the fingerprint itself".to_string(),
            (false, false) => changed.join(", "),
        }
    );
    let measured: Vec<&str> = code["measured"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        measured, MEASURED,
        "the fingerprint covers other folders now"
    );
}

#[test]
fn the_committed_run_is_the_books_run() {
    let run = committed();
    let plan = &run["plan"];
    let wrong = |what: &str| {
        format!(
            "the committed bench run is not the book's run ({what}): regenerate it with `{COMMAND}`"
        )
    };
    assert_eq!(
        run["machine"]["build"],
        "release",
        "{}",
        wrong("not a release build")
    );
    assert_eq!(
        plan["workers"],
        serde_json::json!([1, 2, 4, 8]),
        "{}",
        wrong("workers")
    );
    assert_eq!(plan["rounds"], 3, "{}", wrong("rounds"));
    assert_eq!(plan["duration_s"], 2.0, "{}", wrong("duration"));
    assert_eq!(plan["clients"], 8, "{}", wrong("clients"));
    assert_eq!(
        plan["syscalls"],
        serde_json::json!(["rr", "none", "reuseport", "node-rr"]),
        "{}",
        wrong("--syscalls")
    );
}

#[test]
fn the_table_the_chart_and_the_counts_come_from_that_run() {
    let run = committed();
    let date = run["machine"]["date"].as_str().expect("a date");
    let cpu = run["machine"]["cpu"].as_str().expect("a CPU");
    let table = read(&img(OUT_TABLE));
    assert!(
        table.contains(&format!("measured on {date}")) && table.contains(cpu),
        "bench.txt is from another run than bench.json: regenerate them with `{COMMAND}`"
    );
    let svg = read(&img(OUT_SVG));
    assert!(
        svg.contains(date),
        "bench.svg is from another run than bench.json: regenerate them with `{COMMAND}`"
    );
    let syscalls = read(&img(OUT_SYSCALLS));
    for counted in run["syscalls"].as_array().expect("the system call counts") {
        let connections = counted["connections"].as_u64().expect("connections");
        let shown = cluster_walkthrough::bench::report::thousands(connections as f64);
        assert!(
            syscalls.contains(&format!("{shown} connections")),
            "bench-syscalls.txt is from another run than bench.json: regenerate them with `{COMMAND}`"
        );
    }
    for (name, text) in [(OUT_TABLE, &table), (OUT_SYSCALLS, &syscalls)] {
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{name}: a line wider than a phone shows: {line:?}"
            );
        }
    }
}

#[test]
fn the_readme_and_the_chapter_show_the_command() {
    for page in ["README.md", "book/src/ch11-cost.md"] {
        let text = read(&root().join(page));
        // The pages may break the command over lines with a backslash.
        let joined = text.replace("\\\n", " ");
        let words = joined.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains(COMMAND),
            "{page} does not show the command that makes the book's bench run: `{COMMAND}`"
        );
    }
}
