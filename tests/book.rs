//! Checks on the mdBook in `book/`: it builds, search is on, and the links
//! that pull code and snapshot files into the chapters are not broken.
//!
//! mdBook only logs a broken `{{#include}}` and keeps going: a missing file
//! leaves the raw `{{#include ...}}` text in the page, and a misspelled anchor
//! gives an empty code block. These tests turn both into failures. They walk
//! whatever chapters exist, so they keep working as chapters are added.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster_walkthrough::book::node_lines::{self, missing_note};
use cluster_walkthrough::book::{self, BookError, book_root, build, build_noting};
use cluster_walkthrough::node_source::{self, NodeBinary, Version, Want};

/// Every file under `dir` (recursively) whose name ends with `.{ext}`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One `{{#kind target ...}}` link in a chapter, as mdBook's links
/// preprocessor finds it.
#[derive(Debug)]
struct Link {
    /// The whole `{{#...}}` text, for messages.
    text: String,
    /// `include`, `rustdoc_include`, `playground`, `title`, ...
    kind: String,
    /// The file path, without the `:range` or `:anchor` part.
    path: String,
    /// What follows the first `:` after the path (`5:`, `10:20`, `name`),
    /// or `None` when there is no `:`.
    selector: Option<String>,
}

/// Finds links the way mdBook 0.5 does (`find_links` in mdbook-driver's
/// `links.rs`): `{{`, optional spaces, `#kind`, spaces, the target up to the
/// next `}`, then `}}`. `\{{#...}}` is an escaped link and is skipped.
/// The links are searched in the raw markdown, code blocks included, as
/// mdBook does.
fn find_links(markdown: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let bytes = markdown.as_bytes();
    let mut i = 0;
    while let Some(off) = markdown[i..].find("{{") {
        let start = i + off;
        i = start + 2;
        if start > 0 && bytes[start - 1] == b'\\' && markdown[i..].starts_with('#') {
            // An escaped link. mdBook's pattern for it (backslash, `{{#`,
            // anything, `}}`) is greedy: it runs to the last `}}` on the line.
            let line_end = markdown[i..].find('\n').map_or(markdown.len(), |n| i + n);
            if let Some(last) = markdown[i..line_end].rfind("}}") {
                i += last + 2;
                continue;
            }
        }
        let rest = markdown[i..].trim_start();
        let Some(rest) = rest.strip_prefix('#') else {
            continue;
        };
        let kind_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (kind, rest) = rest.split_at(kind_len);
        if kind.is_empty() || !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let Some(close) = rest.find('}') else {
            continue;
        };
        if !rest[close..].starts_with("}}") {
            continue;
        }
        let target = rest[..close].trim();
        let Some(first) = target.split_whitespace().next() else {
            continue;
        };
        let end = markdown.len() - rest.len() + close + 2;
        let (path, selector) = match first.split_once(':') {
            Some((path, sel)) => (path, Some(sel.to_string())),
            None => (first, None),
        };
        links.push(Link {
            text: markdown[start..end].to_string(),
            kind: kind.to_string(),
            path: path.to_string(),
            selector,
        });
        i = end;
    }
    links
}

/// All links in all markdown files under `src`, with the file they are in.
fn all_links(src: &Path) -> Vec<(PathBuf, Link)> {
    let mut all = Vec::new();
    for md in files_with_ext(src, "md") {
        for link in find_links(&read(&md)) {
            all.push((md.clone(), link));
        }
    }
    all
}

/// The file a link points at: paths are relative to the markdown file.
fn target_of(md: &Path, link: &Link) -> PathBuf {
    md.parent().unwrap().join(&link.path)
}

fn is_file_link(link: &Link) -> bool {
    matches!(
        link.kind.as_str(),
        "include" | "rustdoc_include" | "playground"
    )
}

/// The anchor name of an `include` or `rustdoc_include` link, if its
/// selector is an anchor rather than a line range (mdBook's rule: the part
/// before the next `:` is neither empty nor a number).
fn anchor_of(link: &Link) -> Option<&str> {
    if !matches!(link.kind.as_str(), "include" | "rustdoc_include") {
        return None;
    }
    let first = link.selector.as_deref()?.split(':').next().unwrap_or("");
    (!first.is_empty() && first.parse::<usize>().is_err()).then_some(first)
}

/// Whether some line has `marker` (`ANCHOR:` or `ANCHOR_END:`), optional
/// spaces, then exactly `name` (mdBook's anchor names are `[\w-]+`).
fn has_marker(text: &str, marker: &str, name: &str) -> bool {
    text.lines().any(|line| {
        line.match_indices(marker).any(|(at, _)| {
            let after = line[at + marker.len()..].trim_start();
            after.strip_prefix(name).is_some_and(|rest| {
                !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
            })
        })
    })
}

/// The 1-based line number of the first body line of an insta snapshot,
/// i.e. the line after the second `---`. `None` if the file does not start
/// with an insta header.
fn snap_body_start(snap: &str) -> Option<usize> {
    let mut lines = snap.lines().enumerate();
    let (_, first) = lines.next()?;
    if first.trim_end() != "---" {
        return None;
    }
    lines
        .find(|(_, line)| line.trim_end() == "---")
        .map(|(index, _)| index + 2)
}

/// Problems in the built HTML under `out`: raw `{{#` text (an include that
/// mdBook could not resolve) and empty code blocks.
fn html_problems(out: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for page in files_with_ext(out, "html") {
        let html = read(&page);
        let name = page.strip_prefix(out).unwrap().display();
        if html.contains("{{#") {
            problems.push(format!(
                "{name}: raw `{{{{#` left in the page (an include that mdBook could not resolve)"
            ));
        }
        if has_empty_code_block(&html) {
            problems.push(format!(
                "{name}: empty code block (a misspelled anchor or an empty line range?)"
            ));
        }
    }
    problems
}

/// A code block with nothing but whitespace inside: `<pre><code>` or
/// `<pre><code class="language-...">`, then `</code>`. This is what mdBook
/// makes of a fenced block whose include picked no lines.
fn has_empty_code_block(html: &str) -> bool {
    html.match_indices("<pre><code").any(|(at, _)| {
        let rest = &html[at + "<pre><code".len()..];
        rest.find('>')
            .is_some_and(|gt| rest[gt + 1..].trim_start().starts_with("</code>"))
    })
}

/// `{{#include}}`, `{{#rustdoc_include}}` and `{{#playground}}` links in the
/// markdown under `src` whose file does not exist.
fn missing_include_problems(src: &Path) -> Vec<String> {
    all_links(src)
        .into_iter()
        .filter(|(_, link)| is_file_link(link))
        .filter(|(md, link)| !target_of(md, link).is_file())
        .map(|(md, link)| format!("{}: {} (no such file)", md.display(), link.text))
        .collect()
}

/// Includes of `.snap` files under `src` that do not start exactly at the
/// first line after insta's header, so the header (or the first lines of the
/// output) would leak into (or be cut from) the book.
fn snapshot_include_problems(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (md, link) in all_links(src) {
        if !is_file_link(&link) || !link.path.ends_with(".snap") {
            continue;
        }
        let target = target_of(&md, &link);
        let where_ = format!("{}: {}", md.display(), link.text);
        let Ok(snap) = fs::read_to_string(&target) else {
            problems.push(format!("{where_}: cannot read {}", target.display()));
            continue;
        };
        let Some(body) = snap_body_start(&snap) else {
            problems.push(format!(
                "{where_}: {} has no insta header (`---` ... `---`)",
                target.display()
            ));
            continue;
        };
        let start = link
            .selector
            .as_deref()
            .and_then(|sel| sel.split(':').next())
            .and_then(|first| first.parse::<usize>().ok());
        if start != Some(body) {
            problems.push(format!(
                "{where_}: must start at line {body}, right after the insta header; \
                 write `{}:{body}:`",
                link.path
            ));
        }
    }
    problems
}

/// Anchored includes under `src` whose file lacks `ANCHOR: name` or
/// `ANCHOR_END: name`.
fn anchor_problems(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (md, link) in all_links(src) {
        let Some(anchor) = anchor_of(&link) else {
            continue;
        };
        let target = target_of(&md, &link);
        let Ok(text) = fs::read_to_string(&target) else {
            continue; // reported by `missing_include_problems`
        };
        for marker in ["ANCHOR:", "ANCHOR_END:"] {
            if !has_marker(&text, marker, anchor) {
                problems.push(format!(
                    "{}: {}: no `{marker} {anchor}` in {}",
                    md.display(),
                    link.text,
                    target.display()
                ));
            }
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn book_builds_with_search_and_no_broken_links_in_the_html() {
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let index = build(&book_root(), out.path()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("book built in {:?}", started.elapsed());

    assert!(index.is_file(), "no index.html at {}", index.display());
    assert!(
        index.starts_with(out.path()),
        "{} is outside {}",
        index.display(),
        out.path().display()
    );

    // mdBook hashes static file names (`searchindex-0123abcd.js`).
    let search_index = fs::read_dir(out.path()).unwrap().any(|entry| {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        name.starts_with("searchindex") && (name.ends_with(".js") || name.ends_with(".json"))
    });
    assert!(
        search_index,
        "no searchindex*.js(on) in the output: is search on?"
    );

    let chapters = files_with_ext(&book_root().join("src"), "md").len() - 1; // minus SUMMARY.md
    let pages = files_with_ext(out.path(), "html").len();
    assert!(
        pages >= chapters,
        "{pages} html pages for {chapters} chapters"
    );
    assert_none(html_problems(out.path()));
}

#[test]
fn included_files_exist() {
    assert_none(missing_include_problems(&book_root().join("src")));
}

#[test]
fn snapshot_includes_start_after_the_insta_header() {
    assert_none(snapshot_include_problems(&book_root().join("src")));
}

#[test]
fn anchored_includes_have_both_anchor_markers() {
    assert_none(anchor_problems(&book_root().join("src")));
}

/// The checks above must catch what they claim to: run them on a small
/// broken book.
#[test]
fn checks_catch_a_broken_book() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("book");
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    // The real configuration: how code blocks render depends on it.
    fs::copy(book_root().join("book.toml"), root.join("book.toml")).unwrap();
    fs::write(src.join("SUMMARY.md"), "# Summary\n\n- [A](a.md)\n").unwrap();
    fs::write(
        src.join("x.rs"),
        "// ANCHOR: good\nfn x() {}\n// ANCHOR_END: good\n",
    )
    .unwrap();
    fs::write(
        src.join("t.snap"),
        "---\nsource: tests/t.rs\nexpression: out\n---\nline one\n",
    )
    .unwrap();
    fs::write(
        src.join("a.md"),
        "# A\n\n\
         ```text\n{{#include t.snap:5:}}\n```\n\n\
         ```rust\n{{#include x.rs:good}}\n```\n\n\
         ```text\n{{#include t.snap}}\n```\n\n\
         ```rust\n{{#include x.rs:gold}}\n```\n\n\
         {{#include missing.rs}}\n",
    )
    .unwrap();

    let missing = missing_include_problems(&src);
    assert!(
        missing.len() == 1 && missing[0].contains("missing.rs"),
        "{missing:?}"
    );
    let snaps = snapshot_include_problems(&src);
    assert!(
        snaps.len() == 1 && snaps[0].contains("write `t.snap:5:`"),
        "{snaps:?}"
    );
    let anchors = anchor_problems(&src);
    assert!(
        anchors.len() == 2 && anchors.iter().all(|p| p.contains("gold")),
        "{anchors:?}"
    );

    let out = tmp.path().join("out");
    build(&root, &out).unwrap();
    let html = html_problems(&out);
    // a.html, and index.html which is a copy of the first chapter.
    for page in ["a.html", "index.html"] {
        for what in ["raw `{{#`", "empty code block"] {
            assert!(
                html.iter().any(|p| p.starts_with(page) && p.contains(what)),
                "{page}: {what} not found in {html:?}"
            );
        }
    }
}

#[test]
fn out_dir_that_cannot_be_created_is_an_out_dir_error() {
    // Tests may run as root, which ignores permission bits. A directory
    // under a regular file cannot be created by anyone (ENOTDIR).
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = file.path().join("sub");

    let err = build(&book_root(), &out).unwrap_err();
    match &err {
        BookError::OutDir { path, .. } => assert_eq!(path, &out),
        other => panic!("expected BookError::OutDir, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot write the book to {}: ", out.display())),
        "{message}"
    );
    assert!(!message.contains('\n'), "not one line: {message:?}");
}

#[test]
fn out_dir_holding_the_book_is_refused_and_nothing_is_deleted() {
    // mdBook empties its build dir first; building into the book's own root
    // (or a parent of it) would delete the sources. Work on a copy.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("book");
    fs::create_dir_all(copy.join("src")).unwrap();
    fs::write(copy.join("book.toml"), "[book]\ntitle = \"t\"\n").unwrap();
    fs::write(copy.join("src/SUMMARY.md"), "# Summary\n\n- [A](a.md)\n").unwrap();
    fs::write(copy.join("src/a.md"), "# A\n").unwrap();

    for out in [copy.clone(), tmp.path().to_path_buf()] {
        let err = build(&copy, &out).unwrap_err();
        assert!(matches!(err, BookError::OutDir { .. }), "{err:?}");
        assert!(copy.join("src/a.md").is_file(), "sources deleted");
    }
}

#[test]
fn bad_book_toml_is_a_one_line_load_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("book");
    fs::create_dir_all(root.join("src")).unwrap();
    // mdBook 0.5 rejects unknown keys (0.4's `multilingual` is gone).
    fs::write(root.join("book.toml"), "[book]\nmultilingual = false\n").unwrap();
    fs::write(root.join("src/SUMMARY.md"), "# Summary\n").unwrap();

    let err = build(&root, &tmp.path().join("out")).unwrap_err();
    assert!(matches!(err, BookError::Load { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot load the book at {}: ", root.display())),
        "{message}"
    );
    assert!(!message.contains('\n'), "not one line: {message:?}");
    assert!(message.contains("multilingual"), "{message}");
}

#[test]
fn link_finder_matches_mdbook() {
    let md = "a {{#include ../x.snap:5:}} b\n\
              \\{{#include no.rs}} {{#include hidden.rs}}\n\
              {{ #rustdoc_include ../y.rs:main }} {{#title T}} {{#}} {{#include}}";
    let links = find_links(md);
    let got: Vec<_> = links
        .iter()
        .map(|l| (l.kind.as_str(), l.path.as_str(), l.selector.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("include", "../x.snap", Some("5:")),
            ("rustdoc_include", "../y.rs", Some("main")),
            ("title", "T", None),
        ]
    );
    assert_eq!(anchor_of(&links[0]), None);
    assert_eq!(anchor_of(&links[1]), Some("main"));
    assert!(has_marker("// ANCHOR: main\n", "ANCHOR:", "main"));
    assert!(!has_marker("// ANCHOR: main2\n", "ANCHOR:", "main"));
    assert!(!has_marker("// ANCHOR_END: main\n", "ANCHOR:", "main"));
    assert_eq!(
        snap_body_start("---\nsource: a.rs\nexpression: x\n---\nbody\n"),
        Some(5)
    );
    assert!(has_empty_code_block(
        "<pre><code class=\"language-text\">\n</code></pre>"
    ));
    assert!(has_empty_code_block("<p><pre><code>\n</code></pre>"));
    assert!(has_empty_code_block(
        "<pre><code class=\"language-rust\"></code></pre>"
    ));
    assert!(!has_empty_code_block("<p><code></code></p>"));
    assert!(!has_empty_code_block(
        "<pre><code class=\"language-text\">x</code></pre>"
    ));
}

// ---------------------------------------------------------------------------------------
// `{{#node 24 lib/FILE.js:NAME}}`: Node's lines, read from the pinned binary at build time.
// ---------------------------------------------------------------------------------------

/// One `{{#node}}` block as the HTML shows it: the link in its caption, and the code under
/// it (`None` for the caption of a build without the binary).
#[derive(Debug)]
struct NodeBlock {
    href: String,
    code: Option<String>,
}

/// What mdBook escapes in a code block, back.
fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Every `{{#node}}` block in a built page, in order.
fn node_blocks(html: &str) -> Vec<NodeBlock> {
    let mut blocks = Vec::new();
    for (at, _) in html.match_indices("<p class=\"node-lines") {
        let rest = &html[at..];
        let caption_end = rest.find("</p>").expect("a caption ends") + "</p>".len();
        let caption = &rest[..caption_end];
        let href_at = caption.find("href=\"").expect("a caption links") + "href=\"".len();
        let href = caption[href_at..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_string();
        let code = match caption.contains("node-lines-missing") {
            true => None,
            false => {
                let after = rest[caption_end..].trim_start();
                let open = "<pre><code class=\"language-js\">";
                assert!(
                    after.starts_with(open),
                    "no js block under {caption}: {}",
                    &after[..after.len().min(200)]
                );
                let body = &after[open.len()..];
                let end = body.find("</code></pre>").expect("the block ends");
                Some(unescape(&body[..end]))
            }
        };
        blocks.push(NodeBlock { href, code });
    }
    blocks
}

/// `https://github.com/nodejs/node/blob/v24.22.3/lib/x.js#L10-L20` → (`lib/x.js`, 10, 20).
fn linked_lines(href: &str, version: Version) -> Option<(String, usize, usize)> {
    let rest = href.strip_prefix(&format!("https://github.com/nodejs/node/blob/{version}/"))?;
    let (path, lines) = rest.split_once("#L")?;
    let (a, b) = lines.split_once("-L").unwrap_or((lines, lines));
    Some((path.to_string(), a.parse().ok()?, b.parse().ok()?))
}

/// The pinned release's binary, or `None` after saying in one line that the test is skipped.
fn pinned_node() -> Option<NodeBinary> {
    match node_source::find_node(Want::Exact(book::NODE)) {
        Ok(node) => Some(node),
        Err(e) => {
            eprintln!("{}", e.skip_line().unwrap_or_else(|| panic!("{e}")));
            None
        }
    }
}

/// The first line of each Node block each page must show (chapter 5 before each of our
/// `round_robin_handle.rs` includes; one block in chapters 2 and 6; chapters 3, 4 and 7
/// before the Rust twin of each step).
const NODE_BLOCKS: &[(&str, &[&str])] = &[
    (
        "ch05-round-robin.html",
        &[
            "function RoundRobinHandle(key, address, {",
            "RoundRobinHandle.prototype.add = function(worker, send) {",
            "RoundRobinHandle.prototype.distribute = function(err, handle) {",
            "RoundRobinHandle.prototype.handoff = function(worker) {",
            "  sendHelper(worker.process, message, handle, (reply) => {",
        ],
    ),
    (
        "ch02-listen-in-cluster.html",
        &["function listenInCluster(server, address, port, addressType,"],
    ),
    (
        "ch06-shared-handle.html",
        &["function SharedHandle(key, address, { port, addressType, fd, flags }) {"],
    ),
    (
        "ch03-fork.html",
        &[
            "cluster.fork = function(env) {",
            "function createWorkerProcess(id, env) {",
            "  args = [...execArgv, modulePath, ...args];",
            "function setupChildProcessIpcChannel() {",
            "function initializeClusterIPC() {",
            "cluster._setupWorker = function() {",
            "function sendHelper(proc, message, handle, cb) {",
        ],
    ),
    (
        "ch04-query-server.html",
        &[
            "  const indexesKey = ArrayPrototypeJoin(",
            "function queryServer(worker, message) {",
            "let schedulingPolicy = process.env.NODE_CLUSTER_SCHED_POLICY;",
            "  handle.data ||= message.data;",
            "  obj.once('listening', () => {",
        ],
    ),
    (
        "ch07-failures.html",
        &[
            "  handle.add(worker, (errno, reply, serverHandle) => {",
            "function rr(message, { indexesKey, index }, cb) {",
            "  function listenOnPrimaryHandle(err, handle) {",
            "function checkBindError(err, port, handle) {",
            "  worker.process.once('exit', (exitCode, signalCode) => {",
            "function removeWorker(worker) {",
            "function removeHandlesForWorker(worker) {",
            "RoundRobinHandle.prototype.remove = function(worker) {",
        ],
    ),
];

/// With the pinned Node installed, each block is exactly the lines its caption links, as
/// `node-source` reads them from that binary, and the build has nothing to say.
#[test]
fn node_blocks_show_the_lines_they_link_from_the_pinned_binary() {
    let Some(node) = pinned_node() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut notes = Vec::new();
    build_noting(&book_root(), out.path(), &mut |line| {
        notes.push(line.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(notes.is_empty(), "{notes:?}");

    for (page, firsts) in NODE_BLOCKS {
        let blocks = node_blocks(&read(&out.path().join(page)));
        assert_eq!(blocks.len(), firsts.len(), "{page}: {blocks:#?}");
        for (block, first) in blocks.iter().zip(*firsts) {
            let (path, a, b) = linked_lines(&block.href, book::NODE).unwrap_or_else(|| {
                panic!("{page}: not a link to lines at the pin: {}", block.href)
            });
            let source = node.source(&path).unwrap_or_else(|e| panic!("{e}"));
            let lines = source
                .lines(a, b)
                .unwrap_or_else(|| panic!("{page}: {} is past the end", block.href));
            let want: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
            let code = block.code.as_deref().expect("a block with code");
            assert_eq!(code, want, "{page}: {}", block.href);
            assert!(code.starts_with(first), "{page}: {code}");
        }
    }
}

/// Without the binary (`CLUSTER_WALKTHROUGH_NODE_24` naming none), `cargo run -- book` still
/// builds: every block is a caption with its link and no code, and the build says so in one
/// line.
#[test]
fn without_the_pinned_node_the_book_links_nodes_lines_and_says_so_once() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cluster-walkthrough"));
    cmd.arg("book")
        .arg("--out")
        .arg(out.path())
        .env(node_source::env_var(book::NODE.major), "/nonexistent");
    let run = common::run(cmd, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [missing_note(book::NODE)]
    );

    let url = format!("https://github.com/nodejs/node/blob/{}/", book::NODE);
    for (page, firsts) in NODE_BLOCKS {
        let html = read(&out.path().join(page));
        assert!(
            !html.contains("language-js"),
            "{page}: a js block without the binary"
        );
        let blocks = node_blocks(&html);
        assert_eq!(blocks.len(), firsts.len(), "{page}: {blocks:#?}");
        for block in &blocks {
            assert!(block.code.is_none(), "{page}: {block:?}");
            assert!(block.href.starts_with(&url), "{page}: {block:?}");
        }
    }
    // A line range still links its lines; a name links its file.
    let ch05 = node_blocks(&read(&out.path().join("ch05-round-robin.html")));
    assert!(
        ch05[4].href.ends_with("round_robin_handle.js#L131-L138"),
        "{ch05:?}"
    );
    assert!(ch05[0].href.ends_with("round_robin_handle.js"), "{ch05:?}");
}

/// Builds a one-page book whose page is `page`, into a temp dir; the error, if any.
fn build_page(page: &str) -> Result<(), (PathBuf, BookError)> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("book");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("book.toml"), "[book]\ntitle = \"t\"\n").unwrap();
    fs::write(root.join("src/SUMMARY.md"), "# Summary\n\n- [A](a.md)\n").unwrap();
    fs::write(root.join("src/a.md"), page).unwrap();
    let mut notes = Vec::new();
    build_noting(&root, &tmp.path().join("out"), &mut |l| {
        notes.push(l.to_string())
    })
    .map(drop)
    .map_err(|e| (root.join("src/a.md"), e))
}

/// The build's error for a page holding `directive`: one line, naming the page and the
/// directive, then why.
fn directive_error(directive: &str) -> String {
    let (page, err) = build_page(&format!("# A\n\n{directive}\n")).expect_err(directive);
    assert!(matches!(err, BookError::NodeLines(_)), "{err:?}");
    let message = err.to_string();
    let head = format!("{}: {directive}: ", page.display());
    assert!(message.starts_with(&head), "{message}");
    assert!(!message.contains('\n'), "not one line: {message:?}");
    message[head.len()..].to_string()
}

#[test]
fn a_node_directive_that_names_nothing_fails_the_build_naming_page_and_directive() {
    // Without a binary too: what the directive itself gets wrong.
    let why = directive_error("{{#node 22 lib/net.js:listenInCluster}}");
    assert!(why.contains("the book pins no release of node 22"), "{why}");
    let why = directive_error("{{#node 24 lib/net.js}}");
    assert!(why.contains("no `:NAME` or `:N-M`"), "{why}");

    if pinned_node().is_none() {
        return;
    }
    let rr = "lib/internal/cluster/round_robin_handle.js";
    let why = directive_error(&format!(
        "{{{{#node 24 {rr}:RoundRobinHandle.prototype.nope}}}}"
    ));
    assert!(
        why.starts_with(&format!(
            "no definition of `RoundRobinHandle.prototype.nope` in {rr} at node v24.22.3"
        )),
        "{why}"
    );
    let why = directive_error("{{#node 24 lib/internal/cluster/nope.js:RoundRobinHandle}}");
    assert!(
        why.starts_with("lib/internal/cluster/nope.js is not embedded in node v24.22.3"),
        "{why}"
    );
    let why = directive_error(&format!("{{{{#node 24 {rr}:140-150}}}}"));
    assert!(why.contains("lines 140-150 are not in"), "{why}");
    // And a good one builds.
    build_page(&format!(
        "{{{{#node 24 {rr}:RoundRobinHandle.prototype.has}}}}\n"
    ))
    .unwrap_or_else(|(_, e)| panic!("{e}"));
}

/// Three lines in a row, none blank, at least 50 characters between them (so `}`, `return;`
/// and `} else {` do not count): a run that can only have been copied.
fn runs_of_three(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    lines
        .windows(3)
        .filter(|w| w.iter().map(|(_, l)| l.len()).sum::<usize>() >= 50)
        .map(|w| {
            (
                w[0].0,
                w.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n"),
            )
        })
        .collect()
}

/// Node's code is never committed: no run of three lines of any file the book links or
/// quotes (at the pinned releases whose binaries are here) is in the book's sources or in a
/// snapshot. And the book's directives all parse.
#[test]
fn no_run_of_nodes_lines_is_committed_in_the_book_or_a_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut committed = files_with_ext(&root.join("book/src"), "md");
    committed.extend(files_with_ext(&root.join("tests/snapshots"), "snap"));

    let mut quoted: Vec<String> = node_source::ANCHORS
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    let mut directives = 0;
    for md in files_with_ext(&root.join("book/src"), "md") {
        for d in node_lines::find_directives(&read(&md)) {
            let d = d.unwrap_or_else(|(text, why)| panic!("{}: {text}: {why}", md.display()));
            directives += 1;
            quoted.push(d.path);
        }
    }
    assert!(
        directives >= 7,
        "{directives} {{{{#node}}}} directives in the book"
    );
    quoted.sort();
    quoted.dedup();

    for version in [book::NODE, book::NODE_HISTORY] {
        let node = match node_source::find_node(Want::Exact(version)) {
            Ok(node) => node,
            Err(e) => {
                eprintln!("{}", e.skip_line().unwrap_or_else(|| panic!("{e}")));
                continue;
            }
        };
        let mut runs: HashMap<String, String> = HashMap::new();
        for path in &quoted {
            let source = node.source(path).unwrap_or_else(|e| panic!("{e}"));
            for (n, run) in runs_of_three(&source.text) {
                runs.entry(run)
                    .or_insert_with(|| format!("{path}:{n} at {version}"));
            }
        }
        let mut found = Vec::new();
        for file in &committed {
            for (n, run) in runs_of_three(&read(file)) {
                if let Some(from) = runs.get(&run) {
                    found.push(format!("{}:{n}: Node's {from}", file.display()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "Node's lines pasted (use {{{{#node}}}}):\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn runs_of_three_skip_blank_lines_and_short_runs() {
    let text = "a\n}\n\n  return;\n} else {\n  const handle = peek(this.handles);  // oldest\n";
    let want = "return;\n} else {\nconst handle = peek(this.handles);  // oldest";
    assert_eq!(runs_of_three(text), [(4, want.to_string())]);
    assert!(runs_of_three("}\n}\n};\n").is_empty());
}

/// The published book and CI's test run have Node's lines: the Pages workflow and the setup
/// script that `.ci/run` runs both install the release the book pins.
#[test]
fn the_pages_workflow_and_ci_install_the_pinned_node() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pinned = Want::Exact(book::NODE).to_string();
    for file in [".github/workflows/pages.yml", "scripts/setup-dev"] {
        let text = read(&root.join(file));
        let installs = text.lines().any(|line| {
            line.contains("install-node-versions")
                && line.split_whitespace().any(|word| word == pinned)
                && !line.trim_start().starts_with('#')
        });
        assert!(
            installs,
            "{file} does not run install-node-versions {pinned}"
        );
    }
}
