//! The referee: run a program under `strace -f`, read what it wrote, and count who made which
//! socket call. Chapter 10 and `tests/strace_compare.rs` use it to put real Node (20, 22, 24, 26) and our
//! mirror side by side, scenario by scenario (see [`scenarios()`]).
//!
//! Nothing here mirrors Node. The reading is pure (text in, counts out) and unit-tested on
//! strace's own lines; one module per step:
//!
//! - `parse.rs`: strace's lines into [`Call`]s ([`parse()`]);
//! - `processes.rs`: who is a thread of whom, and which [`Side`] each process is on;
//! - `counts.rs`: per side, how often each [`CallKind`] happened ([`summarize`] gives the
//!   [`CallCounts`]);
//! - `table.rs`: Node's counts next to ours ([`table()`]);
//! - `listening.rs`: one TCP socket's `socket`, `setsockopt`, `bind` and `listen`, as our
//!   trace writes them ([`listen_calls`]), for chapter 1;
//! - `run.rs`: the one part that starts processes: strace, as a helper ([`run()`]);
//! - `scenarios.rs`: what chapter 10 runs both ways ([`scenarios()`]).
//!
//! How strace's output is read:
//! - With `-f` each line starts with the *thread* id: `1234 bind(...)` when it writes to a file
//!   (`-o`), `[pid 1234] bind(...)` on stderr, and nothing at all for the first process while it
//!   is alone.
//! - A Node process has several threads. A `clone`/`clone3` whose flags hold `CLONE_THREAD`
//!   makes a thread of the caller's process; one without it makes a new process; `execve` says
//!   which program a process runs.
//! - A call cut off by another thread's line comes in two halves, `... <unfinished ...>` and
//!   `<... name resumed> ...`; [`parse`] joins them.
//!
//! Sides: the first process is the **primary**; a process it forked that then ran a program
//! (`execve`) is a **worker**; anything else is ignored. The workers are counted together,
//! because under SCHED_NONE and UDP which worker gets a connection is the kernel's choice.
//!
//! Both primaries are also the *client* (the lab's client lives in the primary process, and the
//! Node scripts make their requests from the primary too). A socket that the process itself
//! created and then used to `connect` or to send a datagram to an address is a client socket:
//! its calls are left out of the listening-side rows and counted on a row of their own.

mod counts;
#[cfg(test)]
mod fixtures;
mod listening;
mod parse;
mod processes;
mod run;
mod scenarios;
mod table;

pub use counts::{CallCounts, CallKind, summarize};
pub use listening::{SocketCall, bind_failed_alone, listen_calls, short_addresses};
pub use parse::{Call, parse};
pub use processes::{Processes, Side, processes};
pub(crate) use run::wrap;
pub use run::{RunError, SYSCALLS, Traced, missing_strace, missing_tools, quiet_port, run};
pub use scenarios::{Scenario, scenarios};
pub use table::{count_differences, flavour_differences, table};
