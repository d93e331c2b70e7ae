//! The table of branches: for each branch of Node's listen machinery, the syscalls each
//! side made, the kinds of channel messages, and the errors and exits, counted from the
//! `--json` events of one run. Sides and calls are read from the events' own fields
//! (`role`, `syscall`, `option`, `errno`), never parsed back out of the printed text.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{MessageSummary, pack, summarize};

/// One branch of the machinery, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRow {
    /// The branch's name: `round robin`.
    pub branch: String,
    /// Syscalls made by the primary (or, without cluster, the only process): `bind 2`.
    pub primary: Vec<String>,
    /// Syscalls made by all the workers together.
    pub workers: Vec<String>,
    /// Kinds of channel messages seen, in the order they first appeared, and how many keys.
    pub channel: Vec<String>,
    /// Error texts and where they appeared (ports as `P`), and the workers that did not
    /// exit with 0.
    pub errors: Vec<String>,
}

/// How often one syscall was made, and how it went.
#[derive(Debug, Default)]
struct Calls {
    made: u32,
    /// errno name → how many of the calls failed with it.
    failed: BTreeMap<String, u32>,
    /// Calls Node would make but libuv answers itself (`listen` after a failed `bind`).
    skipped: u32,
}

const CALL_ORDER: &[&str] = &[
    "socket",
    "SO_REUSEADDR",
    "SO_REUSEPORT",
    "bind",
    "listen",
    "accept4",
    "getsockname",
];

/// The name a syscall event is counted under: the option it sets (`SO_REUSEADDR`, for a
/// `setsockopt`), else the call's name.
fn call_name(e: &Value) -> Option<&str> {
    e["option"].as_str().or(e["syscall"].as_str())
}

fn count_calls<'a>(events: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut calls: BTreeMap<String, Calls> = BTreeMap::new();
    for e in events.filter(|e| e["event"] == "syscall") {
        let Some(name) = call_name(e) else {
            continue;
        };
        let c = calls.entry(name.to_string()).or_default();
        if e.get("skipped").is_some() {
            c.skipped += 1;
            continue;
        }
        c.made += 1;
        if let Some(errno) = e["errno"].as_str() {
            *c.failed.entry(errno.to_string()).or_default() += 1;
        }
    }
    let mut names: Vec<&String> = calls.keys().collect();
    names.sort_by_key(|n| {
        let i = CALL_ORDER.iter().position(|o| o == n);
        (i.unwrap_or(CALL_ORDER.len()), n.to_string())
    });
    names
        .into_iter()
        .map(|n| {
            let c = &calls[n];
            let mut s = format!("{n} {}", c.made);
            for (errno, k) in &c.failed {
                s.push_str(&format!(", {k} {errno}"));
            }
            if c.skipped > 0 {
                s.push_str(&format!(", {} skipped", c.skipped));
            }
            s
        })
        .collect()
}

/// Which side an event is on: its process's `role`, `primary` (also a process without
/// cluster, as Node's `cluster.isPrimary` says) or `worker`; none for the summary line.
fn role(e: &Value) -> Option<&str> {
    e["role"].as_str()
}

/// The channel messages of a run: the kinds seen, the number of distinct keys, and what
/// passed between the primary and a killed worker after the kill.
fn channel_kinds(events: &[Value]) -> Vec<String> {
    let wire: Vec<(usize, &Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "wire")
        .collect();
    if wire.is_empty() {
        return vec![if events.iter().any(|e| role(e) == Some("worker")) {
            "nothing".into()
        } else {
            "no channel".into()
        }];
    }
    let mut kinds: Vec<MessageSummary> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (_, e) in &wire {
        let line = e["message"].as_str().unwrap_or("");
        let fd = e["direction"].as_str().is_some_and(|d| d.contains("[fd"));
        let s = summarize(line, fd);
        if !s.kind.starts_with("user:") && !kinds.iter().any(|k| k.kind == s.kind) {
            kinds.push(s);
        }
        if let Ok(msg) = serde_json::from_str::<Value>(line) {
            let inner = msg.get("msg").unwrap_or(&msg);
            if let Some(k) = inner.get("key").and_then(Value::as_str)
                && !keys.iter().any(|x| x == k)
            {
                keys.push(k.to_string());
            }
        }
    }
    let mut out: Vec<String> = kinds.into_iter().map(|s| s.label).collect();
    if !keys.is_empty() {
        let plural = if keys.len() == 1 { "" } else { "s" };
        out.push(format!("({} key{plural})", keys.len()));
    }
    for (at, id) in kills(events) {
        let me = format!("worker {id}");
        let after = wire
            .iter()
            .filter(|(i, e)| {
                *i > at
                    && (e["process"] == me.as_str()
                        || e["direction"].as_str().is_some_and(|d| {
                            d.strip_prefix("-> ")
                                .is_some_and(|t| t == me || t.starts_with(&format!("{me} ")))
                        }))
            })
            .count();
        out.push(match after {
            0 => format!("(after the kill: nothing to or from {me})"),
            n => format!("(after the kill: {n} messages with {me})"),
        });
    }
    out
}

/// Where the primary killed a worker: (event index, worker id).
fn kills(events: &[Value]) -> Vec<(usize, u32)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| role(e) == Some("primary") && e["event"] == "step")
        .filter_map(|(i, e)| {
            let rest = e["text"].as_str()?.strip_prefix("kill worker ")?;
            let id = rest.split_whitespace().next()?.parse().ok()?;
            Some((i, id))
        })
        .collect()
}

/// Error texts with the port written `P`, grouped by text with the processes that showed
/// them; then the workers that did not end with exit code 0.
fn errors(events: &[Value]) -> Vec<String> {
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for e in events.iter().filter(|e| e["event"] == "error") {
        let mut text = e["message"]
            .as_str()
            .or(e["text"].as_str())
            .unwrap_or("")
            .to_string();
        if let Some(port) = e["port"].as_u64().filter(|p| *p != 0) {
            text = text.replace(&format!(":{port}"), ":P");
        }
        let who = e["process"].as_str().unwrap_or("?").to_string();
        match seen.iter_mut().find(|(t, _)| *t == text) {
            Some((_, whos)) if !whos.contains(&who) => whos.push(who),
            Some(_) => {}
            None => seen.push((text, vec![who])),
        }
    }
    let mut out: Vec<String> = seen
        .into_iter()
        .map(|(text, mut whos)| {
            whos.sort_by_key(|w| {
                let id = w
                    .strip_prefix("worker ")
                    .and_then(|i| i.parse::<u32>().ok());
                (id.unwrap_or(0), w.clone())
            });
            format!("{}: {text}", whos.join(", "))
        })
        .collect();
    for e in events {
        let Some(workers) = e["summary"]["workers"].as_array() else {
            continue;
        };
        for w in workers {
            let id = w["id"].as_u64().unwrap_or(0);
            let exit = &w["exit"];
            match (exit["code"].as_i64(), exit["signal"].as_str()) {
                (Some(0), _) => {}
                (Some(code), _) => out.push(format!("worker {id} exits with code {code}")),
                (None, Some(sig)) => out.push(format!("worker {id} ends by {sig}")),
                (None, None) => out.push(format!("worker {id}: no exit status")),
            }
        }
    }
    if out.is_empty() {
        out.push("none".into());
    }
    out
}

/// One row of the table from the events of one run (the `--json` objects of the primary and
/// its workers, or of a single process, plus the `{"summary":...}` line if there is one).
pub fn branch_row(branch: &str, events: &[Value]) -> BranchRow {
    let has_workers = events.iter().any(|e| role(e) == Some("worker"));
    let primary = count_calls(events.iter().filter(|e| role(e) == Some("primary")));
    let workers = count_calls(events.iter().filter(|e| role(e) == Some("worker")));
    BranchRow {
        branch: branch.to_string(),
        primary: if primary.is_empty() {
            vec!["nothing".into()]
        } else {
            primary
        },
        workers: match (has_workers, workers.is_empty()) {
            (false, _) => vec!["no workers".into()],
            (true, true) => vec!["nothing".into()],
            (true, false) => workers,
        },
        channel: channel_kinds(events),
        errors: errors(events),
    }
}

/// Column widths of the text table: 12 + 4 × 20 + 4 gaps of 2 = 100.
const WIDTHS: [usize; 5] = [12, 20, 20, 20, 20];
const HEADERS: [&str; 5] = [
    "branch",
    "primary makes",
    "workers make",
    "over the channel",
    "errors, exits",
];

/// A cell's lines: each item word-wrapped to `width` on lines of its own, or, with a `sep`,
/// the items one after another, joined by it, each kept whole unless it is wider than the
/// column (the channel column).
fn fill(items: &[String], width: usize, sep: &str) -> Vec<String> {
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    if sep.is_empty() {
        return items
            .iter()
            .flat_map(|item| pack(words(item), width, " "))
            .collect();
    }
    let mut pieces = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let piece = match i + 1 < items.len() {
            true => format!("{item}{sep}"),
            false => item.clone(),
        };
        match piece.len() > width {
            true => pieces.extend(words(&piece)),
            false => pieces.push(piece),
        }
    }
    pack(pieces, width, " ")
}

/// The table as aligned text: one block of lines per branch, cells wrapped in their column,
/// a rule between branches. Lines are at most 100 characters.
pub fn render_table(rows: &[BranchRow]) -> String {
    let mut out: Vec<String> = Vec::new();
    let line = |cells: [&str; 5]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(WIDTHS).enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w.saturating_sub(c.chars().count()) + 2));
            }
        }
        s.trim_end().to_string()
    };
    let rule = WIDTHS.map(|w| "-".repeat(w));
    let rule = line([&rule[0], &rule[1], &rule[2], &rule[3], &rule[4]]);
    out.push(line(HEADERS));
    out.push(rule.clone());
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            out.push(rule.clone());
        }
        let cells = [
            fill(std::slice::from_ref(&r.branch), WIDTHS[0], ""),
            fill(&r.primary, WIDTHS[1], ""),
            fill(&r.workers, WIDTHS[2], ""),
            fill(&r.channel, WIDTHS[3], ","),
            fill(&r.errors, WIDTHS[4], ""),
        ];
        let height = cells.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..height {
            let get = |c: usize| cells[c].get(i).map_or("", String::as_str);
            out.push(line([get(0), get(1), get(2), get(3), get(4)]));
        }
    }
    out.join("\n")
}

/// The table in short, one line per branch: who made the `bind` and `listen` calls and how
/// they went, and where `EADDRINUSE` was raised (`who: the syscall it names`). What chapter 8's
/// closing rule reads down: only a process that binds gets `EADDRINUSE` from the kernel.
pub fn render_summary(rows: &[BranchRow]) -> String {
    let lone = |r: &BranchRow| r.workers.first().is_some_and(|w| w == "no workers");
    let calls = |r: &BranchRow, call: &str| -> String {
        let primary = if lone(r) { "process" } else { "primary" };
        let sides = [(primary, &r.primary), ("workers", &r.workers)];
        let made: Vec<String> = sides
            .iter()
            .flat_map(|(side, items)| {
                let prefix = format!("{call} ");
                items
                    .iter()
                    .filter_map(move |i| i.strip_prefix(&prefix).map(|n| format!("{side} {n}")))
            })
            .collect();
        match made.is_empty() {
            true => "-".to_string(),
            false => made.join("; "),
        }
    };
    let raised = |r: &BranchRow| -> String {
        let at: Vec<String> = r
            .errors
            .iter()
            .filter(|e| e.contains("EADDRINUSE"))
            .filter_map(|e| {
                let (who, text) = e.split_once(": ")?;
                Some(format!("{who}: {}", text.split(' ').next().unwrap_or("")))
            })
            .collect();
        match at.is_empty() {
            true => "-".to_string(),
            false => at.join("; "),
        }
    };
    let table: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.branch.clone(),
                calls(r, "bind"),
                calls(r, "listen"),
                raised(r),
            ]
        })
        .collect();
    let header = ["branch", "bind(2)", "listen(2)", "EADDRINUSE raised in"].map(String::from);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&table) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 4]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let rule = widths.map(|w| "-".repeat(w));
    let mut out = vec![line(&header), line(&rule)];
    out.extend(table.iter().map(line));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_says_who_binds_who_listens_and_who_raises_eaddrinuse() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let rows = [
            BranchRow {
                branch: "no cluster".into(),
                primary: strings(&["socket 2", "bind 2, 1 EADDRINUSE", "listen 1, 1 skipped"]),
                workers: strings(&["no workers"]),
                channel: strings(&["no channel"]),
                errors: strings(&[
                    "process: listen EADDRINUSE: address already in use 127.0.0.1:P",
                ]),
            },
            BranchRow {
                branch: "SCHED_NONE".into(),
                primary: strings(&["socket 1", "bind 1"]),
                workers: strings(&["listen 2", "accept4 2"]),
                channel: strings(&["online"]),
                errors: strings(&["worker 2 ends by SIGKILL"]),
            },
        ];
        let lines: Vec<String> = render_summary(&rows)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            lines[2..],
            [
                "no cluster process 2, 1 EADDRINUSE process 1, 1 skipped process: listen",
                "SCHED_NONE primary 1 workers 2 -",
            ]
        );
    }

    #[test]
    fn nothing_recorded_makes_an_empty_row() {
        let row = branch_row("empty", &[]);
        assert_eq!(
            (row.primary, row.workers, row.channel, row.errors),
            (
                vec!["nothing".to_string()],
                vec!["no workers".to_string()],
                vec!["no channel".to_string()],
                vec!["none".to_string()]
            )
        );
    }

    /// An event as `trace` renders it in `--json` mode, with the role each process of
    /// these runs set (`worker` in a worker, `primary` everywhere else).
    fn ev(process: &str, event: &str, extra: Value) -> Value {
        let role = match process {
            "worker 1" | "worker 2" => "worker",
            _ => "primary",
        };
        let mut v = json!({"process": process, "role": role, "pid": 1, "event": event, "text": ""});
        if let (Some(m), Value::Object(x)) = (v.as_object_mut(), extra) {
            m.extend(x);
        }
        v
    }

    /// A syscall event: `name`, and an errno for a failure.
    fn sys(process: &str, name: &str, errno: Option<&str>) -> Value {
        let mut extra = json!({"syscall": name, "call": format!("{name}(...)"), "result": "0"});
        if let Some(errno) = errno {
            extra["errno"] = json!(errno);
        }
        ev(process, "syscall", extra)
    }

    /// A `setsockopt` that sets `option`.
    fn sockopt(process: &str, option: &str) -> Value {
        let mut e = sys(process, "setsockopt", None);
        e["option"] = json!(option);
        e
    }

    fn wire(process: &str, direction: &str, message: &str) -> Value {
        ev(
            process,
            "wire",
            json!({"direction": direction, "message": message}),
        )
    }

    #[test]
    fn a_row_counts_syscalls_per_side_and_names_failures() {
        let events = vec![
            sys("process", "socket", None),
            sockopt("process", "SO_REUSEADDR"),
            sys("process", "bind", None),
            sys("process", "listen", None),
            sys("process", "socket", None),
            sockopt("process", "SO_REUSEADDR"),
            sys("process", "bind", Some("EADDRINUSE")),
            ev(
                "process",
                "syscall",
                json!({"syscall": "listen", "call": "listen(4, 511)", "skipped": "libuv"}),
            ),
            ev(
                "process",
                "error",
                json!({"message": "listen EADDRINUSE: address already in use 127.0.0.1:8000",
                       "code": "EADDRINUSE", "syscall": "listen", "errno": -98, "port": 8000}),
            ),
        ];
        let row = branch_row("no cluster", &events);
        assert_eq!(
            row.primary,
            [
                "socket 2",
                "SO_REUSEADDR 2",
                "bind 2, 1 EADDRINUSE",
                "listen 1, 1 skipped"
            ]
        );
        assert_eq!(row.workers, ["no workers"]);
        assert_eq!(row.channel, ["no channel"]);
        assert_eq!(
            row.errors,
            ["process: listen EADDRINUSE: address already in use 127.0.0.1:P"]
        );
    }

    #[test]
    fn a_row_lists_message_kinds_in_order_of_appearance_and_what_follows_a_kill() {
        let key = "127.0.0.1:0:4:undefined:0";
        let newconn = format!(
            r#"{{"cmd":"NODE_HANDLE","type":"net.Native","msg":{{"cmd":"NODE_CLUSTER","act":"newconn","key":"{key}","seq":2}}}}"#
        );
        let events = vec![
            wire(
                "worker 2",
                "-> primary",
                r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#,
            ),
            wire(
                "worker 1",
                "-> primary",
                r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#,
            ),
            sys("primary", "accept4", None),
            wire("primary", "-> worker 1 [fd 7]", &newconn),
            wire("worker 1", "-> primary", r#"{"lab":"served"}"#),
            ev(
                "primary",
                "step",
                json!({"text": "kill worker 2 (pid 9) with SIGKILL"}),
            ),
            wire(
                "primary",
                "-> worker 1",
                r#"{"cmd":"NODE_CLUSTER","act":"disconnect","seq":3}"#,
            ),
            json!({"summary": {"workers": [
                {"id": 1, "exit": {"code": 0, "signal": null}},
                {"id": 2, "exit": {"code": null, "signal": "SIGKILL"}}]}}),
        ];
        let row = branch_row("worker killed", &events);
        assert_eq!(row.primary, ["accept4 1"]);
        assert_eq!(row.workers, ["nothing"]);
        assert_eq!(
            row.channel,
            [
                "online",
                "newconn [fd]",
                "disconnect",
                "(1 key)",
                "(after the kill: nothing to or from worker 2)"
            ]
        );
        assert_eq!(row.errors, ["worker 2 ends by SIGKILL"]);
    }

    #[test]
    fn the_table_is_aligned_and_within_100_columns() {
        let row = BranchRow {
            branch: "bind fails (SCHED_NONE)".into(),
            primary: vec!["socket 1".into(), "bind 1, 1 EADDRINUSE".into()],
            workers: vec!["getsockname 2".into()],
            channel: vec!["online".into(), "queryServer".into(), "errno:0 [fd]".into()],
            errors: vec!["worker 1, worker 2: bind EADDRINUSE 127.0.0.1:P".into()],
        };
        let t = render_table(&[row.clone(), row]);
        assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
        let header = t.lines().next().expect("a header");
        let starts: Vec<usize> = HEADERS
            .iter()
            .map(|h| header.find(h).expect("header"))
            .collect();
        assert_eq!(starts, [0, 14, 36, 58, 80]);
        assert!(t.contains("bind fails    socket 1"), "{t}");
        assert!(t.contains("online, queryServer,"), "{t}");
        assert_eq!(t.matches(&"-".repeat(20)).count(), 4 * 2, "{t}");
    }
}
