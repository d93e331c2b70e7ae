//! What the primary refuses a worker. Not in Node: Node trusts its workers, since they run
//! the same program. Ours may run anything (`lab --exec`), so a worker is untrusted input,
//! and a `queryServer` is a request to open a socket *in the primary*.
//!
//! Refusals are answered the way Node answers a bind that failed, with an errno from Node's
//! table, so a real Node worker shows an ordinary `'error'` event (`EACCES`, `EMFILE`,
//! `EADDRNOTAVAIL`), and the user gets one line saying what was refused and why.

use std::net::{IpAddr, Ipv6Addr};

use crate::sys::Errno;

use super::message::ServerQuery;

/// How many cluster handles one worker may hold at once. Node's own programs hold a few;
/// a flood of queries must not make the primary run out of file descriptors for everyone.
pub const MAX_HANDLES_PER_WORKER: usize = 64;

/// What the primary lets workers bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindPolicy {
    /// Any address and any port, not only loopback ports from 1024 up. Off unless the user
    /// asked for it (the lab's `--bind-any`, or a `--host`/`--port` beyond those).
    pub any: bool,
}

/// Why a query was refused: the errno the worker gets, and a line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub errno: Errno,
    pub why: String,
}

// ANCHOR: check
/// The address to bind for `q`, or why not. `held` is how many handles the worker holds.
pub fn check(q: &ServerQuery, policy: BindPolicy, held: usize) -> Result<IpAddr, Refusal> {
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
    if !policy.any && q.port != 0 && q.port < 1024 {
        let why = format!("port {} is privileged (lab --bind-any allows it)", q.port);
        return refuse(Errno::EACCES, why);
    }
    Ok(address)
}
// ANCHOR_END: check

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::AddressType;

    fn query(address: Option<&str>, port: u16) -> ServerQuery {
        ServerQuery {
            address: address.map(str::to_string),
            port,
            address_type: AddressType::Tcp4,
            fd: None,
            flags: 0,
            backlog: None,
        }
    }

    #[test]
    fn loopback_is_fine_and_everything_else_needs_the_flag() {
        let strict = BindPolicy::default();
        let any = BindPolicy { any: true };
        assert!(check(&query(Some("127.0.0.1"), 8000), strict, 0).is_ok());
        assert!(check(&query(Some("::1"), 0), strict, 0).is_ok());
        for (q, errno) in [
            (query(Some("0.0.0.0"), 8000), Errno::EACCES),
            (query(None, 8000), Errno::EACCES),
            (query(Some("127.0.0.1"), 80), Errno::EACCES),
            (query(Some("/some/file.sock"), 8000), Errno::EADDRNOTAVAIL),
        ] {
            assert_eq!(
                check(&q, strict, 0).map_err(|r| r.errno),
                Err(errno),
                "{q:?}"
            );
        }
        assert!(check(&query(None, 80), any, 0).is_ok());
        assert!(
            check(&query(Some("/x"), 80), any, 0).is_err(),
            "never widened to ::"
        );
    }

    #[test]
    fn a_worker_holds_a_bounded_number_of_handles() {
        let q = query(Some("127.0.0.1"), 0);
        let full = check(&q, BindPolicy::default(), MAX_HANDLES_PER_WORKER);
        assert_eq!(full.map_err(|r| r.errno), Err(Errno::EMFILE));
    }
}
