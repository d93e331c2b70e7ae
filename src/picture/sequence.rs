//! The sequence diagram: one column per actor (client, primary, workers), one arrow per
//! channel message, in the order the primary saw them, and a footnote with the exact line
//! of the first message of each kind.

use serde_json::Value;

use super::{pack, redact_ports, summarize};
use crate::channel::WireRecord;
use crate::trace;

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
///
/// The rows that matter are marked (`trace::mark_line`: a `*` in the first column, a space
/// otherwise): the header, and the first message of each of Node's kinds and the client's.
/// The book shows those before its fold; the lab's own messages (`(ready)`) are folded.
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
    out.push(trace::mark_line(&finish(header)));
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
        match a.note.is_some() && !a.kind.starts_with("user:") {
            true => out.push(trace::mark_line(&finish(row))),
            false => out.push(finish(row)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(from: &str, to: &str, line: &str, fd: bool) -> WireRecord {
        WireRecord {
            from: from.into(),
            to: to.into(),
            line: line.into(),
            fd,
        }
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
        assert_eq!(sequence_diagram(&[]), "* primary\n     |\n     |\n");
    }

    #[test]
    fn the_header_and_the_first_row_of_each_of_nodes_kinds_are_marked() {
        let mut run = small_run();
        run.insert(1, rec("worker 1", "primary", r#"{"lab":"ready"}"#, false));
        let d = sequence_diagram(&run);
        let marked: Vec<&str> = d.lines().filter(|l| l.starts_with('*')).collect();
        assert!(
            marked[0].contains("client") && marked[0].contains("primary"),
            "{d}"
        );
        assert_eq!(marked.len(), 1 + 5, "the header and five kinds:\n{d}");
        assert!(
            d.lines()
                .any(|l| l.contains("(ready)") && l.starts_with(' ')),
            "the lab's own message is not marked:\n{d}"
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
}
