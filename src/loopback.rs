//! Where this project's servers live: the loopback address, and free ports on it. Shared by
//! every layer that starts a server (the models of chapter 9, the benchmark, the chapters), so
//! it sits below them all and imports nothing of ours.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

/// Loopback: where every server in this project binds unless the user says otherwise.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A free ephemeral port on 127.0.0.1: the kernel picks one, and we close it at once. Another
/// program may take it before we bind it again; every caller binds within moments.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((LOOPBACK, 0))?;
    Ok(listener.local_addr()?.port())
}
