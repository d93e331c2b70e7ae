//! Honest time boxes. Every chapter opens with a box whose `**Time:**` line says how long it
//! takes: "N min reading + M min exercises". This test counts what the page shows and fails
//! when a box promises less time than that takes:
//!
//! - **Reading** is everything before `## Exercises`: its prose at [`WORDS_PER_MINUTE`], and
//!   its code, traces and tables of output at [`LINES_PER_MINUTE`]. A code block's lines are
//!   counted after its `{{#include}}` links are resolved, as mdBook resolves them (a line range
//!   or an anchor of the target file); a `{{#trace}}` shows the lines its program marked,
//!   and folds the rest. A `<details>` fold is left out: the page shows its summary, and the
//!   reader may skip the rest.
//! - **Exercises** is the `## Exercises` section, read at the same speeds, folded answers
//!   included. The box may give more, for doing them, but not less.
//!
//! Blank lines count for nothing. A box's reading must be at least the estimate rounded up,
//! and at most that rounded up to a multiple of 5, plus 5: a box that stayed at 50 minutes
//! after its traces were folded away is as wrong as one that says 20 for 50.
//! `cargo test --test time_boxes -- --nocapture` prints every chapter's numbers.
//!
//! The facilitator's three-hour plan is checked too: its table runs from 0:00 to 3:00 without
//! a gap, each block's heading gives the minutes of its row, and a block's chapters add up to
//! the block.

use std::fs;
use std::path::{Path, PathBuf};

use cluster_walkthrough::book::{self, book_root, node_lines, trace_lines};
use cluster_walkthrough::node_source::{self, Want};

/// Prose, read with care: a technical text, with code names in it.
const WORDS_PER_MINUTE: f64 = 200.0;
/// Code, traces and tables of output: six seconds a line, to find what the prose points at.
const LINES_PER_MINUTE: f64 = 10.0;

/// Pages whose box is known to be short while another change owns their prose. Each is
/// printed with the number it needs instead of failing; once its box is right, the test fails
/// until its name is taken out of this list.
const NOT_YET: &[&str] = &[];

fn src() -> PathBuf {
    book_root().join("src")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The numbered chapters of `SUMMARY.md` (`- [3. cluster.fork: ...](ch03-fork.md)`), in order.
fn chapters() -> Vec<(String, PathBuf)> {
    read(&src().join("SUMMARY.md"))
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("- [")?;
            let (title, rest) = rest.split_once("](")?;
            let (file, _) = rest.split_once(')')?;
            title
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| (title.to_string(), src().join(file)))
        })
        .collect()
}

/// What a box promises, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeBox {
    reading: u32,
    exercises: u32,
}

/// The `**Time:**` line of the opening box, taken apart. Each number is the one before
/// "reading" or "exercises", with "min", "minutes" or "of" between: "12 min reading",
/// "10 minutes of exercises".
fn parse_time(line: &str) -> Option<TimeBox> {
    let words: Vec<&str> = line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let (mut reading, mut exercises) = (None, None);
    for (i, word) in words.iter().enumerate() {
        let Ok(n) = word.parse::<u32>() else { continue };
        let what = words[i + 1..]
            .iter()
            .find(|w| !matches!(**w, "min" | "mins" | "minute" | "minutes" | "of"));
        match what {
            Some(&"reading") => reading = reading.or(Some(n)),
            Some(w) if w.starts_with("exercise") => exercises = exercises.or(Some(n)),
            _ => {}
        }
    }
    Some(TimeBox {
        reading: reading?,
        exercises: exercises?,
    })
}

/// The box at the top of a chapter: its first block quote, and the `**Time:**` line in it.
fn stated(markdown: &str) -> Option<TimeBox> {
    markdown
        .lines()
        .skip_while(|l| !l.starts_with('>'))
        .take_while(|l| l.starts_with('>'))
        .find(|l| l.contains("**Time:**"))
        .and_then(parse_time)
}

/// What one part of a page asks of its reader.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Load {
    words: usize,
    lines: usize,
}

impl Load {
    fn minutes(self) -> f64 {
        self.words as f64 / WORDS_PER_MINUTE + self.lines as f64 / LINES_PER_MINUTE
    }
}

/// The non-blank lines an mdBook link shows: `{{#include file}}`, `file:anchor`, `file:N`,
/// `file:N:`, `file::M` or `file:N:M` (lines counted from 1, both ends included). Anchor
/// marker lines (`ANCHOR:`, `ANCHOR_END:`) are not shown. `{{#title ...}}` shows nothing.
fn link_lines(md: &Path, link: &str) -> usize {
    let inner = link.trim_start_matches('{').trim_end_matches('}').trim();
    let inner = inner.strip_prefix('#').unwrap_or(inner);
    let (kind, target) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
    match kind {
        "title" => return 0,
        "node" => return node_lines_shown(md, link),
        "trace" => return trace_lines_shown(md, link),
        "include" | "rustdoc_include" | "playground" => {}
        _ => panic!(
            "{}: tests/time_boxes.rs does not know how many lines `{link}` shows; teach \
             `link_lines` (or the reading time of this page is not counted)",
            md.display()
        ),
    }
    // `{{#playground file editable}}`: the attributes after the path do not matter here.
    let target = target.split_whitespace().next().unwrap_or("");
    let (path, selector) = match target.split_once(':') {
        Some((p, s)) => (p, Some(s)),
        None => (target, None),
    };
    let file = md.parent().expect("a chapter is in a directory").join(path);
    let text = read(&file);
    let all: Vec<&str> = text.lines().collect();
    let number = |s: &str| s.parse::<usize>().ok();
    let shown: Vec<&str> = match selector {
        None => all,
        Some(sel) if sel.chars().all(|c| c.is_ascii_digit() || c == ':') => {
            let (first, last) = match sel.split_once(':') {
                Some((a, b)) => (number(a).unwrap_or(1), number(b).unwrap_or(all.len())),
                None => {
                    let n = number(sel).unwrap_or(1);
                    (n, n)
                }
            };
            all.into_iter()
                .skip(first.saturating_sub(1))
                .take((last + 1).saturating_sub(first.max(1)))
                .collect()
        }
        Some(anchor) => {
            let start = all
                .iter()
                .position(|l| marker(l, "ANCHOR", anchor))
                .unwrap_or_else(|| panic!("{link}: no ANCHOR: {anchor} in {}", file.display()));
            let end = all[start..]
                .iter()
                .position(|l| marker(l, "ANCHOR_END", anchor))
                .map_or(all.len(), |n| start + n);
            all[start + 1..end].to_vec()
        }
    };
    shown
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.contains("ANCHOR:") && !l.contains("ANCHOR_END:"))
        .count()
}

/// The non-blank lines a `{{#node 24 lib/F.js:NAME}}` shows: its caption, and Node's lines as
/// the build reads them from the pinned binary (which the test checks is installed first).
fn node_lines_shown(md: &Path, link: &str) -> usize {
    let [Ok(directive)] = &node_lines::find_directives(link)[..] else {
        panic!("{}: {link} is not one good {{{{#node}}}}", md.display());
    };
    let excerpt = node_lines::excerpt_here(directive)
        .unwrap_or_else(|why| panic!("{}: {link}: {why}", md.display()))
        .expect("the pinned Node is installed");
    1 + excerpt
        .text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The non-blank lines a `{{#trace FILE}}` shows before its fold: the lines the program
/// marked, and the `…` lines between them. The whole trace is in `<details>`, and a fold is
/// not counted (the reader sees its summary only).
fn trace_lines_shown(md: &Path, link: &str) -> usize {
    let [Ok(directive)] = &trace_lines::find_directives(link)[..] else {
        panic!("{}: {link} is not one good {{{{#trace}}}}", md.display());
    };
    let (excerpt, _) = trace_lines::inline(md, directive)
        .unwrap_or_else(|why| panic!("{}: {link}: {why}", md.display()));
    excerpt.iter().filter(|l| !l.trim().is_empty()).count()
}

/// Whether `line` is the `kind: name` marker of an anchor (`// ANCHOR: listen`).
fn marker(line: &str, kind: &str, name: &str) -> bool {
    line.split_once(&format!("{kind}:"))
        .is_some_and(|(_, rest)| rest.trim() == name)
}

/// Every `{{#...}}` link on a line. (`\{{#...}}` is an escaped one, shown as text.)
fn links_in(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("{{") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'\\';
        let after = &rest[at..];
        let Some(end) = after.find("}}") else { break };
        if !escaped && after[2..].trim_start().starts_with('#') {
            out.push(&after[..end + 2]);
        }
        rest = &after[end + 2..];
    }
    out
}

/// The words of a line of prose: Markdown links keep their text, HTML tags and table rules
/// go, and a word is anything with a letter or a digit in it.
fn prose_words(line: &str) -> usize {
    let mut text = String::with_capacity(line.len());
    let mut rest = line;
    // `[text](url)` → `text`; `<tag ...>` → nothing.
    while let Some(at) = rest.find(['(', '<']) {
        let (before, after) = rest.split_at(at);
        text.push_str(before);
        let close = if after.starts_with('(') && before.ends_with(']') {
            ')'
        } else if after.starts_with('<') {
            '>'
        } else {
            text.push_str(&after[..1]);
            rest = &after[1..];
            continue;
        };
        match after.find(close) {
            Some(end) => rest = &after[end + 1..],
            None => {
                text.push_str(after);
                rest = "";
            }
        }
    }
    text.push_str(rest);
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// How a page divides: what is read before the exercises, and the exercises.
#[derive(Debug, Default)]
struct Estimate {
    reading: Load,
    exercises: Load,
}

fn estimate(md: &Path) -> Estimate {
    let text = read(md);
    let mut est = Estimate::default();
    let mut in_exercises = false;
    let mut in_code = false;
    let mut fold_depth = 0usize;
    for line in text.lines() {
        let t = line.trim_start();
        if !in_code && t.starts_with("## ") {
            in_exercises = t.starts_with("## Exercises");
        }
        let load = if in_exercises {
            &mut est.exercises
        } else {
            &mut est.reading
        };
        if t.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            fold_depth += t.matches("<details").count();
        }
        // A fold outside the exercises: the reader sees its summary only.
        let folded = !in_exercises && fold_depth > 0 && !t.contains("<summary");
        if !in_code {
            fold_depth = fold_depth.saturating_sub(t.matches("</details>").count());
        }
        if folded {
            continue;
        }
        let links = links_in(line);
        if !links.is_empty() {
            load.lines += links.iter().map(|l| link_lines(md, l)).sum::<usize>();
        } else if in_code {
            load.lines += usize::from(!t.is_empty());
        } else if t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
            // A table's rule line.
        } else {
            load.words += prose_words(line);
        }
    }
    est
}

fn rounded_up(minutes: f64) -> u32 {
    minutes.ceil() as u32
}

/// What a box should say for `minutes`: rounded up to a multiple of 5.
fn box_minutes(minutes: f64) -> u32 {
    rounded_up(minutes).div_ceil(5) * 5
}

/// Why a box's reading is wrong for an estimate of `minutes`, if it is.
fn reading_problem(stated: u32, minutes: f64) -> Option<String> {
    let (low, high) = (rounded_up(minutes), box_minutes(minutes) + 5);
    (stated < low || stated > high).then(|| {
        format!(
            "the box says {stated} min of reading; the page takes {minutes:.1} (say {})",
            box_minutes(minutes)
        )
    })
}

#[test]
fn every_chapter_box_gives_at_least_the_time_its_page_takes_to_read() {
    let chapters = chapters();
    assert!(
        chapters.len() >= 12,
        "SUMMARY.md lists the chapters 0 to 11"
    );
    let mut problems = Vec::new();
    eprintln!(
        "{:<42} {:>6} {:>6} {:>7} {:>6}   {:>6} {:>6} {:>7} {:>6}",
        "chapter", "words", "lines", "needs", "box", "words", "lines", "needs", "box"
    );
    eprintln!("{:<42} {:^29}   {:^29}", "", "reading", "exercises");
    // A page that shows Node's lines (`{{#node}}`) can only be counted with the binary they
    // are read from.
    let no_node = node_source::find_node(Want::Exact(book::NODE))
        .err()
        .map(|e| e.skip_line().unwrap_or_else(|| panic!("{e}")));
    for (title, md) in &chapters {
        let text = read(md);
        let name = md.file_name().expect("a file").to_string_lossy();
        if let Some(skip) = no_node.as_ref().filter(|_| text.contains("{{#node")) {
            eprintln!("{name}: {skip}");
            continue;
        }
        let est = estimate(md);
        let Some(stated) = stated(&text) else {
            problems.push(format!(
                "{name}: no `**Time:**` line in the opening box (N min reading + M min exercises)"
            ));
            continue;
        };
        let (read_min, ex_min) = (est.reading.minutes(), est.exercises.minutes());
        eprintln!(
            "{:<42} {:>6} {:>6} {:>7.1} {:>6}   {:>6} {:>6} {:>7.1} {:>6}",
            title.chars().take(42).collect::<String>(),
            est.reading.words,
            est.reading.lines,
            read_min,
            stated.reading,
            est.exercises.words,
            est.exercises.lines,
            ex_min,
            stated.exercises
        );
        let problem = reading_problem(stated.reading, read_min).map(|why| {
            format!(
                "{name}: {why}: {} words and {} lines, at {WORDS_PER_MINUTE} words and \
                 {LINES_PER_MINUTE} lines a minute",
                est.reading.words, est.reading.lines
            )
        });
        match (problem, NOT_YET.contains(&name.as_ref())) {
            (Some(p), false) => problems.push(p),
            (Some(p), true) => eprintln!("  not yet (NOT_YET): {p}"),
            (None, true) => problems.push(format!(
                "{name}: its box is right now: take it out of NOT_YET in tests/time_boxes.rs"
            )),
            (None, false) => {}
        }
        if stated.exercises < rounded_up(ex_min) {
            problems.push(format!(
                "{name}: the box says {} min of exercises; only reading them and their answers \
                 ({} words, {} lines) takes {:.1}",
                stated.exercises, est.exercises.words, est.exercises.lines, ex_min
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One row of the plan's table: `| 0:10–0:40 | Block 1: ... | [1](...), [2](...) | ... |`.
#[derive(Debug)]
struct Row {
    start: u32,
    end: u32,
    block: String,
}

/// `2:35` → 155.
fn clock(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
}

fn plan_rows(facilitator: &str) -> Vec<Row> {
    facilitator
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let (a, b) = cells.first()?.split_once(['–', '-'])?;
            Some(Row {
                start: clock(a)?,
                end: clock(b)?,
                block: cells.get(1)?.trim().to_string(),
            })
        })
        .collect()
}

/// The number before "minutes" in the last parentheses of a line: `(25 minutes)` → 25.
fn minutes_in(line: &str) -> Option<u32> {
    let open = line.rfind('(')?;
    let inside = &line[open + 1..];
    let inside = &inside[..inside.find(')')?];
    let (n, unit) = inside.trim().split_once(' ')?;
    unit.starts_with("minute").then(|| n.parse().ok())?
}

#[test]
fn the_three_hour_plan_adds_up() {
    let text = read(&src().join("facilitator.md"));
    let rows = plan_rows(&text);
    assert!(rows.len() >= 5, "the plan's table has its rows: {rows:?}");
    assert_eq!(rows[0].start, 0, "the plan starts at 0:00");
    for pair in rows.windows(2) {
        assert_eq!(
            pair[0].end, pair[1].start,
            "no gap or overlap between {:?} and {:?}",
            pair[0].block, pair[1].block
        );
    }
    assert_eq!(rows.last().expect("rows").end, 180, "the plan ends at 3:00");

    // Each `### Block N: ... (M minutes)` section: M is its row's length, and the chapters in
    // it (`- Chapter 5 (25 minutes).`) add up to M.
    let mut sections: Vec<(String, u32, u32)> = Vec::new(); // (heading, minutes, chapters' sum)
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            if let Some(m) = minutes_in(heading) {
                sections.push((heading.to_string(), m, 0));
            } else {
                sections.push((heading.to_string(), 0, 0));
            }
        } else if line.starts_with("- Chapter") || line.starts_with("- Chapters") {
            let first_sentence = line.split_once(". ").map_or(line, |(a, _)| a);
            if let (Some(last), Some(m)) = (sections.last_mut(), minutes_in(first_sentence)) {
                last.2 += m;
            }
        }
    }
    for row in &rows {
        let name = row.block.split(':').next().unwrap_or(&row.block).trim();
        let Some((heading, minutes, chapters)) = sections
            .iter()
            .find(|(h, m, _)| *m > 0 && h.split([':', '(']).next().unwrap_or(h).trim() == name)
        else {
            panic!("no `### {name} (N minutes)` section for the row {row:?}");
        };
        assert_eq!(
            *minutes,
            row.end - row.start,
            "`### {heading}` and its row {}–{} disagree",
            row.start,
            row.end
        );
        if *chapters > 0 {
            assert_eq!(
                chapters, minutes,
                "the chapters of `### {heading}` add up to {chapters} minutes"
            );
        }
    }
}

#[test]
fn the_counting_rules_hold() {
    assert_eq!(
        parse_time("> **Time:** about 5 minutes of reading, 5 minutes of exercises."),
        Some(TimeBox {
            reading: 5,
            exercises: 5
        })
    );
    assert_eq!(
        parse_time("> **Time:** 12 min reading + 10 min exercises"),
        Some(TimeBox {
            reading: 12,
            exercises: 10
        })
    );
    assert_eq!(parse_time("> **Time:** 12 min"), None);
    assert_eq!(
        prose_words("See [`queryServer`](https://github.com/x/y.js#L268), <b>then</b> | a |"),
        4
    );
    assert_eq!(prose_words("| --- | --- |"), 0);
    assert_eq!(
        links_in("```text\n{{#include a.snap:4:}}"),
        ["{{#include a.snap:4:}}"]
    );
    assert!(links_in(r"\{{#include a.snap}}").is_empty());
    assert_eq!(clock("2:35"), Some(155));
    assert_eq!(box_minutes(30.2), 35);
    assert_eq!(box_minutes(35.0), 35);
    assert!(reading_problem(35, 30.2).is_none());
    assert!(
        reading_problem(40, 30.2).is_none(),
        "5 over the rounded estimate is allowed"
    );
    assert!(reading_problem(30, 30.2).is_some(), "below the estimate");
    assert!(reading_problem(45, 30.2).is_some(), "far above it");
    assert_eq!(minutes_in("- Chapter 5 (25 minutes)"), Some(25));
    assert_eq!(
        minutes_in("### Block 3: chapters 5 and 6 (40 minutes)"),
        Some(40)
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    fs::write(
        dir.path().join("f.rs"),
        "a\n// ANCHOR: x\nb\n\nc\n// ANCHOR: y\nd\n// ANCHOR_END: y\n// ANCHOR_END: x\ne\n",
    )
    .expect("write");
    let md = dir.path().join("ch.md");
    assert_eq!(link_lines(&md, "{{#include f.rs}}"), 5, "a, b, c, d, e");
    assert_eq!(link_lines(&md, "{{#include f.rs:x}}"), 3, "b, c, d");
    assert_eq!(link_lines(&md, "{{#include f.rs:y}}"), 1);
    assert_eq!(link_lines(&md, "{{#include f.rs:3:}}"), 4, "b, c, d, e");
    assert_eq!(link_lines(&md, "{{#include f.rs:1:3}}"), 2, "a, b");
    assert_eq!(link_lines(&md, "{{#include f.rs:10}}"), 1, "e");
    assert_eq!(link_lines(&md, "{{#include f.rs::1}}"), 1, "a");

    fs::write(
        &md,
        "# 9. T\n\n> **Time:** 1 min reading + 1 min exercises\n\nOne two three.\n\n```text\n\
         {{#include f.rs:x}}\nfour\n```\n\n<details><summary>Trace</summary>\n\n```text\n\
         {{#include f.rs}}\n```\n\n</details>\n\n## Exercises\n\n1. Five six.\n\n   \
         <details><summary>Answer</summary>\n\n   Seven.\n\n   </details>\n",
    )
    .expect("write");
    let est = estimate(&md);
    // "9. T", the box's 7 words, "One two three.", the fold's summary "Trace" — and not
    // the folded trace.
    assert_eq!(
        est.reading,
        Load {
            words: 2 + 7 + 3 + 1,
            lines: 3 + 1
        }
    );
    // "Exercises", "1. Five six.", "Answer", "Seven." — answers count here.
    assert_eq!(est.exercises, Load { words: 6, lines: 0 });
}
