//! The book's hand-drawn pictures (`book/src/img/*.svg`, all but the generated `bench*.svg`
//! charts) stay legible on a phone and safe to embed.
//!
//! The arithmetic: the smallest common phone is 360 CSS px wide, and mdBook's text column there
//! is 40 px narrower: [`COLUMN`] = 320 px (measured in Chromium: 320 px at 360, 350 at 390, 372 at
//! 412). A picture wider than the column is scaled down to fit it. A viewBox at most
//! [`MAX_WIDTH`] = 400 units wide is therefore scaled by at least 320 / 400 = 0.8, and text of at
//! least [`MIN_FONT`] = 18 units is drawn at least 18 × 0.8 = 14.4 px high, above [`MIN_PX`] =
//! 14 px. Each picture's `width`/`height` equal its viewBox, so a desktop shows it 1:1 (18 px
//! text) instead of stretching it to the 750 px column.
//!
//! The checks are plain string searches, no XML parser: a viewBox no wider than the limit, every
//! `font-size` (attribute or CSS) at least the limit and in user units or `px`, a `<title>` and a
//! `<desc>`, text as real `<text>`, no `<script>`, no `<foreignObject>`, no external `href`,
//! `url()` or `@import`. Every picture a page links has alt text.

use std::fs;
use std::path::{Path, PathBuf};

/// mdBook's text column on a 360 px phone, in CSS px.
const COLUMN: u32 = 320;
/// The smallest text a reader should see there, in px.
const MIN_PX: u32 = 14;
/// The widest viewBox allowed, in user units.
const MAX_WIDTH: u32 = 400;
/// The smallest `font-size` allowed, in user units.
const MIN_FONT: u32 = 18;

// The limits agree: MIN_FONT × COLUMN / MAX_WIDTH ≥ MIN_PX.
const _: () = assert!(MIN_FONT * COLUMN >= MIN_PX * MAX_WIDTH);

fn img_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/img")
}

/// Every hand-drawn picture: `img/*.svg` except the generated bench charts.
fn pictures() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(img_dir())
        .expect("book/src/img exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".svg") && !name.starts_with("bench"))
        .map(|name| {
            let text = fs::read_to_string(img_dir().join(&name)).expect("readable svg");
            (name, text)
        })
        .collect();
    out.sort();
    out
}

/// The value of attribute `name` in the tag `tag` (e.g. `<svg ...>`), if present.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().last();
        let after = rest[at + name.len()..].trim_start();
        if before.is_some_and(char::is_whitespace)
            && let Some(value) = after.strip_prefix('=')
        {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            let value = &value[quote.len_utf8()..];
            return value.find(quote).map(|end| &value[..end]);
        }
        rest = &rest[at + name.len()..];
    }
    None
}

/// The root `<svg ...>` start tag.
fn root_tag(svg: &str) -> &str {
    let start = svg.find("<svg").expect("an <svg> root");
    let end = svg[start..].find('>').expect("the <svg> tag closes");
    &svg[start..start + end]
}

/// The numbers of the root's viewBox: min-x, min-y, width, height.
fn view_box(svg: &str) -> [f64; 4] {
    let value = attr(root_tag(svg), "viewBox").expect("a viewBox on the root");
    let numbers: Vec<f64> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("viewBox numbers"))
        .collect();
    numbers.try_into().expect("four viewBox numbers")
}

/// Every `font-size` value, as written: `font-size="16"`, `font-size: 16px`.
fn font_sizes(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find("font-size") {
        let tail = rest[at + "font-size".len()..].trim_start();
        let tail = tail
            .strip_prefix('=')
            .or_else(|| tail.strip_prefix(':'))
            .unwrap_or(tail)
            .trim_start();
        let tail = tail.trim_start_matches(['"', '\'']);
        let end = tail
            .find(['"', '\'', ';', '}', ' ', '\n'])
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &rest[at + "font-size".len()..];
    }
    out
}

/// A font size in user units, if it is written in user units or `px`.
fn user_units(size: &str) -> Option<f64> {
    size.strip_suffix("px").unwrap_or(size).parse().ok()
}

/// The text of the first `<name ...>...</name>` element, trimmed.
fn element<'a>(svg: &'a str, name: &str) -> Option<&'a str> {
    let open = svg.find(&format!("<{name}"))?;
    let body = open + svg[open..].find('>')? + 1;
    let close = body + svg[body..].find(&format!("</{name}>"))?;
    Some(svg[body..close].trim())
}

/// Every value after `marker` up to its closing `quote_or_paren`, e.g. `href="` → `"`.
fn values_after<'a>(svg: &'a str, marker: &str, close: char) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find(marker) {
        let tail = &rest[at + marker.len()..];
        let end = tail.find(close).unwrap_or(tail.len());
        out.push(tail[..end].trim());
        rest = &tail[end..];
    }
    out
}

#[test]
fn there_are_pictures() {
    let names: Vec<String> = pictures().into_iter().map(|(name, _)| name).collect();
    assert!(
        names.iter().any(|n| n == "ch00-whole.svg"),
        "chapter 0's picture of the whole is missing: {names:?}"
    );
}

#[test]
fn every_picture_fits_a_phone() {
    for (name, svg) in pictures() {
        let [_, _, width, height] = view_box(&svg);
        assert!(
            width <= f64::from(MAX_WIDTH),
            "{name}: viewBox {width} wide, more than {MAX_WIDTH}: text would shrink below {MIN_PX} px in a {COLUMN} px phone column"
        );
        let root = root_tag(&svg);
        for (attribute, want) in [("width", width), ("height", height)] {
            let got = attr(root, attribute)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name}: the root needs {attribute}=\"{want}\""));
            assert_eq!(
                got, want,
                "{name}: {attribute} should equal the viewBox's, so a desktop shows it 1:1"
            );
        }
        let sizes = font_sizes(&svg);
        assert!(
            !sizes.is_empty(),
            "{name}: no font-size at all (renderers default to 12 or 16)"
        );
        for size in sizes {
            let units = user_units(&size)
                .unwrap_or_else(|| panic!("{name}: font-size {size:?} is not in user units or px"));
            let on_phone = units * f64::from(COLUMN) / width.max(f64::from(COLUMN));
            assert!(
                units >= f64::from(MIN_FONT) && on_phone >= f64::from(MIN_PX),
                "{name}: font-size {size} is below {MIN_FONT} ({on_phone:.1} px in a {COLUMN} px phone column)"
            );
        }
    }
}

#[test]
fn every_picture_says_what_it_shows() {
    for (name, svg) in pictures() {
        for tag in ["title", "desc"] {
            let text = element(&svg, tag).unwrap_or_else(|| panic!("{name}: no <{tag}>"));
            assert!(!text.is_empty(), "{name}: empty <{tag}>");
        }
        assert!(
            svg.contains("<text"),
            "{name}: its words should be <text>, not paths"
        );
    }
}

#[test]
fn every_picture_is_self_contained() {
    for (name, svg) in pictures() {
        let lower = svg.to_ascii_lowercase();
        for banned in [
            "<script",
            "<foreignobject",
            "@import",
            "@font-face",
            "<image",
        ] {
            assert!(!lower.contains(banned), "{name}: contains {banned}");
        }
        for quote in ['"', '\''] {
            for href in values_after(&svg, &format!("href={quote}"), quote) {
                assert!(
                    href.starts_with('#'),
                    "{name}: href {href:?} points outside the picture"
                );
            }
        }
        for url in values_after(&svg, "url(", ')') {
            assert!(
                url.trim_matches(['"', '\'']).starts_with('#'),
                "{name}: url({url}) points outside the picture"
            );
        }
    }
}

/// Every `![alt](img/....svg)` in the book's pages has alt text and a file behind it.
#[test]
fn every_linked_picture_has_alt_text() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    for entry in fs::read_dir(&src).expect("book/src exists").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let page = fs::read_to_string(&path).expect("readable page");
        let mut rest = page.as_str();
        while let Some(at) = rest.find("![") {
            let tail = &rest[at + 2..];
            let Some(alt_end) = tail.find("](") else {
                break;
            };
            let alt = &tail[..alt_end];
            let target_start = alt_end + 2;
            let target_end = tail[target_start..]
                .find(')')
                .map_or(tail.len(), |e| target_start + e);
            let target = &tail[target_start..target_end];
            if target.ends_with(".svg") {
                assert!(
                    !alt.trim().is_empty(),
                    "{}: picture {target} has no alt text",
                    path.display()
                );
                assert!(
                    src.join(target).exists(),
                    "{}: picture {target} does not exist",
                    path.display()
                );
            }
            rest = &tail[target_end..];
        }
    }
}
