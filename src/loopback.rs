//! Where everything in this crate listens unless the user says otherwise: the loopback
//! address, and a port the kernel picks. Below `net`, `os_models` and `bench`, so none of
//! them needs the chapter framework for it.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

/// `127.0.0.1`: no program here binds beyond loopback unless asked to by a flag.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A port that is free on 127.0.0.1 right now: the kernel picks it for a listener that is
/// closed at once. (Another program may take it before we bind again; callers that can
/// bind port 0 themselves should.)
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((LOOPBACK, 0))?;
    Ok(l.local_addr()?.port())
}
