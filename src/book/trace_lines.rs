//! `{{#trace FILE}}`: a trace as a page shows it. The lines that matter stay in sight, at
//! most [`MAX_INLINE`]; the whole trace is folded under them.
//!
//! A chapter writes, on a line of its own,
//!
//! ```text
//! {{#trace ../../tests/snapshots/ch05_round_robin.snap}}
//! {{#trace ../../tests/snapshots/ch08_diagram.snap diagram}}
//! {{#trace img/bench.txt table}}
//! ```
//!
//! The path is relative to the page, as for `{{#include}}`; a `.snap` file is read without
//! its insta header. The word after it says what the file holds: a `trace` (the default), a
//! `diagram` or a `table`, both of which keep their columns (```` ```text,diagram ````).
//!
//! It becomes two blocks: the lines that matter, with a `…` line wherever lines were left
//! out, then `<details>` holding the whole file. **The program that wrote the file chose
//! those lines**, never the page:
//!
//! - in a chapter's trace, the lines the chapter marked as it printed them (see
//!   [`crate::trace::keys`]): a `*` at the end of the label column, or at the start of a line
//!   of a picture or a table ([`crate::trace::unmark`]);
//! - in the benchmark's `bench.txt` and `bench-syscalls.txt`, which only a new run can
//!   rewrite, the blocks named by the titles their writer gives them ([`bench_key_lines`],
//!   [`bench_syscalls_key_lines`]).
//!
//! A `…` line names the heading it skipped over when there is one (`… 7b. The port is
//! taken, SCHED_NONE`), so the reader knows which part the next lines belong to; in a
//! diagram it is a row of dotted lifelines instead. A file with no line chosen, or more than
//! [`MAX_INLINE`] lines to show, fails the build, naming the page and the directive.

use std::path::Path;

use mdbook_driver::book::Book;

use super::directive::indent_rest;
use super::node_lines::DirectiveError;

/// The most lines a trace block shows outside a fold, `…` lines included. `tests/traces_fit.rs`
/// holds every text block of the built book to it.
pub const MAX_INLINE: usize = 15;

/// What a traced file holds, which decides how its blocks look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chapter's trace: lines wrap on a narrow screen.
    Trace,
    /// A picture in text: it keeps its columns; a skipped stretch is a row of dotted lifelines.
    Diagram,
    /// A table in text: it keeps its columns.
    Table,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Trace => "trace",
            Kind::Diagram => "diagram",
            Kind::Table => "table",
        }
    }

    fn fence_info(self) -> &'static str {
        match self {
            Kind::Trace => "text",
            Kind::Diagram | Kind::Table => "text,diagram",
        }
    }
}

/// One `{{#trace ...}}` in a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Byte range of the whole `{{#trace ...}}` in the page.
    pub span: (usize, usize),
    /// The whitespace before it on its line, which every line it becomes gets too.
    pub indent: String,
    /// The directive's text, for messages.
    pub text: String,
    /// The file, relative to the page's directory.
    pub path: String,
    pub kind: Kind,
}

fn parse_args(args: &str) -> Result<(String, Kind), String> {
    const FORM: &str = "expected `{{#trace FILE}}` or `{{#trace FILE diagram|table}}`";
    let words: Vec<&str> = args.split_whitespace().collect();
    let kind = match words.get(1).copied() {
        None | Some("trace") => Kind::Trace,
        Some("diagram") => Kind::Diagram,
        Some("table") => Kind::Table,
        Some(other) => return Err(format!("{other:?} is not trace, diagram or table: {FORM}")),
    };
    match words[..] {
        [path] | [path, _] => Ok((path.to_string(), kind)),
        _ => Err(FORM.to_string()),
    }
}

/// Every `{{#trace ...}}` in `page` (a `\` before it escapes it), in order. A malformed one
/// is an error carrying its text.
pub fn find_directives(page: &str) -> Vec<Result<Directive, (String, String)>> {
    let found = super::directive::scan(page, "#trace").into_iter();
    found
        .map(|f| {
            let f = f?;
            let text = f.text.to_string();
            match parse_args(f.args) {
                Err(why) => Err((text, why)),
                Ok(_) if !f.alone => Err((
                    text,
                    "it must stand on a line of its own (it becomes two blocks)".to_string(),
                )),
                Ok((path, kind)) => Ok(Directive {
                    span: f.span,
                    indent: f.indent.to_string(),
                    text,
                    path,
                    kind,
                }),
            }
        })
        .collect()
}

/// The text of a traced file as the page shows it: an insta snapshot without its header
/// (`---` ... `---`), and no blank lines at either end.
pub fn body(file: &str) -> &str {
    let mut text = file;
    if let Some(rest) = file.strip_prefix("---\n")
        && let Some(end) = rest.find("\n---\n")
    {
        text = &rest[end + 5..];
    }
    let start = text
        .lines()
        .take_while(|l| l.trim().is_empty())
        .map(|l| l.len() + 1)
        .sum::<usize>();
    text[start.min(text.len())..].trim_end()
}

/// The lines of `body` that matter, by number, each as it is to be shown (unmarked): chosen
/// by the program that wrote the file at `path` (see the module's introduction).
pub fn chosen(path: &Path, body: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = body.lines().collect();
    let named = |numbers: Vec<usize>| {
        numbers
            .into_iter()
            .filter_map(|n| lines.get(n).map(|l| (n, l.to_string())))
            .collect()
    };
    match path.file_name().and_then(|n| n.to_str()) {
        Some(crate::bench::OUT_TABLE) => named(bench_key_lines(body)),
        Some(crate::bench::OUT_SYSCALLS) => named(bench_syscalls_key_lines(body)),
        _ => lines
            .iter()
            .enumerate()
            .filter_map(|(n, l)| crate::trace::unmark(l).map(|l| (n, l)))
            .collect(),
    }
}

// The benchmark's files are chosen here, by the blocks their writer titles, not marked by it:
// they change only with a new run (minutes on a quiet machine), and every file under
// `src/bench/` is part of the fingerprint that says a run is stale (`bench::fingerprint`).

/// The lines of a `bench.txt` (`bench::report::Report::table`) shown before its fold: where
/// and when the run was made (its header, up to the `measured on` line) and its first figure,
/// connections per second.
pub fn bench_key_lines(table: &str) -> Vec<usize> {
    let lines: Vec<&str> = table.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("measured on "))
        .map_or(0, |at| at + 1);
    let block = |at: usize| {
        at..at
            + lines[at..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .count()
    };
    let figure = lines
        .iter()
        .position(|l| l.starts_with("Connections per second"))
        .map_or(0..0, block);
    (0..header).chain(figure).collect()
}

/// The lines of a `bench-syscalls.txt` (`bench::syscalls::table`) shown before its fold: the
/// first strategy's table (our round robin's in the book's run), whose calls chapter 11
/// explains one by one.
pub fn bench_syscalls_key_lines(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(blank) = lines.iter().position(|l| l.trim().is_empty()) else {
        return Vec::new();
    };
    let len = lines[blank + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .count();
    (blank + 1..blank + 1 + len).collect()
}

/// Whether line `n` of `lines` is a heading of a trace: a line after a blank one (how
/// `trace::heading` prints), past the first paragraph (the chapter's title and intro), that
/// is not an event's line (a label in a column of ten, marked or not, then a space).
fn is_heading(lines: &[&str], n: usize) -> bool {
    let first_blank = lines.iter().position(|l| l.trim().is_empty());
    let line = lines[n];
    let event = matches!(line.get(9..11), Some("  " | "* "));
    n > 0
        && first_blank.is_some_and(|b| n > b)
        && lines[n - 1].trim().is_empty()
        && !line.starts_with(char::is_whitespace)
        && !line.trim().is_empty()
        && !event
}

/// The line that stands for the skipped lines `from..to` before a kept line `next`: a blank
/// line for blank lines, nothing for rows of a diagram with no arrow, else `…`.
fn gap(lines: &[&str], from: usize, to: usize, next: &str, kind: Kind) -> Option<String> {
    let skipped = &lines[from..to];
    if skipped.is_empty() {
        return None;
    }
    let bare_lifelines = |l: &&str| l.chars().all(|c| c == ' ' || c == '|');
    if kind == Kind::Diagram && skipped.iter().all(bare_lifelines) {
        return None; // a row with no arrow: the lifelines just go on
    }
    if skipped.iter().all(|l| l.trim().is_empty()) {
        return Some(String::new());
    }
    Some(match kind {
        Kind::Diagram => {
            let dotted = next.chars().map(|c| match c {
                '|' | '+' => ':',
                _ => ' ',
            });
            dotted.collect::<String>().trim_end().to_string()
        }
        Kind::Table => "…".to_string(),
        Kind::Trace => match (from..to).rev().find(|&n| is_heading(lines, n)) {
            Some(n) => format!("… {}", lines[n].trim()),
            None => "…".to_string(),
        },
    })
}

/// The block shown before the fold: the chosen lines of `body`, in order, with a gap line
/// wherever lines were left out between them (and before the first, when that skips a
/// heading of a trace), and the indentation the chosen lines share taken off.
pub fn excerpt(body: &str, chosen: &[(usize, String)], kind: Kind) -> Vec<String> {
    let lines: Vec<&str> = body.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut next_from = None;
    for (n, line) in chosen {
        match next_from {
            None if kind == Kind::Trace => {
                if let Some(h) = (0..*n).rev().find(|&k| is_heading(&lines, k)) {
                    out.push(format!("… {}", lines[h].trim()));
                }
            }
            None => {}
            Some(from) => out.extend(gap(&lines, from, *n, line, kind)),
        }
        out.push(line.clone());
        next_from = Some(n + 1);
    }
    let indent = chosen
        .iter()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    // Off every line that has it: not off a `…` line, which starts at the edge.
    out.iter()
        .map(
            |l| match l.get(..indent).is_some_and(|s| s.trim().is_empty()) {
                true => l[indent..].trim_end().to_string(),
                false => l.trim_end().to_string(),
            },
        )
        .collect()
}

/// A fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// Text going into the page as it is: an `{{#` in it is escaped, so mdBook's own
/// preprocessors leave it alone.
fn verbatim(text: &str) -> String {
    text.replace("{{#", "\\{{#")
}

/// The markdown a directive becomes: the excerpt, then the whole `body` in `<details>`.
pub fn render(kind: Kind, body: &str, excerpt: &[String]) -> String {
    let shown = excerpt.join("\n");
    let info = kind.fence_info();
    let (f1, f2) = (fence(&shown), fence(body));
    let count = body.lines().count();
    format!(
        "{f1}{info}\n{}\n{f1}\n\n\
         <details><summary>The whole {} ({count} lines)</summary>\n\n\
         {f2}{info}\n{}\n{f2}\n\n\
         </details>",
        verbatim(&shown),
        kind.word(),
        verbatim(body)
    )
}

/// The excerpt a directive in the page at `page` shows, and the body it is cut from; or why
/// it cannot be shown.
pub fn inline(page: &Path, d: &Directive) -> Result<(Vec<String>, String), String> {
    let dir = page.parent().unwrap_or(Path::new("."));
    let file = dir.join(&d.path);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let body = body(&text).to_string();
    let chosen = chosen(&file, &body);
    if chosen.is_empty() {
        return Err(format!(
            "no line of {} is marked as one that matters: the program that writes it names \
             them (trace::keys, or a key_lines function)",
            d.path
        ));
    }
    let excerpt = excerpt(&body, &chosen, d.kind);
    if excerpt.len() > MAX_INLINE {
        return Err(format!(
            "it would show {} lines before its fold, more than {MAX_INLINE}: the program \
             that writes {} marks too many",
            excerpt.len(),
            d.path
        ));
    }
    Ok((excerpt, body))
}

/// Expands every `{{#trace}}` in one page's markdown; `page` is its file.
fn expand_page(content: &str, page: &Path) -> Result<String, DirectiveError> {
    let fail = |directive: &str, why: String| DirectiveError {
        page: page.to_path_buf(),
        directive: directive.to_string(),
        why,
    };
    let mut out = String::with_capacity(content.len());
    let mut done = 0;
    for found in find_directives(content) {
        let d = found.map_err(|(text, why)| fail(&text, why))?;
        let (excerpt, body) = inline(page, &d).map_err(|why| fail(&d.text, why))?;
        out.push_str(&content[done..d.span.0]);
        out.push_str(&indent_rest(&render(d.kind, &body, &excerpt), &d.indent));
        done = d.span.1;
    }
    out.push_str(&content[done..]);
    Ok(out)
}

/// Expands every `{{#trace}}` in every chapter of `book`, whose sources are in `src_dir`.
/// Stops at the first directive that cannot be expanded.
pub fn expand(book: &mut Book, src_dir: &Path) -> Result<(), DirectiveError> {
    super::directive::each_page(book, src_dir, "#trace", expand_page)
}

#[cfg(test)]
#[path = "trace_lines_tests.rs"]
mod tests;
