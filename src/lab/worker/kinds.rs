//! The lab worker's servers other than TCP through the cluster: a path (unix socket) server
//! and a UDP socket.

use super::*;

impl LabWorker {
    /// `server.listen({ path, readableAll, writableAll, exclusive })`: as for a port, done
    /// here (`exclusive`) or a question for the primary.
    pub(super) fn listen_pipe(&mut self, i: usize, path: &str) -> Result<(), NetError> {
        let mut server = Server::new(&format!("server {}", i + 1));
        let mut opts = PipeOptions::new(path);
        opts.exclusive = self.plan.exclusive;
        opts.readable_all = self.plan.readable_all;
        opts.writable_all = self.plan.writable_all;
        opts.libuv = NodeLine::from_env().libuv();
        trace::step(&format!(
            "{}: listen({{ path: {path:?}{} }})",
            server.name,
            if opts.exclusive {
                ", exclusive: true"
            } else {
                ""
            }
        ));
        let step = server.listen_pipe(&opts);
        self.take_step(i, server, step)
    }

    /// `dgram.createSocket('udp4').bind(port, host)`: UDP always goes through the primary
    /// (unless exclusive), and always gets the shared socket.
    pub(super) fn bind_udp(&mut self, i: usize) -> Result<(), NetError> {
        let host = self.plan.host;
        let port = self.plan.port;
        trace::step(&format!(
            "socket {}: bind({{ port: {port}, address: '{host}', exclusive: {} }})",
            i + 1,
            self.plan.exclusive
        ));
        if self.plan.exclusive {
            let bound = sys::socket(host, Transport::Udp)
                .and_then(|fd| sys::bind(fd.as_fd(), SocketAddr::new(host, port)).map(|_| fd));
            let (slot, result) = match bound {
                Ok(fd) => (Slot::Udp(Some(fd)), Ok(())),
                Err(e) => (
                    Slot::Udp(None),
                    Err(NetError::plain("bind", e, Some(&host.to_string()), port)),
                ),
            };
            self.slots.push(slot);
            return result;
        }
        let address = Some(host.to_string());
        let q = net::ServerQuery::ip(address, port, AddressType::udp_for(host), Some(-1), None);
        self.pending += 1;
        if let Some(rt) = self.rt.as_mut() {
            rt.get_server(i, &q);
        }
        self.slots.push(Slot::Udp(None));
        Ok(())
    }

    /// The primary's answer for a pipe, through `listenOnPrimaryHandle`: the fake handle
    /// (round robin) or the primary's bound `Pipe` (`SCHED_NONE`).
    pub(super) fn on_pipe_server(
        &mut self,
        slot: usize,
        key: &str,
        path: &str,
        result: Result<GotHandle, Errno>,
    ) -> Result<(), NetError> {
        let (errno, handle) = match result {
            Err(e) => (Some(e), None),
            Ok(GotHandle::RoundRobin { key, sockname }) => {
                let shown = crate::cluster::utils::printable(&key);
                trace::step(&format!(
                    "rr(): a fake handle for {shown} (no socket in this process)"
                ));
                (
                    None,
                    Some(ServerHandle::RoundRobin(net::FakeHandle { key, sockname })),
                )
            }
            Ok(GotHandle::Shared(fd)) => {
                let raw = fd.as_raw_fd();
                trace::step(&format!("shared(): the primary's pipe arrived as fd {raw}"));
                (None, Some(ServerHandle::Pipe(PipeHandle::open(fd))))
            }
        };
        let Some(Slot::Tcp(server)) = self.slots.get_mut(slot) else {
            return Ok(());
        };
        net::listen_pipe_on_primary_handle(server, errno, handle, path, 0)?;
        trace::ok(&format!(
            "{} listening on {}",
            server.name,
            net::Address::Pipe(path.into())
        ));
        if let Some(rt) = self.rt.as_mut() {
            rt.send_listening(key, Port::Pipe);
        }
        self.listen_next()
    }

    pub(super) fn on_udp_socket(
        &mut self,
        slot: usize,
        key: &str,
        fd: OwnedFd,
    ) -> Result<(), NetError> {
        let host = self.plan.host;
        trace::step(&format!(
            "shared(): the primary's UDP socket arrived as fd {}",
            fd.as_raw_fd()
        ));
        let _ = sys::set_reuseaddr(fd.as_fd());
        let port = sys::getsockname(fd.as_fd()).map(|a| a.port()).unwrap_or(0);
        trace::ok(&format!(
            "socket {} bound to {}",
            slot + 1,
            SocketAddr::new(host, port)
        ));
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot::Udp(Some(fd));
        }
        if let Some(rt) = self.rt.as_mut() {
            rt.send_listening(key, Port::Number(port));
        }
        self.listen_next()
    }
}
