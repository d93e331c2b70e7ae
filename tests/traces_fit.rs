//! Traces that fit (issue 13, item 3): no page of the built book shows more than
//! [`MAX_INLINE`] lines of trace outside a fold.
//!
//! Every ```` ```text ```` block counts, ```` ```text,diagram ```` ones too (a sequence diagram
//! or a table of output is read line by line like a trace), unless it sits inside
//! `<details>`, where the reader opens it on purpose. `{{#trace}}` makes the blocks that
//! pass: the lines the program marked, the whole file folded (`src/book/trace_lines.rs`).
//! Code (`rust`, `js`, `sh`) is not a trace and is not counted.
//!
//! The check reads the HTML, so what an `{{#include}}` pulls in counts as the reader sees it.
//! `scripts/check-book-in-browser` checks the other half of the item in a browser: that no
//! line of such a block is cut.

use std::fs;
use std::path::Path;

use cluster_walkthrough::book::{book_root, build, trace_lines::MAX_INLINE};

/// A text block of a page, outside any `<details>`: how many lines it has, and its first.
#[derive(Debug, PartialEq, Eq)]
struct Block {
    lines: usize,
    first: String,
}

/// The ```` ```text ```` blocks of `html` that are not inside `<details>`.
fn unfolded_text_blocks(html: &str) -> Vec<Block> {
    const CODE: &str = "<code class=\"language-text";
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut rest = html;
    loop {
        let next = ["<details", "</details>", CODE]
            .iter()
            .filter_map(|t| rest.find(t).map(|at| (at, *t)))
            .min();
        let Some((at, tag)) = next else { break };
        rest = &rest[at + tag.len()..];
        match tag {
            "<details" => depth += 1,
            "</details>" => depth = depth.saturating_sub(1),
            _ => {
                let Some(open_end) = rest.find('>') else {
                    break;
                };
                let Some(close) = rest.find("</code>") else {
                    break;
                };
                let text = &rest[open_end + 1..close];
                rest = &rest[close..];
                if depth == 0 {
                    let text = text.trim_end_matches('\n');
                    out.push(Block {
                        lines: text.lines().count(),
                        first: text.lines().next().unwrap_or("").chars().take(60).collect(),
                    });
                }
            }
        }
    }
    out
}

#[test]
fn no_page_shows_more_than_fifteen_lines_of_trace_outside_a_fold() {
    let out = tempfile::tempdir().expect("a temporary directory");
    build(&book_root(), out.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    let mut blocks = 0;
    let mut pages: Vec<_> = fs::read_dir(out.path())
        .expect("the built book")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    pages.sort();
    for page in &pages {
        let name = page.file_name().expect("a file").to_string_lossy();
        // print.html is every chapter again on one page; toc.html and 404.html have no traces.
        if matches!(name.as_ref(), "print.html" | "toc.html" | "404.html") {
            continue;
        }
        for block in unfolded_text_blocks(&read(page)) {
            blocks += 1;
            if block.lines > MAX_INLINE {
                problems.push(format!(
                    "{name}: a text block of {} lines outside <details> (at most {MAX_INLINE}; \
                     use {{{{#trace}}}} and mark the lines that matter): {:?}...",
                    block.lines, block.first
                ));
            }
        }
    }
    assert!(
        blocks >= 20,
        "only {blocks} text blocks found: is the parser still right?"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_counter_sees_text_blocks_and_skips_folds_and_code() {
    let html = "<pre><code class=\"language-text\">a\nb\n</code></pre>\
                <details><summary>s</summary><pre><code class=\"language-text\">x\ny\nz</code></pre></details>\
                <pre><code class=\"language-rust\">fn x() {}\n</code></pre>\
                <pre><code class=\"language-text diagram\">1\n2\n3</code></pre>";
    assert_eq!(
        unfolded_text_blocks(html),
        [
            Block {
                lines: 2,
                first: "a".into()
            },
            Block {
                lines: 3,
                first: "1".into()
            }
        ]
    );
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
