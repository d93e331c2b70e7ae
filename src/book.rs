//! Builds this project's mdBook (the explanation in `book/`) to HTML.
//!
//! The crate builds its own book through the `mdbook-driver` library, so
//! `cargo run -- book` works with nothing but cargo: no separate `mdbook`
//! install, and the mdBook version is pinned in `Cargo.lock` like every other
//! dependency. The book quotes snapshot files from our tests, so `cargo test`
//! builds it too and checks that everything it quotes is still there (see
//! `tests/book.rs`).
//!
//! Node's own lines are shown the same way: a chapter writes
//! `{{#node 24 lib/net.js:listenInCluster}}` and the build reads those lines
//! out of the Node binary of the release the book pins ([`NODE`]), so they are
//! never committed (see [`node_lines`]). Without that binary the build shows
//! the links alone and says so in one line.
//!
//! A trace is shown the same way: `{{#trace ../../tests/snapshots/ch05_round_robin.snap}}`
//! shows the lines the chapter's program marked as the ones that matter, and folds the whole
//! trace under them (see [`trace_lines`]).
//!
//! mdBook logs through `tracing`; without a subscriber its messages are
//! dropped, so a build prints nothing. Problems with `{{#include}}` links are
//! only logged by mdBook, not returned as errors; `tests/book.rs` checks for
//! them instead.

mod directive;
pub mod node_lines;
pub mod trace_lines;

use std::error::Error;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use mdbook_driver::MDBook;

use crate::node_source::Version;

/// The Node release the book quotes and links: `blob/v24.22.3/...` on GitHub, and the binary
/// `{{#node 24 ...}}` reads. The one place it is written (`scripts/install-node-versions` and
/// the Pages workflow install it by number).
pub const NODE: Version = Version {
    major: 24,
    minor: 22,
    patch: 3,
};

/// The release the book links where it shows history: the article's Node.
pub const NODE_HISTORY: Version = Version {
    major: 20,
    minor: 20,
    patch: 2,
};

/// Why the book could not be built. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// `book.toml`, `SUMMARY.md` or a chapter file could not be read or parsed.
    #[error("cannot load the book at {}: {}", root.display(), one_line(source.as_ref()))]
    Load {
        root: PathBuf,
        source: Box<dyn Error + Send + Sync>,
    },
    /// mdBook loaded the book but rendering it failed.
    #[error("cannot build the book: {}", one_line(source.as_ref()))]
    Build {
        source: Box<dyn Error + Send + Sync>,
    },
    /// The output directory cannot be created or written to, or it is not a
    /// safe place to write (mdBook empties it before writing).
    #[error("cannot write the book to {}: {source}", path.display())]
    OutDir { path: PathBuf, source: io::Error },
    /// A `{{#node ...}}` directive names no lines of Node that can be shown:
    /// a name not defined in the file, a file not in the binary, a bad range.
    #[error("{}: {}: {}", .0.page.display(), .0.directive, .0.why)]
    NodeLines(node_lines::DirectiveError),
    /// A `{{#trace ...}}` directive cannot be shown: its file is missing, no line of it is
    /// marked as one that matters, or too many are (see [`trace_lines`]).
    #[error("{}: {}: {}", .0.page.display(), .0.directive, .0.why)]
    TraceLines(node_lines::DirectiveError),
}

/// The book's root directory (the one holding `book.toml`) in this crate.
pub fn book_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book")
}

/// Builds the HTML book found at `book_root` into `out_dir` and returns the
/// path of the generated `index.html`. What the build has to say (a Node
/// release not installed) goes to stderr, one line each.
///
/// `out_dir` is created if needed. A relative `out_dir` is taken relative to
/// the current directory (mdBook itself would take it relative to
/// `book_root`). mdBook deletes everything already in `out_dir` before
/// writing, so this refuses an `out_dir` that is `book_root` or one of its
/// ancestors.
pub fn build(book_root: &Path, out_dir: &Path) -> Result<PathBuf, BookError> {
    build_noting(book_root, out_dir, &mut |line| eprintln!("{line}"))
}

/// [`build`], handing each line it has to say to `note` instead of printing it.
pub fn build_noting(
    book_root: &Path,
    out_dir: &Path,
    note: &mut dyn FnMut(&str),
) -> Result<PathBuf, BookError> {
    let out_dir = prepare_out_dir(book_root, out_dir)?;

    let mut book = MDBook::load(book_root).map_err(|e| BookError::Load {
        root: book_root.to_path_buf(),
        source: e.into(),
    })?;
    // On the chapters as loaded, so before mdBook's own preprocessors
    // (`{{#include}}`): see `node_lines`.
    let src_dir = book.source_dir();
    node_lines::expand(&mut book.book, &src_dir, note).map_err(BookError::NodeLines)?;
    trace_lines::expand(&mut book.book, &src_dir).map_err(BookError::TraceLines)?;
    book.config.build.build_dir = out_dir;
    book.build()
        .map_err(|e| BookError::Build { source: e.into() })?;

    // With one renderer mdBook writes straight into the build dir; with
    // several, each gets a subdirectory. `build_dir_for` knows which.
    Ok(book.build_dir_for("html").join("index.html"))
}

/// Makes `out_dir` absolute, creates it, and checks that a file can be
/// written in it, so that a bad directory gives a clear [`BookError::OutDir`]
/// instead of an error from deep inside mdBook.
fn prepare_out_dir(book_root: &Path, out_dir: &Path) -> Result<PathBuf, BookError> {
    let fail = |source: io::Error| BookError::OutDir {
        path: out_dir.to_path_buf(),
        source,
    };
    let out_dir = std::path::absolute(out_dir).map_err(fail)?;
    fs::create_dir_all(&out_dir).map_err(fail)?;

    if let (Ok(out), Ok(root)) = (out_dir.canonicalize(), book_root.canonicalize())
        && root.starts_with(&out)
    {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it contains the book's sources, and mdBook empties its out dir before writing",
        )));
    }

    let probe = out_dir.join(format!(".write-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(fail)?;
    fs::remove_file(&probe).map_err(fail)?;
    Ok(out_dir)
}

/// Formats an error and its causes as one line: `outer: cause: cause`.
/// mdBook's errors are `anyhow` chains, and some causes (TOML parse errors)
/// span several lines; their lines are joined with spaces.
fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(err);
    while let Some(e) = next {
        if !out.is_empty() {
            out.push_str(": ");
        }
        let text = e.to_string();
        let mut first = true;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(line);
        }
        next = e.source();
    }
    out
}
