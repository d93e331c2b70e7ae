//! The lines that matter: a chapter names them, every process marks its own.
//!
//! A chapter's trace runs to a hundred lines and more; the book shows only the few its prose
//! talks about, and folds the rest (`{{#trace}}`, see `crate::book::trace_lines`). The chapter
//! program chooses them, not the page: before an experiment it names them with [`keys`], and
//! each process marks the first line of its own that a name fits. The mark is a [`MARK`] at
//! the end of the label column, so a reader running the chapter sees it too:
//!
//! ```text
//! worker 1   cluster._getServer: queryServer index 0 -> primary
//! worker 1 * rr(): a fake handle for 127.0.0.1:8000:4:undefined (no socket in this process)
//! ```
//!
//! Workers print for themselves, so the names travel to them with the rest of the trace
//! settings (`super::to_env`). A name is matched against the start of the line as printed,
//! label first, with every run of spaces read as one space: `worker 1 rr(): a fake handle`.
//! It marks one line per process: the first it fits. A primary that prints forty `accept4`
//! lines marks the first, which is the one the book shows.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What marks a line that matters: the last character of the label column (`worker 1 *`), or
/// the first of a line of a picture or a table (`* no cluster ...`).
pub const MARK: char = '*';

/// One name for a line, and whether this process has marked its line yet.
#[derive(Debug, Clone)]
struct Key {
    /// The start of the line, its spaces squeezed (see [`squeeze`]).
    start: String,
    marked: bool,
}

static KEYS: Mutex<Vec<Key>> = Mutex::new(Vec::new());
/// Whether [`KEYS`] holds a name not yet used: the hot path's check, without a lock.
static WANTED: AtomicBool = AtomicBool::new(false);

fn keys_lock() -> std::sync::MutexGuard<'static, Vec<Key>> {
    KEYS.lock().unwrap_or_else(|p| p.into_inner())
}

/// `text` with every run of whitespace made one space, and none at either end.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn set(keys: Vec<Key>) {
    WANTED.store(keys.iter().any(|k| !k.marked), Ordering::Relaxed);
    *keys_lock() = keys;
}

/// The lines that matter for the guard's scope: each of `starts` marks the first line of
/// this process (and of every worker forked meanwhile) that begins with it. Dropping the guard
/// puts back the names that were there before.
pub fn keys(starts: &[&str]) -> Keys {
    let before = keys_lock().clone();
    let fresh = starts
        .iter()
        .map(|s| Key {
            start: squeeze(s),
            marked: false,
        })
        .collect();
    set(fresh);
    Keys { before }
}

/// The guard [`keys`] returns.
#[must_use = "the names are forgotten when the guard is dropped"]
pub struct Keys {
    before: Vec<Key>,
}

impl Drop for Keys {
    fn drop(&mut self) {
        set(std::mem::take(&mut self.before));
    }
}

/// Whether a name is waiting for its line: the check before [`take`], without a lock.
pub(super) fn wanted() -> bool {
    WANTED.load(Ordering::Relaxed)
}

/// Whether the line `label prefix text` is one that matters: true for the first line each
/// name fits, once.
pub(super) fn take(label: &str, prefix: &str, text: &str) -> bool {
    let line = squeeze(&format!("{label} {prefix}{text}"));
    let mut keys = keys_lock();
    let Some(key) = keys
        .iter_mut()
        .find(|k| !k.marked && line.starts_with(&k.start))
    else {
        return false;
    };
    key.marked = true;
    let wanted = keys.iter().any(|k| !k.marked);
    WANTED.store(wanted, Ordering::Relaxed);
    true
}

/// The names still to be used, for a worker about to be forked: one per line.
pub(super) fn to_env() -> String {
    let keys = keys_lock();
    let wanted = keys.iter().filter(|k| !k.marked);
    wanted.map(|k| format!("\n{}", k.start)).collect()
}

/// Take the names a primary handed down (the lines after the first of the setting).
pub(super) fn from_env<'a>(lines: impl Iterator<Item = &'a str>) {
    let keys = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| Key {
            start: squeeze(l),
            marked: false,
        })
        .collect();
    set(keys);
}

/// The label column of a text line: `{label:<10}`, or with the mark in its last place.
pub(super) fn label_column(label: &str, marked: bool) -> String {
    match marked {
        true => format!("{label:<9}{MARK}"),
        false => format!("{label:<10}"),
    }
}

/// `line` as a program of this project printed it, unmarked, if it was marked: a trace line
/// whose label column ends in [`MARK`] (`worker 1 * rr(): ...`), or a line of a picture or a
/// table that starts with it (`*    |<-- online --|`). The mark becomes a space, so the
/// columns stay where they were. A label may have been rewritten by a snapshot filter
/// (`child [N]`), so the mark is looked for among the first 16 characters, after nothing
/// but a label.
pub fn unmark(line: &str) -> Option<String> {
    let at = line.find(MARK)?;
    let before = &line[..at];
    let label_like = before
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '[' | ']'));
    let spaced = line[at + MARK.len_utf8()..].starts_with(' ');
    (at < 16 && label_like && spaced).then(|| format!("{before} {}", &line[at + 1..]))
}

/// A line of a picture or a table, marked: its first character, a space in a picture (so
/// nothing moves), becomes [`MARK`]; a line that starts with text gets `* ` before it.
pub fn mark_line(line: &str) -> String {
    match line.strip_prefix(' ') {
        Some(rest) => format!("{MARK}{rest}"),
        None => format!("{MARK} {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_found_after_a_label_or_at_the_start_and_nowhere_else() {
        assert_eq!(
            unmark("worker 1 * rr(): a fake handle").as_deref(),
            Some("worker 1   rr(): a fake handle")
        );
        assert_eq!(
            unmark("child [N]  *   accept4(3) = 4").as_deref(),
            Some("child [N]      accept4(3) = 4")
        );
        assert_eq!(
            unmark("*    |<-- online --|").as_deref(),
            Some("     |<-- online --|")
        );
        assert_eq!(unmark("worker 1   rr(): a fake handle"), None);
        assert_eq!(unmark("primary      # a note with * in it"), None);
        assert_eq!(unmark(r#"{"a":"* b"}"#), None);
        assert_eq!(unmark("**bold**"), None);
        assert_eq!(
            unmark(&mark_line("     |  |")).as_deref(),
            Some("     |  |")
        );
        assert_eq!(
            unmark(&mark_line("no cluster")).as_deref(),
            Some("  no cluster")
        );
    }

    #[test]
    fn a_name_marks_the_first_line_it_fits_once_and_travels_to_workers() {
        // A label no other test prints: the names are the process's, and tests run in threads.
        let guard = keys(&["keytest   rr():  a fake", "keytest # two"]);
        assert_eq!(to_env(), "\nkeytest rr(): a fake\nkeytest # two");
        assert!(!take("keytest", "", "queryServer index 0"));
        assert!(take(
            "keytest",
            "",
            "rr(): a fake handle for 127.0.0.1:8000"
        ));
        assert!(
            !take("keytest", "", "rr(): a fake handle"),
            "one line per name"
        );
        assert!(take("keytest", "  # ", "two"));
        assert_eq!(to_env(), "", "nothing left to hand down");
        from_env("text\nkeytest again".split('\n').skip(1));
        assert!(take("keytest", "", "again"));
        drop(guard);
        assert!(
            !take("keytest", "", "rr(): a fake handle"),
            "forgotten with the guard"
        );
    }

    #[test]
    fn the_label_column_keeps_its_width_when_marked() {
        for label in ["primary", "worker 1", "process A"] {
            assert_eq!(
                label_column(label, true).len(),
                label_column(label, false).len()
            );
            let line = format!("{} text", label_column(label, true));
            assert_eq!(
                unmark(&line),
                Some(format!("{} text", label_column(label, false)))
            );
        }
    }
}
