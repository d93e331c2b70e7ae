//! # cluster-walkthrough
//!
//! Why can many Node.js cluster workers all `listen()` on one port without `EADDRINUSE`?
//! This crate answers by re-building Node's machinery in Rust, file for file, with real
//! processes, real sockets and real fd passing. Module names follow Node's files so the two
//! can be read side by side:
//!
//! | here | Node v24.22.3 |
//! |---|---|
//! | [`net`] | `lib/net.js` |
//! | `errors` | `lib/internal/errors.js` |
//! | `tcp_wrap` | `src/tcp_wrap.cc` + libuv `src/unix/tcp.c` |
//! | `pipe_wrap` | `src/pipe_wrap.cc` + libuv `src/unix/pipe.c` |
//! | [`cluster`] | `lib/cluster.js`, `lib/internal/cluster/*` |
//! | [`sys`] | the syscalls libuv makes |

#![warn(unreachable_pub)]

pub mod bench;
pub mod book;
pub mod channel;
pub mod chapter;
pub mod check;
pub mod cluster;
pub(crate) mod errors;
pub mod framing;
pub mod helper;
pub mod http;
pub mod lab;
pub mod loopback;
pub mod net;
pub mod node_source;
pub mod os_models;
pub mod picture;
pub(crate) mod pipe_wrap;
pub mod strace;
pub mod sys;
pub(crate) mod tcp_wrap;
pub mod trace;
