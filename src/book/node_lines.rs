//! `{{#node 24 lib/FILE.js:NAME}}`: Node's own lines in the book, read out of the Node binary
//! when the book is built, so they are never committed and always match the links.
//!
//! A chapter writes, on a line of its own,
//!
//! ```text
//! {{#node 24 lib/internal/cluster/round_robin_handle.js:RoundRobinHandle.prototype.handoff}}
//! {{#node 24 lib/internal/cluster/round_robin_handle.js:131-138}}
//! ```
//!
//! - `24` is a Node line the book pins to one release ([`super::NODE`], `v24.22.3`; `20` is
//!   [`super::NODE_HISTORY`], the article's Node).
//! - `lib/...js` is a file of Node's `lib/`, as in its repository.
//! - After the `:`, either a **name**, whose definition is found by its first line
//!   (`function NAME(`, `NAME = `, `const NAME = `, `class NAME`) and ends at the brace that
//!   closes it, so it survives lines moving when the pin moves; or a **line range** `N-M`, for
//!   a piece of a function.
//!
//! It becomes a caption linking the exact lines on GitHub at the pinned tag, then the lines
//! in a ```` ```js ```` block, taken from that release's binary by [`crate::node_source`].
//! Without that binary the caption stays, links the lines (a name: the file) and says the code
//! is not shown; the build says so once per release ([`missing_note`]) and goes on. Anything
//! else wrong with a directive (a name not in the file, a file not in the binary, a range
//! past the end, a Node line the book does not pin) fails the build, naming the page and the
//! directive.
//!
//! The expansion runs on the chapters as loaded, before mdBook's own preprocessors, so
//! `{{#include}}` works as always, an escaped `\{{#node ...}}` is left for mdBook to unescape,
//! and a `{{#node}}` inside an included file is not expanded (the book's HTML check then
//! finds it raw).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mdbook_driver::book::Book;

use super::directive::indent_rest;
use crate::node_source::{self, NodeBinary, SourceFile, Version, Want};

/// A directive that could not be expanded: which one, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveError {
    /// The markdown file the directive is in.
    pub page: PathBuf,
    /// The directive's text, `{{#node ...}}`.
    pub directive: String,
    pub why: String,
}

/// One `{{#node ...}}` in a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Byte range of the whole `{{#node ...}}` in the page.
    pub span: (usize, usize),
    /// The whitespace before it on its line (in a list item, say), which every line it
    /// becomes gets too.
    pub indent: String,
    /// The directive's text, for messages.
    pub text: String,
    /// The pinned release it asks for.
    pub version: Version,
    /// `lib/...js`.
    pub path: String,
    pub select: Select,
}

/// Which lines of the file a directive shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The definition of this name, from its first line to its closing brace.
    Name(String),
    /// Lines `first..=last`, counted from 1.
    Lines(usize, usize),
}

/// Lines `first..=last` of a file, found in the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    pub first: usize,
    pub last: usize,
    pub text: String,
}

/// The pinned release for a directive's Node line (`24`, or `v24`).
fn pinned(line: &str) -> Result<Version, String> {
    let pins = [super::NODE, super::NODE_HISTORY];
    let bare = line.strip_prefix('v').unwrap_or(line);
    let known = || {
        pins.iter()
            .map(|v| format!("{} (v{}.{}.{})", v.major, v.major, v.minor, v.patch))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let major: u32 = bare
        .parse()
        .map_err(|_| format!("{line:?} is not a Node line; the book pins {}", known()))?;
    pins.into_iter().find(|v| v.major == major).ok_or_else(|| {
        format!(
            "the book pins no release of node {major}; it pins {}",
            known()
        )
    })
}

/// Whether `s` can name a definition: `listenInCluster`, `RoundRobinHandle.prototype.add`.
fn is_name(s: &str) -> bool {
    let ident = |p: &str| {
        !p.is_empty()
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    s.split('.').all(ident)
}

/// `24 lib/x.js:Name` or `24 lib/x.js:10-20`, the part between `{{#node` and `}}`.
fn parse_args(args: &str) -> Result<(Version, String, Select), String> {
    const FORM: &str = "expected `{{#node 24 lib/FILE.js:NAME}}` or `{{#node 24 lib/FILE.js:N-M}}`";
    let words: Vec<&str> = args.split_whitespace().collect();
    let [line, target] = words[..] else {
        return Err(FORM.to_string());
    };
    let version = pinned(line)?;
    let Some((path, selector)) = target.split_once(':') else {
        return Err(format!("no `:NAME` or `:N-M` after the file: {FORM}"));
    };
    let lib_js = path.starts_with("lib/")
        && path.ends_with(".js")
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !lib_js {
        return Err(format!(
            "{path:?} is not a file of Node's lib/ (like lib/net.js)"
        ));
    }
    let select = match node_source::parse_line_range(selector) {
        Some((first, last)) if first >= 1 && first <= last => Select::Lines(first, last),
        Some(_) => {
            return Err(format!(
                "{selector:?} is not a line range N-M with 1 <= N <= M"
            ));
        }
        None if is_name(selector) => Select::Name(selector.to_string()),
        None => {
            return Err(format!(
                "{selector:?} is neither a name (like RoundRobinHandle.prototype.add) \
                 nor a line range (like 115-139)"
            ));
        }
    };
    Ok((version, path.to_string(), select))
}

/// Every `{{#node ...}}` in `page` (mdBook's spelling: optional spaces after `{{`; a `\` before
/// it escapes it), in order. A malformed one is an error carrying its text.
pub fn find_directives(page: &str) -> Vec<Result<Directive, (String, String)>> {
    let found = super::directive::scan(page, "#node").into_iter();
    found
        .map(|f| {
            let f = f?;
            let text = f.text.to_string();
            match parse_args(f.args) {
                Err(why) => Err((text, why)),
                Ok(_) if !f.alone => Err((
                    text,
                    "it must stand on a line of its own (it becomes a caption and a code block)"
                        .to_string(),
                )),
                Ok((version, path, select)) => Ok(Directive {
                    span: f.span,
                    indent: f.indent.to_string(),
                    text,
                    version,
                    path,
                    select,
                }),
            }
        })
        .collect()
}

/// Whether `line` (one line of JavaScript) starts the definition of `name`: `function name(`,
/// `name = `, `const name = ` (`let`, `var`), `class name`, with `export`/`async`/`function*`
/// allowed.
fn defines(line: &str, name: &str) -> bool {
    let mut s = line.trim_start();
    for prefix in ["export ", "async "] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    let named =
        |s: &str, then: fn(&str) -> bool| s.trim_start().strip_prefix(name).is_some_and(then);
    let call: fn(&str) -> bool = |r| r.trim_start().starts_with('(');
    let assign: fn(&str) -> bool = |r| r.starts_with(" = ");
    let class: fn(&str) -> bool = |r| r.is_empty() || r.starts_with([' ', '{']);
    if let Some(r) = s
        .strip_prefix("function*")
        .or_else(|| s.strip_prefix("function "))
    {
        return named(r, call);
    }
    if let Some(r) = s.strip_prefix("class ") {
        return named(r, class);
    }
    for keyword in ["const ", "let ", "var "] {
        if let Some(r) = s.strip_prefix(keyword) {
            return named(r, assign);
        }
    }
    named(s, assign)
}

/// Where the definition whose first line is `lines[start]` ends: the line of the brace that
/// closes its body, the first brace opened outside parentheses and brackets (so not a
/// destructured parameter), counting brackets of every kind outside strings, comments and
/// template text. Node's lint puts that brace at the start of a line, at the indentation of
/// the first line; anything else (a regular expression with a brace in it, say) is refused
/// rather than guessed at.
fn definition_end(lines: &[&str], start: usize) -> Result<usize, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Ctx {
        /// `{` in code.
        Block,
        /// `(` or `[`.
        Group,
        /// Inside a template literal's text.
        Template,
        /// Inside a template literal's `${ }`.
        TemplateExpr,
    }
    let mut stack: Vec<Ctx> = Vec::new();
    let mut opened = false;
    let mut in_block_comment = false;
    for (n, line) in lines.iter().enumerate().skip(start) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            i += 1;
            if in_block_comment {
                if c == '*' && next == Some('/') {
                    in_block_comment = false;
                    i += 1;
                }
                continue;
            }
            if let Some(q) = quote {
                match c {
                    '\\' => i += 1,
                    _ if c == q => quote = None,
                    _ => {}
                }
                continue;
            }
            if stack.last() == Some(&Ctx::Template) {
                match (c, next) {
                    ('\\', _) => i += 1,
                    ('`', _) => {
                        stack.pop();
                    }
                    ('$', Some('{')) => {
                        stack.push(Ctx::TemplateExpr);
                        i += 1;
                    }
                    _ => {}
                }
                continue;
            }
            match (c, next) {
                ('/', Some('/')) => break,
                ('/', Some('*')) => {
                    in_block_comment = true;
                    i += 1;
                }
                ('\'' | '"', _) => quote = Some(c),
                ('`', _) => stack.push(Ctx::Template),
                ('(' | '[', _) => stack.push(Ctx::Group),
                (')' | ']', _) => {
                    stack.pop();
                }
                (';', _) if stack.is_empty() && !opened => {
                    return Err(format!(
                        "it has no body in braces (its statement ends on line {}); \
                         use a line range",
                        n + 1
                    ));
                }
                ('{', _) => {
                    opened |= stack.is_empty();
                    stack.push(Ctx::Block);
                }
                ('}', _) => {
                    stack.pop();
                    if opened && stack.is_empty() {
                        let indent = |l: &str| l.len() - l.trim_start().len();
                        let at_start = line.trim_start().starts_with('}');
                        if !at_start || indent(line) != indent(lines[start]) {
                            return Err(format!(
                                "its braces close on line {}, which does not start with `}}` \
                                 at the indentation of line {}; use a line range",
                                n + 1,
                                start + 1
                            ));
                        }
                        return Ok(n);
                    }
                }
                _ => {}
            }
        }
    }
    Err(match opened {
        true => "its braces never close; use a line range".to_string(),
        false => "it has no body in braces; use a line range".to_string(),
    })
}

/// The lines a directive selects in `file`.
pub fn excerpt(file: &SourceFile, select: &Select) -> Result<Excerpt, String> {
    let at = format!("{} at node {}", file.path, file.version);
    let (first, last) = match select {
        Select::Lines(first, last) => (*first, *last),
        Select::Name(name) => {
            let lines: Vec<&str> = file.text.lines().collect();
            let starts: Vec<usize> = (0..lines.len())
                .filter(|&i| defines(lines[i], name))
                .collect();
            let start = match starts[..] {
                [one] => one,
                [] => {
                    return Err(format!(
                        "no definition of `{name}` in {at} (a line starting `function {name}(`, \
                         `{name} = `, `const {name} = ` or `class {name}`)"
                    ));
                }
                _ => {
                    let numbers: Vec<String> = starts.iter().map(|i| (i + 1).to_string()).collect();
                    return Err(format!(
                        "`{name}` is defined more than once in {at} (lines {}); use a line range",
                        numbers.join(", ")
                    ));
                }
            };
            let end = definition_end(&lines, start)
                .map_err(|why| format!("`{name}` (line {} of {at}): {why}", start + 1))?;
            (start + 1, end + 1)
        }
    };
    let lines = file.lines(first, last).ok_or_else(|| {
        format!(
            "lines {first}-{last} are not in {at}, which has {} lines",
            file.line_count()
        )
    })?;
    let mut text = String::new();
    for (_, line) in lines {
        text.push_str(line);
        text.push('\n');
    }
    Ok(Excerpt { first, last, text })
}

/// Node's repository on GitHub.
pub const NODE_REPO: &str = "https://github.com/nodejs/node";

/// `{NODE_REPO}/blob/v24.22.3/lib/net.js` and, with lines, `#L10-L20` after it.
pub fn github_url(version: Version, path: &str, lines: Option<(usize, usize)>) -> String {
    let file = format!("{NODE_REPO}/blob/{version}/{path}");
    match lines {
        None => file,
        Some((a, b)) if a == b => format!("{file}#L{a}"),
        Some((a, b)) => format!("{file}#L{a}-L{b}"),
    }
}

fn lines_label(first: usize, last: usize) -> String {
    match first == last {
        true => format!("line {first}"),
        false => format!("lines {first}–{last}"),
    }
}

/// The markdown a directive becomes: a caption linking the lines, then the lines as a
/// ```` ```js ```` block (its fence longer than any run of backticks in them).
pub fn render(d: &Directive, excerpt: &Excerpt) -> String {
    let url = github_url(d.version, &d.path, Some((excerpt.first, excerpt.last)));
    let mut longest = 0;
    let mut run = 0;
    for c in excerpt.text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!(
        "<p class=\"node-lines\">Node {}, <a href=\"{url}\"><code>{}</code> {}</a>:</p>\n\n\
         {fence}js\n{}{fence}",
        d.version,
        d.path,
        lines_label(excerpt.first, excerpt.last),
        excerpt.text
    )
}

/// What a directive becomes without the binary: the caption alone, linking the lines (a
/// range) or the file (a name, whose lines only the binary knows), saying why there is no code.
pub fn render_missing(d: &Directive) -> String {
    let (url, what) = match &d.select {
        Select::Lines(a, b) => (
            github_url(d.version, &d.path, Some((*a, *b))),
            format!("<code>{}</code> {}", d.path, lines_label(*a, *b)),
        ),
        Select::Name(name) => (
            github_url(d.version, &d.path, None),
            format!("<code>{name}</code> in <code>{}</code>", d.path),
        ),
    };
    format!(
        "<p class=\"node-lines node-lines-missing\">Node {}, <a href=\"{url}\">{what}</a> \
         (not shown: this copy of the book was built without node {})</p>",
        d.version,
        Want::Exact(d.version)
    )
}

/// What `d` shows in a book built here: its excerpt, or `None` when its release is not
/// installed (the book then shows the caption alone). For counting what a page shows, as
/// `tests/time_boxes.rs` does.
pub fn excerpt_here(d: &Directive) -> Result<Option<Excerpt>, String> {
    let Ok(node) = node_source::find_node(Want::Exact(d.version)) else {
        return Ok(None);
    };
    let file = node.source(&d.path).map_err(|e| e.to_string())?;
    excerpt(&file, &d.select).map(Some)
}

/// The one line the build prints when a pinned release is not installed.
pub fn missing_note(version: Version) -> String {
    let v = Want::Exact(version);
    format!(
        "node {v} not installed: Node's lines shown as links (scripts/install-node-versions {v})"
    )
}

/// Finds each pinned release's binary once per build.
#[derive(Default)]
struct Binaries {
    found: HashMap<Version, Option<NodeBinary>>,
}

impl Binaries {
    /// The binary for `version`, or `None` (and one note) when it is not installed.
    fn get(&mut self, version: Version, note: &mut dyn FnMut(&str)) -> Option<NodeBinary> {
        self.found
            .entry(version)
            .or_insert_with(|| match node_source::find_node(Want::Exact(version)) {
                Ok(node) => Some(node),
                Err(_) => {
                    note(&missing_note(version));
                    None
                }
            })
            .clone()
    }
}

/// Expands every `{{#node}}` in one page's markdown.
fn expand_page(
    content: &str,
    page: &Path,
    binaries: &mut Binaries,
    note: &mut dyn FnMut(&str),
) -> Result<String, DirectiveError> {
    let fail = |directive: &str, why: String| DirectiveError {
        page: page.to_path_buf(),
        directive: directive.to_string(),
        why,
    };
    let mut out = String::with_capacity(content.len());
    let mut done = 0;
    for found in find_directives(content) {
        let d = found.map_err(|(text, why)| fail(&text, why))?;
        let expanded = match binaries.get(d.version, note) {
            None => render_missing(&d),
            Some(node) => {
                let file = node
                    .source(&d.path)
                    .map_err(|e| fail(&d.text, e.to_string()))?;
                let excerpt = excerpt(&file, &d.select).map_err(|why| fail(&d.text, why))?;
                render(&d, &excerpt)
            }
        };
        out.push_str(&content[done..d.span.0]);
        out.push_str(&indent_rest(&expanded, &d.indent));
        done = d.span.1;
    }
    out.push_str(&content[done..]);
    Ok(out)
}

/// Expands every `{{#node}}` in every chapter of `book`, whose sources are in `src_dir`.
/// Stops at the first directive that cannot be expanded.
pub fn expand(
    book: &mut Book,
    src_dir: &Path,
    note: &mut dyn FnMut(&str),
) -> Result<(), DirectiveError> {
    let mut binaries = Binaries::default();
    super::directive::each_page(book, src_dir, "#node", |content, page| {
        expand_page(content, page, &mut binaries, note)
    })
}

#[cfg(test)]
#[path = "node_lines_tests.rs"]
mod tests;
