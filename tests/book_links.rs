//! Every link holds: Node links are pinned to a tag (v24.22.3; v20.20.2 where the book shows
//! history) with a line anchor, and every internal link and `#fragment` in the rendered book
//! points at something that exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use cluster_walkthrough::book;
use cluster_walkthrough::node_source::{self, FoundBy, SourceFile, Version, Want};

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Every `https://github.com/nodejs/node/...` link in `text`.
fn node_links(text: &str) -> Vec<String> {
    let prefix = "https://github.com/nodejs/node/";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '>' | '"' | '\'' | '`' | ']'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The tags the book's Node links may use: the pinned release (v24.22.3), and v20.20.2 for
/// history (`book::NODE`, `book::NODE_HISTORY`: the one place they are written).
fn tags() -> [String; 2] {
    [book::NODE.to_string(), book::NODE_HISTORY.to_string()]
}

/// `blob/<tag>/<file>#Lnnn` or `#Lnnn-Lmmm`, with one of [`tags`].
fn pinned(link: &str) -> bool {
    let Some(rest) = link.strip_prefix("https://github.com/nodejs/node/blob/") else {
        return false;
    };
    let Some((tag, path)) = rest.split_once('/') else {
        return false;
    };
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    tags().iter().any(|t| t == tag)
        && match path.split_once("#L") {
            Some((file, lines)) => {
                !file.is_empty()
                    && match lines.split_once("-L") {
                        Some((first, last)) => number(first) && number(last),
                        None => number(lines),
                    }
            }
            None => false,
        }
}

/// The files whose Node links are checked: the book's sources, and the crate's (whose doc
/// comments link Node's files too, and which the book includes).
fn linking_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("book/src"), "md", &mut files);
    files_under(&root.join("src"), "rs", &mut files);
    files_under(&root.join("chapters"), "rs", &mut files);
    files
}

#[test]
fn every_node_source_link_is_pinned_with_a_line() {
    let files = linking_files();
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = fs::read_to_string(f).expect("readable");
        for link in node_links(&text) {
            // Pull requests and issues are links to discussions, not to source lines.
            if link.contains("/pull/") || link.contains("/issues/") {
                continue;
            }
            seen += 1;
            if !pinned(&link) {
                bad.push(format!("{}: {link}", f.display()));
            }
        }
    }
    assert!(
        seen > 50,
        "the book links Node's source ({seen} links found)"
    );
    assert!(
        bad.is_empty(),
        "links not of the form blob/{{{}}}/...#Lnnn:\n{}",
        tags().join(","),
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// What a link to a line says must be on that line.
//
// The rule, for a link `[text](https://github.com/nodejs/node/blob/vX.Y.Z/lib/F.js#Lnnn)`
// (or `#Lnnn-Lmmm`):
//
// 1. The line (every line of the range) exists in `lib/F.js` as the vX.Y.Z binary holds it.
// 2. The link's *code name* is the first backticked span of its text that is not a file name
//    (a span with a `/`, or ending in `.js`, `.mjs`, `.cc`, `.c` or `.h`), cut at its first `(`:
//    [`queryServer`] → `queryServer`; [`listen(backlog)`] → `listen`;
//    [`shared_handle.js` `add`] → `add`; [the `NODE_UNIQUE_ID` test] → `NODE_UNIQUE_ID`.
//    A text with no code name ([line 293], [chooses]) promises only rule 1.
// 3. The code name's last dotted part (`Worker.prototype.disconnect` → `disconnect`,
//    `net._createServerHandle` → `_createServerHandle`) must appear as a whole identifier
//    on the linked line, or on one line of the range. A name with `.prototype.` may also
//    appear in its primordials spelling (`Array.prototype.join` → `ArrayPrototypeJoin`).
//
// A link whose text names the function around the line it means is written as a range from
// the function's first line, so that the name is in it.
// ---------------------------------------------------------------------------------------

/// A link into a file of Node's `lib/` at a tag: where it is, its text, the lines it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceLink {
    text: String,
    tag: String,
    path: String,
    first: usize,
    last: usize,
}

/// `https://github.com/nodejs/node/blob/<tag>/lib/...js#Lnnn[-Lmmm]`, taken apart.
fn parse_source_link(text: &str, url: &str) -> Option<SourceLink> {
    let rest = url.strip_prefix("https://github.com/nodejs/node/blob/")?;
    let (tag, rest) = rest.split_once('/')?;
    let (path, lines) = rest.split_once("#L")?;
    if !path.starts_with("lib/") {
        return None;
    }
    let (first, last) = match lines.split_once("-L") {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let n = lines.parse().ok()?;
            (n, n)
        }
    };
    Some(SourceLink {
        text: text.to_string(),
        tag: tag.to_string(),
        path: path.to_string(),
        first,
        last,
    })
}

/// Every inline Markdown link `[text](https://github.com/nodejs/node/blob/...)` in `doc`, as
/// (text, url). The text may hold brackets in pairs and backticks.
fn markdown_node_links(doc: &str) -> Vec<(String, String)> {
    let marker = "](https://github.com/nodejs/node/blob/";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = doc[from..].find(marker).map(|i| from + i) {
        let url_start = at + 2;
        let url_end = doc[url_start..]
            .find(')')
            .map_or(doc.len(), |i| url_start + i);
        // Walk back from `]` to its `[`.
        let mut depth = 0;
        let mut open = None;
        for (i, c) in doc[..at].char_indices().rev() {
            match c {
                ']' => depth += 1,
                '[' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                '[' => depth -= 1,
                _ => {}
            }
        }
        if let Some(open) = open {
            out.push((
                doc[open + 1..at].to_string(),
                doc[url_start..url_end].to_string(),
            ));
        }
        from = url_end;
    }
    out
}

/// The code name a link's text promises (rule 2), or `None`.
fn code_name(text: &str) -> Option<&str> {
    let file_name = |s: &str| {
        s.contains('/')
            || [".js", ".mjs", ".cc", ".c", ".h"]
                .iter()
                .any(|ext| s.ends_with(ext))
    };
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|span| !file_name(span))
        .map(|span| span.split('(').next().unwrap_or(span).trim())
        .find(|name| !name.is_empty())
}

/// The spellings of `name` that may stand on the linked line (rule 3).
fn spellings(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('.').filter(|p| !p.is_empty()).collect();
    let mut out: Vec<String> = parts.last().map(|p| p.to_string()).into_iter().collect();
    if parts.contains(&"prototype") {
        let capitalised = parts.iter().map(|p| {
            let mut chars = p.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        });
        out.push(capitalised.collect());
    }
    out
}

/// Whether `word` occurs in `line` with no identifier character on either side.
fn has_identifier(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Rules 1 and 3 for one link against the file it points into.
fn check_link(link: &SourceLink, source: &SourceFile) -> Result<(), String> {
    let lines = source
        .lines(link.first, link.last)
        .ok_or_else(|| format!("{} has {} lines", link.path, source.line_count()))?;
    let Some(name) = code_name(&link.text) else {
        return Ok(());
    };
    let spellings = spellings(name);
    if lines
        .iter()
        .any(|(_, line)| spellings.iter().any(|s| has_identifier(line, s)))
    {
        return Ok(());
    }
    let shown: Vec<String> = lines.iter().map(|(n, l)| format!("L{n}: {l}")).collect();
    Err(format!(
        "`{}` is not on the linked line{}: {}",
        spellings.join("` or `"),
        if lines.len() > 1 { "s" } else { "" },
        shown.join(" | ")
    ))
}

/// Every link to a line of Node's `lib/` in the book (and the crate's doc comments) holds the
/// code its text names, in the source of the tag it links: read from that version's binary.
#[test]
fn every_node_source_link_holds_the_code_it_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut by_tag: BTreeMap<String, Vec<(String, SourceLink)>> = BTreeMap::new();
    for f in linking_files() {
        let doc = fs::read_to_string(&f).expect("readable");
        let shown = f.strip_prefix(root).unwrap_or(&f).display().to_string();
        for (text, url) in markdown_node_links(&doc) {
            if let Some(link) = parse_source_link(&text, &url) {
                by_tag
                    .entry(link.tag.clone())
                    .or_default()
                    .push((shown.clone(), link));
            }
        }
    }
    assert!(
        by_tag.values().map(Vec::len).sum::<usize>() > 250,
        "the book links Node's lib/ by line"
    );
    let mut bad = Vec::new();
    for (tag, links) in &by_tag {
        let want = Want::parse(tag).unwrap_or_else(|e| panic!("link tag {tag}: {e}"));
        let node = match node_source::find_node(want) {
            Ok(node) => node,
            Err(e) => match e.skip_line() {
                Some(line) => {
                    eprintln!("{line}");
                    continue;
                }
                None => panic!("{e}"),
            },
        };
        for (file, link) in links {
            let checked = node
                .source(&link.path)
                .map_err(|e| e.to_string())
                .and_then(|source| check_link(link, &source));
            if let Err(why) = checked {
                bad.push(format!(
                    "{file}: [{}]({tag}/{}#L{}): {why}",
                    link.text, link.path, link.first
                ));
            }
        }
        eprintln!(
            "checked {} links against node {}",
            links.len(),
            node.version
        );
    }
    assert!(
        bad.is_empty(),
        "links that miss their line:\n{}",
        bad.join("\n")
    );
}

fn source_file(text: &str) -> SourceFile {
    SourceFile {
        path: "lib/internal/cluster/primary.js".into(),
        version: Version {
            major: 24,
            minor: 22,
            patch: 3,
        },
        binary: PathBuf::new(),
        text: text.into(),
        found_by: FoundBy::Loader,
    }
}

fn link(text: &str, first: usize, last: usize) -> SourceLink {
    SourceLink {
        text: text.into(),
        tag: "v24.22.3".into(),
        path: "lib/internal/cluster/primary.js".into(),
        first,
        last,
    }
}

#[test]
fn the_checker_fails_a_link_one_line_off() {
    let source = source_file(
        "'use strict';\n\
         \n\
         function queryServer(worker, message) {\n  \
           // Stop processing if worker already disconnecting\n\
         }\n\
         Worker.prototype.disconnect = function() {\n\
         const indexesKey = ArrayPrototypeJoin(\n",
    );
    assert_eq!(check_link(&link("[`queryServer`]", 3, 3), &source), Ok(()));
    assert!(check_link(&link("`queryServer`", 4, 4), &source).is_err());
    assert!(check_link(&link("`queryServer`", 2, 2), &source).is_err());
    assert!(check_link(&link("`queryServer`", 4, 5), &source).is_err());
    assert_eq!(check_link(&link("`queryServer`", 2, 4), &source), Ok(()));
    // Beyond the end, with or without a code name.
    assert!(check_link(&link("line 8", 8, 8), &source).is_err());
    assert!(check_link(&link("`queryServer`", 3, 9), &source).is_err());
    assert_eq!(check_link(&link("line 4", 4, 4), &source), Ok(()));
    // Spellings.
    let ok = |text: &str, n: usize| check_link(&link(text, n, n), &source) == Ok(());
    assert!(ok("`Worker.prototype.disconnect`", 6));
    assert!(ok("`Array.prototype.join`", 7));
    assert!(
        ok("`primary.js` line 3", 4),
        "a file name is not a code name"
    );
    assert!(ok("`primary.js` `queryServer`", 3));
    assert!(!ok("`primary.js` `queryServer`", 4));
    assert!(ok("`queryServer(worker, message)`", 3));
    assert!(!ok("`Server`", 3), "a part of an identifier does not count");
}

#[test]
fn links_come_apart() {
    let doc = "See [`add`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/\
               round_robin_handle.js#L50) and [a [nested] `x`](https://github.com/nodejs/node/\
               blob/v20.20.2/lib/net.js#L10-L12), not [this](https://github.com/nodejs/node/pull/1).";
    let links = markdown_node_links(doc);
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].0, "`add`");
    let a = parse_source_link(&links[0].0, &links[0].1).expect("a source link");
    assert_eq!(
        (a.tag.as_str(), a.path.as_str(), a.first, a.last),
        (
            "v24.22.3",
            "lib/internal/cluster/round_robin_handle.js",
            50,
            50
        )
    );
    assert_eq!(links[1].0, "a [nested] `x`");
    let b = parse_source_link(&links[1].0, &links[1].1).expect("a range");
    assert_eq!((b.first, b.last), (10, 12));
    assert_eq!(
        code_name("the `NODE_UNIQUE_ID` test"),
        Some("NODE_UNIQUE_ID")
    );
    assert_eq!(code_name("`lib/cluster.js`"), None);
    assert_eq!(code_name("`lib/internal/cluster/`"), None);
    assert_eq!(code_name("line 293"), None);
    assert_eq!(
        code_name("`_handle.listen(backlog || 511)`"),
        Some("_handle.listen")
    );
}

/// Against the real v24.22.3 source: the book's `queryServer` link passes, and fails one line
/// up or down.
#[test]
fn the_checker_fails_a_real_link_one_line_off() {
    let want = Want::parse("24.22.3").expect("a version");
    let node = match node_source::find_node(want) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("{}", e.skip_line().unwrap_or_else(|| panic!("{e}")));
            return;
        }
    };
    let source = node
        .source("lib/internal/cluster/primary.js")
        .unwrap_or_else(|e| panic!("{e}"));
    let query_server = |n: usize| SourceLink {
        text: "`queryServer`".into(),
        tag: "v24.22.3".into(),
        path: source.path.clone(),
        first: n,
        last: n,
    };
    assert_eq!(check_link(&query_server(268), &source), Ok(()));
    assert!(check_link(&query_server(267), &source).is_err());
    assert!(check_link(&query_server(269), &source).is_err());
}

/// `href="..."` and `id="..."` values in an HTML page (the book is generated: plain
/// double-quoted attributes are all there is).
fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        let tail = &rest[at + needle.len()..];
        let end = tail.find('"').unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_internal_link_and_fragment_resolves() {
    let dir = tempfile::tempdir().expect("a temp dir");
    book::build(&book::book_root(), dir.path()).expect("the book builds");
    let mut pages = Vec::new();
    files_under(dir.path(), "html", &mut pages);
    let ids: HashMap<PathBuf, HashSet<String>> = pages
        .iter()
        .map(|p| {
            let html = fs::read_to_string(p).expect("readable");
            (p.clone(), attributes(&html, "id").into_iter().collect())
        })
        .collect();
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let html = fs::read_to_string(page).expect("readable");
        for href in attributes(&html, "href") {
            if href.contains("://")
                || href.starts_with("mailto:")
                || href.starts_with("javascript:")
            {
                continue;
            }
            let (file, fragment) = href.split_once('#').unwrap_or((href.as_str(), ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("in a dir").join(file)
            };
            checked += 1;
            let Ok(target) = target.canonicalize() else {
                bad.push(format!("{}: {href} (no such file)", page.display()));
                continue;
            };
            if target.is_dir() || fragment.is_empty() {
                continue;
            }
            let known = ids
                .iter()
                .find(|(p, _)| p.canonicalize().ok().as_ref() == Some(&target));
            if !known.is_some_and(|(_, set)| set.contains(fragment)) {
                bad.push(format!("{}: {href} (no id {fragment:?})", page.display()));
            }
        }
    }
    assert!(checked > 100, "the book has links ({checked} checked)");
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}
