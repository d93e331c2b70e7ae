//! Every link holds: Node links are pinned to a tag (v24.22.3; v20.20.2 where the book shows
//! history) with a line anchor, and every internal link and `#fragment` in the rendered book
//! points at something that exists.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use cluster_walkthrough::book;

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

/// The tags the book's Node links may use: the current one, and v20.20.2 for history.
const TAGS: [&str; 2] = ["v24.22.3", "v20.20.2"];

/// `blob/<tag>/<file>#Lnnn` or `#Lnnn-Lmmm`, with one of [`TAGS`].
fn pinned(link: &str) -> bool {
    let Some(rest) = link.strip_prefix("https://github.com/nodejs/node/blob/") else {
        return false;
    };
    let Some((tag, path)) = rest.split_once('/') else {
        return false;
    };
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    TAGS.contains(&tag)
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

#[test]
fn every_node_source_link_is_pinned_with_a_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("book/src"), "md", &mut files);
    files_under(&root.join("src"), "rs", &mut files);
    files_under(&root.join("chapters"), "rs", &mut files);
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
        TAGS.join(","),
        bad.join("\n")
    );
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
