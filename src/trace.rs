//! How a process tells its story: one line per event, process label first.
//!
//! Every program in this project (a chapter, the lab, a worker) prints through here, so
//! the output has one shape everywhere: stable enough to snapshot, short enough to read.
//! Each line is written with a single `write(2)`, so when a primary and its workers share a
//! terminal or a pipe their lines never tear into each other.
//!
//! Two renderings: text (colours on a terminal, plain when piped or when `NO_COLOR` is set)
//! and JSON (one object per event, for scripts; see `--json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use anstyle::{AnsiColor, Style};
use serde_json::{Value, json};

mod keys;

pub use keys::{Keys, MARK, keys, mark_line, unmark};

/// How events are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// Print nothing (benchmarks, or a worker told to be quiet).
    Off,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    format: Format,
    colour: bool,
    syscalls: bool,
    wire: bool,
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
static LABEL: Mutex<String> = Mutex::new(String::new());
/// The [`Role`], as a number (see [`role`]).
static ROLE: AtomicU8 = AtomicU8::new(Role::Primary as u8);
/// While [`capture`] runs: the events, as JSON, instead of printing them.
static CAPTURED: Mutex<Option<Vec<Value>>> = Mutex::new(None);

// Copies of the settings that the hot path reads without a lock: a primary under load asks
// "is anyone listening?" several times per connection, and the answer must cost nothing when
// it is "no" (see [`enabled`]). [`refresh`] keeps them in step with `CONFIG` and `CAPTURED`.
/// Some event would be printed or captured.
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Syscall lines would be printed or captured.
static SYSCALLS: AtomicBool = AtomicBool::new(true);
/// `--trace-wire` lines would be printed.
static WIRE: AtomicBool = AtomicBool::new(false);
/// The [`Format`], as a number (see [`format`]).
static FORMAT: AtomicU8 = AtomicU8::new(0);

/// The environment variable through which a primary hands its trace settings to the
/// workers it forks (they re-run the same program, and must print the same way).
pub const ENV: &str = "CLUSTER_WALKTHROUGH_TRACE";

/// Set the rendering, at the start of a process (a chapter may change it between runs).
pub fn init(format: Format, syscalls: bool, wire: bool) {
    let colour = std::env::var_os("NO_COLOR").is_none()
        && (std::env::var_os("CLICOLOR_FORCE").is_some() || std::io::stdout().is_terminal());
    *CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = Some(Config {
        format,
        colour,
        syscalls,
        wire,
    });
    refresh();
}

/// Bring the lock-free copies of the settings up to date.
fn refresh() {
    let c = config();
    let capturing = CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    let on = c.format != Format::Off || capturing;
    ENABLED.store(on, Ordering::Relaxed);
    SYSCALLS.store(on && c.syscalls, Ordering::Relaxed);
    WIRE.store(c.wire && c.format != Format::Off, Ordering::Relaxed);
    FORMAT.store(c.format as u8, Ordering::Relaxed);
}

// ANCHOR: enabled
/// Whether any event would be printed (or captured) at all. Callers on a hot path check it
/// before they build a line: `if trace::enabled() { trace::step(&format!(...)) }` prints
/// exactly what the plain call prints, and allocates nothing when tracing is off.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether [`syscall`] lines would be printed (or captured): the same guard for them.
pub fn syscalls_enabled() -> bool {
    SYSCALLS.load(Ordering::Relaxed)
}
// ANCHOR_END: enabled

/// A change to the trace settings for one scope: dropping the guard puts the settings back
/// as they were, on every way out of the scope (`?` and panics too). Chapters use it to quiet
/// or widen the trace for one experiment; the workers forked meanwhile inherit the change
/// (see [`to_env`]).
#[must_use = "the setting is undone when the guard is dropped"]
pub struct Scoped {
    before: Option<Config>,
}

impl Scoped {
    /// Syscall lines on or off; the rest as it is.
    pub fn syscalls(on: bool) -> Scoped {
        let c = config();
        Scoped::format(c.format, on, c.wire)
    }

    /// The wire trace on or off; the rest as it is.
    pub fn wire(on: bool) -> Scoped {
        let c = config();
        Scoped::format(c.format, c.syscalls, on)
    }

    /// Every setting at once, as [`init`] takes them (`Format::Off` to record quietly).
    pub fn format(format: Format, syscalls: bool, wire: bool) -> Scoped {
        let before = *CONFIG.lock().unwrap_or_else(|p| p.into_inner());
        init(format, syscalls, wire);
        Scoped { before }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        *CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = self.before;
        refresh();
    }
}

#[cfg(test)]
mod scoped_tests {
    use super::*;

    #[test]
    fn a_scoped_setting_is_undone_on_every_way_out() {
        fn quiet_then_fail() -> Result<(), &'static str> {
            let _quiet = Scoped::syscalls(false);
            assert!(!syscalls_enabled());
            Err("an early return")?;
            unreachable!("the ? returns")
        }
        let before = syscalls_enabled();
        assert!(quiet_then_fail().is_err());
        assert_eq!(syscalls_enabled(), before, "restored by the guard");
    }
}

/// The settings as a short string for [`ENV`], e.g. `text,syscalls,wire`.
pub fn to_env() -> String {
    let c = config();
    let mut s = match c.format {
        Format::Text => "text".to_string(),
        Format::Json => "json".to_string(),
        Format::Off => "off".to_string(),
    };
    if c.syscalls {
        s.push_str(",syscalls");
    }
    if c.wire {
        s.push_str(",wire");
    }
    s.push_str(&keys::to_env());
    s
}

/// Initialise from [`ENV`] if a primary set it; returns whether it did.
pub fn init_from_env() -> bool {
    let Ok(v) = std::env::var(ENV) else {
        return false;
    };
    // The settings, then one line per name of a line that matters (see [`keys`]).
    let mut lines = v.split('\n');
    let parts: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    keys::from_env(lines);
    let format = match parts.first().copied() {
        Some("json") => Format::Json,
        Some("off") => Format::Off,
        _ => Format::Text,
    };
    init(format, parts.contains(&"syscalls"), parts.contains(&"wire"));
    true
}

fn config() -> Config {
    CONFIG
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(Config {
            format: Format::Text,
            colour: false,
            syscalls: true,
            wire: false,
        })
}

/// Whether `--trace-wire` is on (callers skip building the line when it is not).
pub fn wire_enabled() -> bool {
    WIRE.load(Ordering::Relaxed)
}

/// The current output format.
pub fn format() -> Format {
    match FORMAT.load(Ordering::Relaxed) {
        x if x == Format::Json as u8 => Format::Json,
        x if x == Format::Off as u8 => Format::Off,
        _ => Format::Text,
    }
}

/// Name the process (or the part of it) that the next lines speak for.
pub fn set_label(label: &str) {
    let mut l = LABEL.lock().unwrap_or_else(|p| p.into_inner());
    l.clear();
    l.push_str(label);
}

/// The current label.
pub fn label() -> String {
    LABEL.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// What part the process plays: the `"role"` field of every JSON event, so that a script
/// (chapter 8's table) can tell a worker's calls from the primary's without reading labels.
/// It belongs to the process, not to the label: the lab's primary also speaks as `client`,
/// and its role stays `primary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Any process that is not a worker, a program without cluster included: Node's
    /// `cluster.isPrimary` is true there too (it is `!('NODE_UNIQUE_ID' in process.env)`).
    Primary = 0,
    /// A process that `cluster.fork()` started.
    Worker = 1,
    /// A copy made by `fork` without `exec` (chapter 9's models; never Node).
    Child = 2,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Worker => "worker",
            Role::Child => "child",
        }
    }
}

/// Say what part this process plays, once it is known (set next to [`set_label`]).
pub fn set_role(role: Role) {
    ROLE.store(role as u8, Ordering::Relaxed);
}

/// This process's role (`Primary` until told otherwise).
pub fn role() -> Role {
    match ROLE.load(Ordering::Relaxed) {
        x if x == Role::Worker as u8 => Role::Worker,
        x if x == Role::Child as u8 => Role::Child,
        _ => Role::Primary,
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Step,
    Syscall,
    Wire,
    Ok,
    Error,
    Note,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Step => "step",
            Kind::Syscall => "syscall",
            Kind::Wire => "wire",
            Kind::Ok => "ok",
            Kind::Error => "error",
            Kind::Note => "note",
        }
    }
}

fn label_style(label: &str) -> Style {
    let colour = if label.starts_with("primary") {
        AnsiColor::Magenta
    } else if let Some(n) = label.strip_prefix("worker ") {
        let palette = [
            AnsiColor::Cyan,
            AnsiColor::Yellow,
            AnsiColor::Blue,
            AnsiColor::Green,
        ];
        let i: usize = n.parse().unwrap_or(1);
        palette[(i.max(1) - 1) % palette.len()]
    } else {
        AnsiColor::Cyan
    };
    Style::new().fg_color(Some(colour.into())).bold()
}

fn body_style(kind: Kind) -> Style {
    match kind {
        Kind::Step => Style::new(),
        Kind::Syscall => Style::new().dimmed(),
        Kind::Wire => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Kind::Ok => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Kind::Error => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
        Kind::Note => Style::new().italic(),
    }
}

fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Step => "",
        Kind::Syscall => "  ",
        Kind::Wire => "  ",
        Kind::Ok => "  ok: ",
        Kind::Error => "  error: ",
        Kind::Note => "  # ",
    }
}

fn write_line(line: &str) {
    // One write per line: lines from different processes never interleave mid-line.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn event_json(kind: Kind, text: &str, extra: Option<Value>) -> Value {
    let mut obj = json!({
        "process": label(),
        "role": role().name(),
        "pid": std::process::id(),
        "event": kind.name(),
        "text": text,
    });
    if let (Some(Value::Object(extra)), Some(map)) = (extra, obj.as_object_mut()) {
        map.extend(extra);
    }
    obj
}

/// Run `f` with this process's events kept in memory (as the `--json` objects) instead of
/// printed; returns them with `f`'s result. Other processes print as usual.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Value>) {
    *CAPTURED.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    refresh();
    let out = f();
    let events = CAPTURED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    refresh();
    (out, events)
}

fn emit(kind: Kind, text: &str, extra: Option<Value>) {
    // A line that matters to the chapter (see [`keys`]) is marked, in the JSON events too.
    let key = keys::wanted() && keys::take(&label(), prefix(kind), text);
    let extra = match (key, extra) {
        (false, extra) => extra,
        (true, Some(Value::Object(mut m))) => {
            m.insert("key".into(), Value::Bool(true));
            Some(Value::Object(m))
        }
        (true, _) => Some(json!({"key": true})),
    };
    if let Some(events) = CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        events.push(event_json(kind, text, extra));
        return;
    }
    let c = config();
    match c.format {
        Format::Off => {}
        Format::Text => {
            let label = label();
            let column = keys::label_column(&label, key);
            let line = if c.colour {
                let ls = label_style(&label);
                let bs = body_style(kind);
                format!("{ls}{column}{ls:#} {bs}{}{text}{bs:#}\n", prefix(kind))
            } else {
                format!("{column} {}{text}\n", prefix(kind))
            };
            write_line(&line);
        }
        Format::Json => write_line(&format!("{}\n", event_json(kind, text, extra))),
    }
}

/// Something the program does at Node's level: `server 1: listen(P, '127.0.0.1')`.
pub fn step(text: &str) {
    emit(Kind::Step, text, None);
}

/// One system call, in the parts of strace's line `name(args) = result`.
#[derive(Debug, Clone, Copy)]
pub struct Syscall<'a> {
    /// `bind`: the JSON event's `"syscall"` field.
    pub name: &'a str,
    /// `3, 127.0.0.1:8000`: what strace prints between the parentheses.
    pub args: &'a str,
    /// What the call is for, when its name does not say: `SO_REUSEADDR` for a
    /// `setsockopt`. The JSON event's `"option"` field.
    pub option: Option<&'a str>,
}

impl<'a> Syscall<'a> {
    pub fn new(name: &'a str, args: &'a str) -> Self {
        Self {
            name,
            args,
            option: None,
        }
    }

    /// The same call, with the option it sets.
    pub fn with_option(self, option: &'a str) -> Self {
        Self {
            option: Some(option),
            ..self
        }
    }
}

/// How a system call ended.
#[derive(Debug, Clone, Copy)]
pub enum Returned<'a> {
    /// What it returned, as strace shows it: `0`, `5`, `0 (127.0.0.1:8000)`.
    Value(&'a str),
    /// It failed: the errno's name and its description, `EADDRINUSE` and
    /// `Address already in use`. The name is the JSON event's `"errno"` field.
    Error { errno: &'a str, desc: &'a str },
}

/// A syscall and its result, in strace's form: `bind(3, 127.0.0.1:8000) = 0`, or
/// `bind(4, 127.0.0.1:8000) = -1 EADDRINUSE (Address already in use)`. The JSON event also
/// carries the parts: `"syscall"`, `"call"`, `"result"`, and `"errno"` or `"option"`.
pub fn syscall(call: &Syscall<'_>, returned: Returned<'_>) {
    if !syscalls_enabled() {
        return;
    }
    let shown = format!("{}({})", call.name, call.args);
    let result = match returned {
        Returned::Value(v) => v.to_string(),
        Returned::Error { errno, desc } => format!("-1 {errno} ({desc})"),
    };
    let mut extra = json!({"syscall": call.name, "call": shown, "result": result});
    if let Returned::Error { errno, .. } = returned {
        extra["errno"] = json!(errno);
    }
    if let Some(option) = call.option {
        extra["option"] = json!(option);
    }
    emit(Kind::Syscall, &format!("{shown} = {result}"), Some(extra));
}

/// A syscall that was *not* made, and why (the reader must see the absence too).
pub fn syscall_skipped(call: &Syscall<'_>, why: &str) {
    if syscalls_enabled() {
        let shown = format!("{}({})", call.name, call.args);
        emit(
            Kind::Syscall,
            &format!("{shown} not called: {why}"),
            Some(json!({"syscall": call.name, "call": shown, "skipped": why})),
        );
    }
}

/// A channel message as it goes out, verbatim: `-> worker 1 {"cmd":"NODE_CLUSTER",...}`.
pub fn wire(direction: &str, line: &str) {
    if wire_enabled() {
        emit(
            Kind::Wire,
            &format!("{direction} {line}"),
            Some(json!({"direction": direction, "message": line})),
        );
    }
}

/// A good outcome: `listening on 127.0.0.1:8000`.
pub fn ok(text: &str) {
    emit(Kind::Ok, text, None);
}

/// An error as Node would show it (see `NetError::trace`), with its properties as JSON.
pub fn error(text: &str, properties: Value) {
    emit(Kind::Error, text, Some(properties));
}

/// A failure that is not one of Node's errors (a worker that died, a bad message).
pub fn problem(text: &str) {
    emit(Kind::Error, text, None);
}

/// An explanation for the reader, not something that happened.
pub fn note(text: &str) {
    emit(Kind::Note, text, None);
}

/// Print a raw line with no label (headings and summaries of the tour). A line that matters
/// (see [`keys`]; matched without a label) is marked with [`mark_line`].
pub fn raw(text: &str) {
    if config().format == Format::Text {
        let key = keys::wanted() && keys::take("", "", text);
        match key {
            true => write_line(&format!("{}\n", mark_line(text))),
            false => write_line(&format!("{text}\n")),
        }
    }
}

/// A heading, bold on a terminal.
pub fn heading(text: &str) {
    if config().format != Format::Text {
        return;
    }
    if config().colour {
        let s = Style::new().bold().underline();
        write_line(&format!("\n{s}{text}{s:#}\n"));
    } else {
        write_line(&format!("\n{text}\n"));
    }
}

/// A JSON object printed as one line, whatever the format (the `--json` summary).
pub fn json_line(value: &Value) {
    if config().format == Format::Json {
        write_line(&format!("{value}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own events (other tests may trace in parallel threads meanwhile).
    fn mine(events: Vec<Value>) -> Vec<Value> {
        events
            .into_iter()
            .filter(|e| {
                e["call"]
                    .as_str()
                    .is_some_and(|c| c.ends_with("(7, typed)"))
            })
            .collect()
    }

    #[test]
    fn a_syscall_event_carries_its_parts_and_strace_text() {
        let ((), events) = capture(|| {
            let bind = Syscall::new("bind", "7, typed");
            let failed = Returned::Error {
                errno: "EADDRINUSE",
                desc: "Address already in use",
            };
            syscall(&bind, failed);
            let opt = Syscall::new("setsockopt", "7, typed").with_option("SO_REUSEADDR");
            syscall(&opt, Returned::Value("0"));
            syscall_skipped(&Syscall::new("listen", "7, typed"), "libuv");
        });
        let events = mine(events);
        assert_eq!(events.len(), 3, "{events:?}");
        let bind = &events[0];
        assert_eq!(
            bind["text"],
            "bind(7, typed) = -1 EADDRINUSE (Address already in use)"
        );
        assert_eq!(
            (&bind["syscall"], &bind["errno"], &bind["role"]),
            (&json!("bind"), &json!("EADDRINUSE"), &json!("primary"))
        );
        assert_eq!(events[1]["text"], "setsockopt(7, typed) = 0");
        assert_eq!(events[1]["option"], "SO_REUSEADDR");
        assert!(events[1].get("errno").is_none());
        assert_eq!(events[2]["text"], "listen(7, typed) not called: libuv");
        assert_eq!(
            (&events[2]["syscall"], &events[2]["skipped"]),
            (&json!("listen"), &json!("libuv"))
        );
    }
}
