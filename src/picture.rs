//! Chapter 8's two pictures, drawn from real runs and never by hand: a sequence diagram of
//! one round-robin cluster, made from the messages its primary saw ([`WireRecord`]s), and a
//! table of every branch of Node's listen machinery, made from the `--json` events of one
//! lab run per branch.
//!
//! Both are pure functions of their input, so they can be tested on hand-built records and
//! events, and the chapter's output is as stable as the runs behind it. Neither mirrors a
//! Node file: they summarise what [`crate::cluster`] and [`crate::net`] did, using Node's
//! names (`act`, `cmd`) for what went over the channel.
//!
//! Ports change on every run, so both pictures print them as `[PORT]` (in the diagram's
//! notes) or `P` (in the table's error texts). A requested port of 0 stays 0: it is what the
//! worker really asked for.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::channel::WireRecord;

/// What one message was, in a few characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// What the diagram writes on the arrow: `queryServer`, `newconn [fd]`.
    pub label: String,
    /// The message's kind, the same for every message of that shape (footnotes and the
    /// table list each kind once): `queryServer`, `reply errno:null`, `user:ready`.
    pub kind: String,
}

impl Summary {
    fn new(label: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            kind: kind.into(),
        }
    }
}

// ANCHOR: summarize
/// Name a message by what Node's code looks at: the `cmd`, then the `act`, or for a reply
/// its `errno` / `accepted`. A message carrying an fd gets `[fd]`. Lines that are not JSON
/// are the lab's own notes about the client (`connection 1`, `answer to connection 1`).
pub fn summarize(line: &str, fd: bool) -> Summary {
    let Ok(msg) = serde_json::from_str::<Value>(line) else {
        return client_summary(line);
    };
    let with_fd = |s: Summary| match fd {
        true => Summary::new(format!("{} [fd]", s.label), format!("{} [fd]", s.kind)),
        false => s,
    };
    let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
    match cmd {
        "NODE_HANDLE" => with_fd(cluster_summary(msg.get("msg").unwrap_or(&Value::Null))),
        "NODE_CLUSTER" => with_fd(cluster_summary(&msg)),
        c if c.starts_with("NODE_") => with_fd(Summary::new(c, c)),
        // Not internal: a user message (`process.send`). The lab's are `{"lab": what}`.
        _ => {
            let what = msg.get("lab").and_then(Value::as_str).unwrap_or("message");
            Summary::new(format!("({what})"), format!("user:{what}"))
        }
    }
}

/// A `NODE_CLUSTER` message: a request has an `act`; a reply has an `ack` and what it says.
fn cluster_summary(msg: &Value) -> Summary {
    if let Some(act) = msg.get("act").and_then(Value::as_str) {
        return Summary::new(act, act);
    }
    if let Some(accepted) = msg.get("accepted").and_then(Value::as_bool) {
        let s = format!("accepted:{accepted}");
        return Summary::new(s.clone(), s);
    }
    match msg.get("errno") {
        Some(Value::Null) if msg.get("sockname").is_some() => {
            Summary::new("errno:null+sockname", "reply errno:null")
        }
        Some(e @ Value::Number(_)) => {
            Summary::new(format!("errno:{e}"), format!("reply errno:{e}"))
        }
        _ => Summary::new("reply", "reply"),
    }
}
// ANCHOR_END: summarize

fn client_summary(line: &str) -> Summary {
    if let Some(n) = line.strip_prefix("answer to connection ") {
        return Summary::new(format!("answer {n}"), "client:answer");
    }
    if line.starts_with("connection ") {
        return Summary::new(line, "client:connection");
    }
    Summary::new(line, line)
}

// ---------------------------------------------------------------------------------------
// Ports out
// ---------------------------------------------------------------------------------------

const PORT_MARK: &str = "@@PORT@@";

/// A channel line with every real port replaced by `[PORT]`: the `port` fields (sockname,
/// listening), the lab's `ports` list, and the port inside a `key`. A port of 0 stays.
pub fn redact_ports(line: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    redact_value(&mut v);
    v.to_string().replace(&format!("\"{PORT_MARK}\""), "[PORT]")
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                match (k.as_str(), &*field) {
                    ("port", Value::Number(n)) if n.as_u64() != Some(0) => {
                        *field = Value::String(PORT_MARK.into())
                    }
                    ("ports", Value::Array(a)) => {
                        let n = a.len();
                        *field = Value::Array(vec![Value::String(PORT_MARK.into()); n]);
                    }
                    ("key", Value::String(key)) => *field = Value::String(redact_key(key)),
                    _ => redact_value(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// `address:port:addressType:fd:index`, read from the right (an IPv6 address has colons).
fn redact_key(key: &str) -> String {
    let parts: Vec<&str> = key.rsplitn(5, ':').collect();
    match parts.as_slice() {
        [index, fd, ty, port, address] if *port != "0" => {
            format!("{address}:[PORT]:{ty}:{fd}:{index}")
        }
        _ => key.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The sequence diagram
// ---------------------------------------------------------------------------------------

/// One arrow of the diagram.
struct Arrow {
    from: usize,
    to: usize,
    label: String,
    kind: String,
    /// The footnote number, on the first message of each kind.
    note: Option<usize>,
}

/// The actors, in the order of their columns: client, primary, workers by id, then anyone
/// else in the order they appear.
fn actors(records: &[WireRecord]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        for n in [&r.from, &r.to] {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let rank = |n: &str| match n {
        "client" => (0, 0),
        "primary" => (1, 0),
        _ => match n
            .strip_prefix("worker ")
            .and_then(|i| i.parse::<u32>().ok())
        {
            Some(id) => (2, id),
            None => (3, 0),
        },
    };
    // A stable sort keeps "anyone else" in order of appearance.
    names.sort_by_key(|n| rank(n));
    if !names.iter().any(|n| n == "primary") {
        names.insert(
            names.iter().take_while(|n| *n == "client").count(),
            "primary".into(),
        );
    }
    names
}

/// Whether a blank stretch of lifelines goes before this arrow: a worker coming online, a
/// client connecting, the start of the shutdown.
fn starts_phase(kind: &str, previous: Option<&str>) -> bool {
    match kind {
        "online" | "client:connection" => previous.is_some(),
        "disconnect" => !matches!(previous, Some("disconnect" | "close")),
        _ => false,
    }
}

/// Where each lifeline goes: wide enough for every name and for each label in its segment
/// (an arrow's label sits in the rightmost segment it spans).
fn lifeline_columns(names: &[String], arrows: &[Arrow]) -> Vec<usize> {
    let mut gaps: Vec<usize> = names
        .windows(2)
        .map(|w| (w[0].len() + w[1].len()) / 2 + 3)
        .collect();
    for a in arrows {
        let hi = a.from.max(a.to);
        if hi > 0 && a.from != a.to {
            // " label " plus at least two dashes on each side, and the two lifelines.
            let need = a.label.len() + 2 + 4 + 1;
            gaps[hi - 1] = gaps[hi - 1].max(need).max(12);
        }
    }
    let mut cols = vec![names.first().map_or(0, |n| n.len() / 2 + 2)];
    for g in gaps {
        let last = *cols.last().expect("at least one column");
        cols.push(last + g);
    }
    cols
}

fn lifelines(cols: &[usize]) -> Vec<char> {
    let mut row = vec![' '; cols.last().map_or(0, |c| c + 1)];
    for &c in cols {
        row[c] = '|';
    }
    row
}

fn draw_arrow(cols: &[usize], a: &Arrow) -> Vec<char> {
    let mut row = lifelines(cols);
    let (lo, hi) = (a.from.min(a.to), a.from.max(a.to));
    if lo == hi {
        let text: Vec<char> = format!(" {}", a.label).chars().collect();
        row.extend(text);
        return row;
    }
    for (i, cell) in row.iter_mut().enumerate().take(cols[hi]).skip(cols[lo] + 1) {
        *cell = if cols[lo + 1..hi].contains(&i) {
            '+'
        } else {
            '-'
        };
    }
    if a.to > a.from {
        row[cols[a.to] - 1] = '>';
    } else {
        row[cols[a.to] + 1] = '<';
    }
    let (s, e) = (cols[hi - 1] + 1, cols[hi] - 1);
    let text: Vec<char> = format!(" {} ", a.label).chars().collect();
    let width = e + 1 - s;
    let start = s + width.saturating_sub(text.len()) / 2;
    for (i, ch) in text.into_iter().enumerate() {
        if let Some(cell) = row.get_mut(start + i) {
            *cell = ch;
        }
    }
    row
}

fn finish(row: Vec<char>) -> String {
    row.into_iter().collect::<String>().trim_end().to_string()
}

/// The diagram: a header of actor names, one row per message with the arrow between the two
/// lifelines, a footnote number on the first message of each kind, and then the footnotes
/// with that message's exact line (ports as `[PORT]`), wrapped at 100 columns.
pub fn sequence_diagram(records: &[WireRecord]) -> String {
    let names = actors(records);
    let index = |n: &str| names.iter().position(|x| x == n).unwrap_or(0);
    let mut seen: Vec<String> = Vec::new();
    let mut notes: Vec<&WireRecord> = Vec::new();
    let arrows: Vec<Arrow> = records
        .iter()
        .map(|r| {
            let s = summarize(&r.line, r.fd);
            let note = (!seen.contains(&s.kind)).then(|| {
                seen.push(s.kind.clone());
                notes.push(r);
                notes.len()
            });
            Arrow {
                from: index(&r.from),
                to: index(&r.to),
                label: s.label,
                kind: s.kind,
                note,
            }
        })
        .collect();
    let cols = lifeline_columns(&names, &arrows);
    let note_col = cols.last().map_or(0, |c| c + 4);

    let mut out = Vec::new();
    let mut header = vec![' '; note_col];
    for (name, &c) in names.iter().zip(&cols) {
        let start = c.saturating_sub(name.len() / 2);
        for (i, ch) in name.chars().enumerate() {
            if start + i < header.len() {
                header[start + i] = ch;
            } else {
                header.push(ch);
            }
        }
    }
    out.push(finish(header));
    out.push(finish(lifelines(&cols)));
    let mut previous: Option<&str> = None;
    for a in &arrows {
        if starts_phase(&a.kind, previous) {
            out.push(finish(lifelines(&cols)));
        }
        let mut row = draw_arrow(&cols, a);
        if let Some(n) = a.note {
            row.resize(row.len().max(note_col), ' ');
            row.extend(format!("[{n}]").chars());
        }
        out.push(finish(row));
        previous = Some(&a.kind);
    }
    out.push(finish(lifelines(&cols)));
    out.push(String::new());
    for (i, r) in notes.iter().enumerate() {
        out.extend(footnote(i + 1, r));
    }
    out.join("\n")
}

/// `[n] from -> to`, then the line itself, indented and wrapped.
fn footnote(n: usize, r: &WireRecord) -> Vec<String> {
    let is_json = serde_json::from_str::<Value>(&r.line).is_ok();
    let how = match (is_json, r.fd) {
        (false, _) => " (recorded by the lab's client; not a channel message)",
        (true, true) => ", with an fd (SCM_RIGHTS)",
        (true, false) => "",
    };
    let mut lines = vec![format!("[{n}] {} -> {}{how}", r.from, r.to)];
    let body = match is_json {
        true => redact_ports(&r.line),
        false => format!("\"{}\"", r.line),
    };
    lines.extend(
        wrap_at_commas(&body, 100 - 4)
            .into_iter()
            .map(|l| format!("    {l}")),
    );
    lines
}

/// Break a JSON line after commas so no piece is wider than `width` (a piece with no comma
/// in reach is cut where it must be).
fn wrap_at_commas(text: &str, width: usize) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ',' {
            pieces.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    pack(pieces, width, "")
}

/// Greedy line filling: put pieces side by side (with `sep` between) up to `width`.
fn pack(pieces: Vec<String>, width: usize, sep: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for p in pieces {
        let extra = if line.is_empty() { 0 } else { sep.len() };
        if !line.is_empty() && line.len() + extra + p.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(sep);
        }
        line.push_str(&p);
        while line.chars().count() > width {
            let cut: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            lines.push(cut);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

// ---------------------------------------------------------------------------------------
// The table of branches
// ---------------------------------------------------------------------------------------

/// One branch of the machinery, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
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
    let mut kinds: Vec<Summary> = Vec::new();
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
pub fn branch_row(branch: &str, events: &[Value]) -> Row {
    let has_workers = events.iter().any(|e| role(e) == Some("worker"));
    let primary = count_calls(events.iter().filter(|e| role(e) == Some("primary")));
    let workers = count_calls(events.iter().filter(|e| role(e) == Some("worker")));
    Row {
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
pub fn render_table(rows: &[Row]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(from: &str, to: &str, line: &str, fd: bool) -> WireRecord {
        WireRecord {
            from: from.into(),
            to: to.into(),
            line: line.into(),
            fd,
        }
    }

    #[test]
    fn summaries_name_what_nodes_code_looks_at() {
        let s = |line: &str, fd| summarize(line, fd).label;
        assert_eq!(
            s(r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#, false),
            "online"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","errno":null,"key":"K","ack":1,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":8000},"seq":0}"#,
                false
            ),
            "errno:null+sockname"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","errno":-98,"key":"K","ack":1,"data":null,"seq":0}"#,
                false
            ),
            "errno:-98"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"K","ack":1,"data":null,"seq":0}}"#,
                true
            ),
            "errno:0 [fd]"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"K","seq":2}}"#,
                true
            ),
            "newconn [fd]"
        );
        assert_eq!(s(r#"{"cmd":"NODE_HANDLE_ACK"}"#, false), "NODE_HANDLE_ACK");
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3}"#,
                false
            ),
            "accepted:true"
        );
        assert_eq!(s(r#"{"lab":"ready","ports":[1]}"#, false), "(ready)");
        assert_eq!(s("connection 2", false), "connection 2");
        assert_eq!(s("answer to connection 2", false), "answer 2");
        // Every connection is the same kind, whatever its number.
        assert_eq!(
            summarize("answer to connection 1", false).kind,
            summarize("answer to connection 7", false).kind
        );
    }

    #[test]
    fn ports_become_placeholders_but_zero_stays() {
        let line = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":41234,"addressType":4,"flags":0,"backlog":0,"seq":2}"#;
        assert_eq!(
            redact_ports(line),
            r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":[PORT],"addressType":4,"flags":0,"backlog":0,"seq":2}"#
        );
        let query = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","port":0,"seq":1}"#;
        assert_eq!(redact_ports(query), query);
        assert_eq!(
            redact_ports(r#"{"cmd":"NODE_CLUSTER","act":"close","key":"::1:8000:6:undefined:0"}"#),
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"::1:[PORT]:6:undefined:0"}"#
        );
        assert_eq!(
            redact_ports(r#"{"lab":"ready","ports":[1,2]}"#),
            r#"{"lab":"ready","ports":[[PORT],[PORT]]}"#
        );
        assert_eq!(redact_ports("connection 1"), "connection 1");
    }

    fn small_run() -> Vec<WireRecord> {
        let online = r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#;
        let newconn = r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"127.0.0.1:0:4:undefined:0","seq":2}}"#;
        vec![
            rec("worker 1", "primary", online, false),
            rec("worker 2", "primary", online, false),
            rec("client", "primary", "connection 1", false),
            rec("primary", "worker 2", newconn, true),
            rec("worker 2", "primary", r#"{"cmd":"NODE_HANDLE_ACK"}"#, false),
            rec("worker 2", "client", "answer to connection 1", false),
        ]
    }

    #[test]
    fn the_diagram_has_a_column_per_actor_and_an_arrow_per_message() {
        let d = sequence_diagram(&small_run());
        let lines: Vec<&str> = d.lines().collect();
        let header = lines[0];
        let cols: Vec<usize> = ["client", "primary", "worker 1", "worker 2"]
            .iter()
            .map(|n| header.find(n).expect("every actor is in the header") + n.len() / 2)
            .collect();
        assert!(cols.windows(2).all(|w| w[0] < w[1]), "{header}");
        // Every row keeps every lifeline in its column (a '|', or '+' where an arrow crosses).
        let diagram_rows: Vec<&str> = lines[1..]
            .iter()
            .take_while(|l| !l.is_empty())
            .copied()
            .collect();
        for row in &diagram_rows {
            let chars: Vec<char> = row.chars().collect();
            for &c in &cols {
                assert!(
                    matches!(chars.get(c), Some('|' | '+')),
                    "col {c} in {row:?}"
                );
            }
        }
        let arrow = |label: &str| {
            *diagram_rows
                .iter()
                .find(|r| r.contains(label))
                .unwrap_or_else(|| panic!("no {label} in\n{d}"))
        };
        // worker 2 -> primary crosses worker 1's lifeline and points left at the primary.
        let online2 = diagram_rows
            .iter()
            .filter(|r| r.contains("online"))
            .nth(1)
            .expect("2nd online");
        let ch: Vec<char> = online2.chars().collect();
        assert_eq!(ch[cols[1] + 1], '<');
        assert_eq!(ch[cols[2]], '+');
        // The primary -> worker 2 arrow points right, at worker 2.
        let newconn: Vec<char> = arrow("newconn [fd]").chars().collect();
        assert_eq!(newconn[cols[3] - 1], '>');
        // The answer goes from worker 2 to the client, over the primary and worker 1.
        let answer: Vec<char> = arrow("answer 1").chars().collect();
        assert_eq!(answer[cols[0] + 1], '<');
        assert_eq!((answer[cols[1]], answer[cols[2]]), ('+', '+'));
        // Footnotes: one per kind, numbered in order of first appearance; online once.
        assert_eq!(d.matches("[1]").count(), 2, "marker and footnote:\n{d}");
        assert!(!d.contains("[6]"), "five kinds, five notes:\n{d}");
        assert!(
            d.contains("[3] primary -> worker 2, with an fd (SCM_RIGHTS)"),
            "{d}"
        );
        assert!(d.lines().all(|l| l.chars().count() <= 100));
        assert!(d.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn nothing_recorded_draws_an_empty_primary() {
        assert_eq!(sequence_diagram(&[]), "  primary\n     |\n     |\n");
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

    #[test]
    fn long_lines_wrap_after_commas_within_100_columns() {
        let fields: String = (0..8)
            .map(|i| format!(r#""address{i}":"127.0.0.1","#))
            .collect();
        let long = format!(r#"{{"cmd":"NODE_CLUSTER","act":"queryServer",{fields}"seq":1}}"#);
        let d = sequence_diagram(&[rec("worker 1", "primary", &long, false)]);
        let note: Vec<&str> = d
            .lines()
            .skip_while(|l| !l.starts_with("[1]"))
            .skip(1)
            .collect();
        assert!(note.len() > 1, "{d}\n{note:?}");
        assert!(note.iter().all(|l| l.len() <= 100 && l.starts_with("    ")));
        assert_eq!(
            note.iter().map(|l| l.trim_start()).collect::<String>(),
            long
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
        let row = Row {
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
