//! Finding a `{{#name ...}}` directive in a page, for the book's own preprocessors
//! ([`super::node_lines`], [`super::trace_lines`]): mdBook's spelling (optional spaces after
//! `{{`, a `\` before it escapes it), closed on its own line, and standing alone on it, since
//! each directive becomes whole blocks.

use std::path::{Path, PathBuf};

use mdbook_driver::book::{Book, BookItem};

use super::node_lines::DirectiveError;

/// One directive found in a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found<'a> {
    /// Where it starts (`{{`) and ends (after `}}`), in bytes.
    pub(crate) span: (usize, usize),
    /// What comes before it on its line (a list item's indent, say).
    pub(crate) indent: &'a str,
    /// The directive as written.
    pub(crate) text: &'a str,
    /// What follows the name, up to `}}`.
    pub(crate) args: &'a str,
    /// Whether nothing but spaces shares its line.
    pub(crate) alone: bool,
}

/// Every `{{#<name> ...}}` in `page`, in order; one with no `}}` on its line is an error
/// carrying its text. `{{#nameless}}` is not `{{#name}}`.
pub(crate) fn scan<'a>(page: &'a str, name: &str) -> Vec<Result<Found<'a>, (String, String)>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = page[from..].find("{{").map(|i| from + i) {
        from = at + 2;
        let rest = page[from..].trim_start_matches([' ', '\t']);
        let Some(args) = rest.strip_prefix(name) else {
            continue;
        };
        if !args.starts_with(char::is_whitespace) && !args.starts_with("}}") {
            continue; // `{{#nodejs ...}}` is someone else's
        }
        if page[..at].ends_with('\\') {
            continue;
        }
        let args_at = page.len() - args.len();
        let line_start = page[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = page[at..].find('\n').map_or(page.len(), |i| at + i);
        let Some(close) = page[args_at..line_end].find("}}") else {
            out.push(Err((
                page[at..line_end].to_string(),
                "no closing `}}` on its line".to_string(),
            )));
            continue;
        };
        let end = args_at + close + 2;
        from = end;
        let indent = &page[line_start..at];
        out.push(Ok(Found {
            span: (at, end),
            indent,
            text: &page[at..end],
            args: &args[..close],
            alone: indent.trim().is_empty() && page[end..line_end].trim().is_empty(),
        }));
    }
    out
}

/// Replace every chapter of `book` that mentions `name` by what `expand` makes of its text
/// (its source file under `src_dir` names it in errors). Stops at the first error.
pub(crate) fn each_page(
    book: &mut Book,
    src_dir: &Path,
    name: &str,
    mut expand: impl FnMut(&str, &Path) -> Result<String, DirectiveError>,
) -> Result<(), DirectiveError> {
    let mut first_error = None;
    book.for_each_mut(|item| {
        let BookItem::Chapter(chapter) = item else {
            return;
        };
        if first_error.is_some() || !chapter.content.contains(name) {
            return;
        }
        let page = match &chapter.source_path {
            Some(p) => src_dir.join(p),
            None => PathBuf::from(&chapter.name),
        };
        match expand(&chapter.content, &page) {
            Ok(content) => chapter.content = content,
            Err(e) => first_error = Some(e),
        }
    });
    first_error.map_or(Ok(()), Err)
}

/// `text` with `indent` before each of its lines but the first (which goes where the directive
/// was, after the same indent), blank lines left blank.
pub(crate) fn indent_rest(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(indent);
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_escapes_and_refuses() {
        let page = "a\n  {{ #trace x.snap }}\n\\{{#trace y}}\n{{#tracer z}}\n{{#trace w\n";
        let found = scan(page, "#trace");
        assert_eq!(found.len(), 2, "{found:?}");
        let first = found[0].as_ref().expect("the first is whole");
        assert_eq!(
            (first.indent, first.args, first.alone),
            ("  ", " x.snap ", true)
        );
        assert_eq!(first.text, "{{ #trace x.snap }}");
        assert_eq!(found[1].as_ref().expect_err("no close").0, "{{#trace w");
    }
}
