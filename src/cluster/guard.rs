//! What the primary refuses a worker. Not in Node: Node trusts its workers, since they run
//! the same program. Ours may run anything (`lab --exec`), so a worker is untrusted input,
//! and a `queryServer` is a request to open a socket *in the primary*.
//!
//! Refusals are answered the way Node answers a bind that failed, with an errno from Node's
//! table, so a real Node worker shows an ordinary `'error'` event (`EACCES`, `EMFILE`,
//! `EADDRNOTAVAIL`), and the user gets one line saying what was refused and why.
//!
//! A pipe (`listen('/dir/app.sock')`) is not "beyond loopback": only processes on this
//! machine can reach it. But binding one makes a file, in the primary's name, wherever the
//! worker says; so the primary makes socket files only in the directories it was given
//! ([`BindPolicy::pipe_dirs`]: the lab's `--path` directory, or its own temporary one). It
//! never removes a file to make room: a path that exists is the kernel's `EADDRINUSE`, as in
//! Node. Abstract names (`\0name`) make no file and are allowed; a NUL anywhere else in a
//! path is refused.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::sys::Errno;

use super::message::{AddressType, ServerQuery};
use super::path;

/// How many cluster handles one worker may hold at once. Node's own programs hold a few;
/// a flood of queries must not make the primary run out of file descriptors for everyone.
pub(crate) const MAX_HANDLES_PER_WORKER: usize = 64;

/// The bounds on what a worker can make the primary keep, in a few lines for `lab --help`;
/// the book's appendix `appendix-limits.md` has each with its test. The numbers are the
/// consts themselves.
pub(crate) fn limits_help() -> String {
    use super::primary::MAX_CALLBACKS;
    use super::round_robin_handle::MAX_UNDELIVERED;
    use super::worker::{MAX_EVENT_BYTES, MAX_EVENTS, PROBLEM_KINDS, PROBLEMS_SHOWN};
    use crate::channel::MAX_QUEUED;
    use crate::framing::MAX_LINE;
    use crate::sys::FDS_PER_READ;
    let (queued, line, events) = (MAX_QUEUED >> 20, MAX_LINE >> 20, MAX_EVENT_BYTES >> 20);
    [
        "Limits a worker cannot pass (any program may be a worker; Node has none of these):"
            .to_string(),
        format!(
            "  {queued} MiB queued for one worker, {line} MiB per line, {FDS_PER_READ} fds per \
             message: past them, it is dropped"
        ),
        "  an fd on a message that is not NODE_HANDLE: closed at once and reported".to_string(),
        format!("  {MAX_HANDLES_PER_WORKER} servers per worker: the next queryServer gets EMFILE"),
        format!(
            "  {MAX_UNDELIVERED} accepted connections waiting for a worker, per socket: the primary\n    \
             stops accepting until one is taken; the kernel's backlog holds the rest"
        ),
        format!(
            "  {PROBLEMS_SHOWN} problems told per kind, {PROBLEM_KINDS} kinds per worker; {MAX_EVENTS} \
             unread events ({events} MiB);\n    {MAX_CALLBACKS} unanswered newconns: the rest \
             are counted, dropped or refused"
        ),
        "See the book's \"Appendix: limits a worker cannot pass\" (book/src/appendix-limits.md)\n\
         for what happens past each one, and the test that proves it."
            .to_string(),
    ]
    .join("\n")
}

/// What the primary lets workers bind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BindPolicy {
    /// Any address and any port, not only loopback ports from 1024 up. Off unless the user
    /// asked for it (the lab's `--bind-any`, or a `--host`/`--port` beyond those).
    pub any: bool,
    /// The directories socket files may be made in (none: no socket files at all).
    pub pipe_dirs: Vec<PathBuf>,
}

/// What a worker may have the primary bind: an IP address, or a pipe's name (Node's
/// spelling: a path, or `\0name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Ip(IpAddr),
    Pipe(String),
}

/// Why a query was refused: the errno the worker gets, and a line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub errno: Errno,
    pub why: String,
}

// ANCHOR: check
/// The address to bind for `q`, or why not. `held` is how many handles the worker holds.
pub(crate) fn check(q: &ServerQuery, policy: &BindPolicy, held: usize) -> Result<IpAddr, Refusal> {
    let refuse = |errno, why: String| Err(Refusal { errno, why });
    if held >= MAX_HANDLES_PER_WORKER {
        let why = format!("holds {held} servers already, the most one worker may");
        return refuse(Errno::EMFILE, why);
    }
    let address = match q.address.as_deref() {
        // No host: Node binds every interface.
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(text) => match text.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return refuse(
                    Errno::EADDRNOTAVAIL,
                    format!("{text:?} is not an IP address"),
                );
            }
        },
    };
    if !policy.any && !address.is_loopback() {
        let why = format!("{address} is beyond loopback (lab --bind-any allows it)");
        return refuse(Errno::EACCES, why);
    }
    if !policy.any && q.port.number().is_some_and(|p| p != 0 && p < 1024) {
        let why = format!("port {} is privileged (lab --bind-any allows it)", q.port);
        return refuse(Errno::EACCES, why);
    }
    Ok(address)
}
// ANCHOR_END: check

// ANCHOR: check_pipe
/// Whether a pipe may be bound: `name` is what the primary would bind (Node's shortest
/// form, maybe relative, `\0` first for an abstract name), `absolute` the same place from
/// `/`. Returns the name to bind.
pub(crate) fn check_pipe(
    name: &str,
    absolute: &str,
    policy: &BindPolicy,
    held: usize,
) -> Result<String, Refusal> {
    let refuse = |errno, why: String| Err(Refusal { errno, why });
    if held >= MAX_HANDLES_PER_WORKER {
        let why = format!("holds {held} servers already, the most one worker may");
        return refuse(Errno::EMFILE, why);
    }
    if name.starts_with('\0') {
        return Ok(name.to_string()); // abstract: no file
    }
    if absolute.contains('\0') {
        return refuse(Errno::EINVAL, format!("{absolute:?} has a NUL byte inside"));
    }
    let path = Path::new(absolute);
    let inside = |dir: &PathBuf| {
        let parent = path.parent().and_then(|p| p.canonicalize().ok());
        let dir = dir.canonicalize().ok();
        parent.is_some() && parent == dir
    };
    if !policy.pipe_dirs.iter().any(inside) {
        let why = match policy.pipe_dirs.first() {
            Some(dir) => format!(
                "{absolute} is not in {} (lab --path sets it)",
                dir.display()
            ),
            None => format!("{absolute}: no socket files without lab --path"),
        };
        return refuse(Errno::EACCES, why);
    }
    Ok(name.to_string())
}
// ANCHOR_END: check_pipe

// ANCHOR: target
/// What the query asks the primary to bind, checked by [`guard`]. For a pipe, the name
/// is Node's: "Find shortest path for unix sockets because of the ~100 byte limit"
/// (`primary.js` L284–292 at v24.22.3).
pub(super) fn target(q: &ServerQuery, policy: &BindPolicy, held: usize) -> Result<Target, Refusal> {
    if q.address_type != AddressType::Pipe {
        return check(q, policy, held).map(Target::Ip);
    }
    let Some(address) = q.address.as_deref() else {
        let why = "asked for a pipe without a path".to_string();
        return Err(Refusal {
            errno: Errno::EINVAL,
            why,
        });
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let cwd = cwd.to_string_lossy();
    let name = path::shortest(address, &cwd);
    let absolute = path::resolve(&cwd, address);
    check_pipe(&name, &absolute, policy, held).map(Target::Pipe)
}
// ANCHOR_END: target

/// The address to bind: none when the worker gave no host (Node then tries `::`, then
/// `0.0.0.0`; the guard checked `::`).
pub(super) fn host(q: &ServerQuery, checked: std::net::IpAddr) -> Option<std::net::IpAddr> {
    q.address.as_ref().map(|_| checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::AddressType;

    fn query(address: Option<&str>, port: u16) -> ServerQuery {
        let address = address.map(str::to_string);
        ServerQuery::ip(address, port, AddressType::Tcp4, None, None)
    }

    #[test]
    fn loopback_is_fine_and_everything_else_needs_the_flag() {
        let strict = BindPolicy::default();
        let any = BindPolicy {
            any: true,
            ..BindPolicy::default()
        };
        assert!(check(&query(Some("127.0.0.1"), 8000), &strict, 0).is_ok());
        assert!(check(&query(Some("::1"), 0), &strict, 0).is_ok());
        for (q, errno) in [
            (query(Some("0.0.0.0"), 8000), Errno::EACCES),
            (query(None, 8000), Errno::EACCES),
            (query(Some("127.0.0.1"), 80), Errno::EACCES),
            (query(Some("/some/file.sock"), 8000), Errno::EADDRNOTAVAIL),
        ] {
            assert_eq!(
                check(&q, &strict, 0).map_err(|r| r.errno),
                Err(errno),
                "{q:?}"
            );
        }
        assert!(check(&query(None, 80), &any, 0).is_ok());
        assert!(
            check(&query(Some("/x"), 80), &any, 0).is_err(),
            "never widened to ::"
        );
    }

    #[test]
    fn a_worker_holds_a_bounded_number_of_handles() {
        let q = query(Some("127.0.0.1"), 0);
        let full = check(&q, &BindPolicy::default(), MAX_HANDLES_PER_WORKER);
        assert_eq!(full.map_err(|r| r.errno), Err(Errno::EMFILE));
    }

    #[test]
    fn socket_files_only_in_the_given_directory_and_abstract_names_anywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inside = dir.path().join("app.sock").display().to_string();
        let policy = BindPolicy {
            pipe_dirs: vec![dir.path().to_path_buf()],
            ..BindPolicy::default()
        };
        let name = check_pipe("app.sock", &inside, &policy, 0).expect("allowed");
        assert_eq!(name, "app.sock");
        let deeper = dir.path().join("sub/app.sock").display().to_string();
        let escape = dir.path().join("../app.sock").display().to_string();
        for (absolute, errno) in [
            ("/tmp/elsewhere.sock", Errno::EACCES),
            (deeper.as_str(), Errno::EACCES),
            (escape.as_str(), Errno::EACCES),
            ("/tmp/x\0y.sock", Errno::EINVAL),
        ] {
            let got = check_pipe(absolute, absolute, &policy, 0).map_err(|r| r.errno);
            assert_eq!(got, Err(errno), "{absolute}");
        }
        let none = BindPolicy::default();
        let got = check_pipe(&inside, &inside, &none, 0).map_err(|r| r.errno);
        assert_eq!(got, Err(Errno::EACCES), "no directory given: no files");
        let abs = check_pipe("\0name", "/w/\0name", &none, 0).expect("abstract");
        assert_eq!(abs, "\0name");
    }
}
