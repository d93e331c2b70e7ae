//! The crate's layers, checked: which module uses which (`use crate::…`, `crate::…` paths),
//! read from the source. A cycle between modules is allowed only where Node's own files have
//! one: `net.js` requires `cluster` (for `isPrimary`), and `round_robin_handle.js` and
//! `shared_handle.js` require `net`. Anything else would be a circle Node does not have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `(from, to)` edges that may sit on a cycle: Node's own.
const NODE_CYCLE: [(&str, &str); 3] = [
    ("net", "cluster"),
    ("cluster::round_robin_handle", "net"),
    ("cluster::shared_handle", "net"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is, as a path from the crate root: `cluster::primary`, `sys`, ...
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    parts.join("::")
}

/// Every `crate::a::b` a file names outside comments and tests, as `a::b` (or `a`).
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                .collect();
            let mut segs = path.split("::").filter(|s| !s.is_empty());
            if let Some(first) = segs.next() {
                out.insert(match segs.next() {
                    Some(second) => format!("{first}::{second}"),
                    None => first.to_string(),
                });
            }
        }
    }
    out
}

/// The edges between modules, each target cut down to a module that exists.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("readable source");
        for to in uses(&text) {
            let to = match modules.contains(&to) {
                true => to,
                false => to.split("::").next().unwrap_or("").to_string(),
            };
            let (top_from, top_to) = (top(&from), top(&to));
            if modules.contains(&to) && top_from != top_to {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

/// Whether `to` can reach `from` again, counting a module's children as the module.
fn reaches(g: &BTreeMap<String, BTreeSet<String>>, start: &str, goal: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_string()];
    while let Some(m) = todo.pop() {
        if top(&m) == top(goal) {
            return true;
        }
        for (from, tos) in g {
            if (from == &m || top(from) == m) && seen.insert(from.clone()) {
                todo.extend(tos.iter().cloned());
            }
        }
    }
    false
}

#[test]
fn the_only_cycle_between_modules_is_nodes_own() {
    let g = graph();
    let mut cycles = Vec::new();
    for (from, tos) in &g {
        for to in tos {
            let allowed = NODE_CYCLE.iter().any(|(a, b)| from == a && to == b);
            if !allowed && reaches(&g, to, from) {
                cycles.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "edges on a cycle Node does not have: {cycles:?}"
    );
}

#[test]
fn no_lower_layer_uses_the_chapter_framework() {
    let g = graph();
    let offenders: Vec<String> = g
        .iter()
        .filter(|(from, tos)| {
            !from.starts_with("chapter") && tos.iter().any(|t| t.starts_with("chapter"))
        })
        .map(|(from, _)| from.clone())
        .collect();
    assert!(
        offenders.is_empty(),
        "modules below chapter that use it: {offenders:?}"
    );
}
