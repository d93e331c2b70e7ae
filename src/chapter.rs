//! What every chapter program shares: its command line, its frame (heading, a few
//! sentences on what is about to happen, the live trace, one line on what it showed), and the
//! plumbing to start a second copy of itself in another role.
//!
//! A chapter is a `static` [`Chapter`]; its `chapters/chNN_*.rs` file defines it and its
//! `main` is one call to [`main`]. The tour (`cluster-walkthrough`) runs each chapter as its
//! own process, exactly as a reader would with `cargo run --bin chNN-...`.
//!
//! A helper role is a hidden subcommand ([`HelperRole`]), parsed by clap like any other:
//! `ch01-listen-twice second-process --port 8000`, or `cluster-walkthrough chapter 1
//! second-process --port 8000` when the chapter runs inside the tour's program.

use std::ffi::OsStr;
use std::net::{IpAddr, TcpListener};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

use clap::Parser;

use crate::bench::servers::ServerSpec;
use crate::helper::{self, Capture, HelperError, ThisProgram};
use crate::lab::LabArgs;
use crate::loopback::{LOOPBACK, free_port};
use crate::sys::Errno;
use crate::trace;

/// A chapter: its number, names, frame text and the experiment itself.
pub struct Chapter {
    pub number: u8,
    /// The slug in `chNN-slug`, the binary's name and the book page's name.
    pub slug: &'static str,
    pub title: &'static str,
    /// Two or three sentences on what is about to happen.
    pub intro: &'static str,
    /// One line on what the run showed.
    pub outro: &'static str,
    /// The experiment.
    pub run: fn(&Ctx) -> Result<(), ChapterError>,
    /// The helper roles the program can be started in (see [`Ctx::spawn_role`]); any other
    /// goes to [`unknown_role`].
    pub role: Option<fn(HelperRole) -> ExitCode>,
}

impl Chapter {
    /// The binary's name: `ch01-listen-twice`.
    pub fn bin_name(&self) -> String {
        format!("ch{:02}-{}", self.number, self.slug)
    }
}

/// Why a chapter could not tell its story.
#[derive(Debug, thiserror::Error)]
pub enum ChapterError {
    /// The port the user asked for cannot be bound: the call that failed and its errno say
    /// why (`port_unusable` turns them into words).
    #[error("{}", port_unusable(*.host, *.port, .syscall, *.errno))]
    PortUnusable {
        host: IpAddr,
        port: u16,
        syscall: &'static str,
        errno: Errno,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Helper(#[from] HelperError),
}

/// Why `host:port` cannot be used, in words: `EADDRINUSE` is another program, `EACCES` is
/// permission (ports below 1024 need root or `CAP_NET_BIND_SERVICE`), anything else is the
/// call and its errno as the kernel gave them.
fn port_unusable(host: IpAddr, port: u16, syscall: &str, errno: Errno) -> String {
    let instead = "choose another with --port, or leave --port out to use a free one";
    match errno {
        Errno::EADDRINUSE => {
            format!("port {port} on {host} is already in use by another program; {instead}")
        }
        Errno::EACCES if port < 1024 => format!(
            "port {port} on {host} needs a permission this user lacks ({syscall} EACCES): \
             ports below 1024 need root or CAP_NET_BIND_SERVICE; {instead}"
        ),
        Errno::EACCES => format!(
            "port {port} on {host} needs a permission this user lacks ({syscall} EACCES): \
             a security policy forbids it here; {instead}"
        ),
        _ => format!("port {port} on {host} cannot be used: {syscall} {errno}; {instead}"),
    }
}

impl ChapterError {
    /// `syscall` failed with `errno` on the port the user asked for.
    pub fn port(host: IpAddr, port: u16, syscall: &'static str, errno: Errno) -> Self {
        ChapterError::PortUnusable {
            host,
            port,
            syscall,
            errno,
        }
    }

    /// An I/O failure with what we were doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ChapterError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The helper roles of the chapter programs: hidden subcommands, each a helper that a chapter
/// starts with [`Ctx::spawn_role`] or [`Ctx::capture_role`] (or hands to strace).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HelperRole {
    /// Chapter 1's process B: listen on the port process A holds
    #[command(hide = true)]
    SecondProcess {
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// Chapter 8's helper: a lab run that prints its events and summary as JSON
    #[command(hide = true)]
    LabEvents(LabArgs),
    /// Chapter 10's side under strace: what `cluster-walkthrough lab` does
    #[command(hide = true)]
    Lab(LabArgs),
    /// Chapter 11's servers under test
    #[command(hide = true)]
    BenchServer(ServerSpec),
}

impl HelperRole {
    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            HelperRole::SecondProcess { .. } => "second-process",
            HelperRole::LabEvents(_) => "lab-events",
            HelperRole::Lab(_) => "lab",
            HelperRole::BenchServer(_) => "bench-server",
        }
    }
}

/// For a chapter's `role`: a role that belongs to another chapter. One line, exit code 2.
pub fn unknown_role(ch: &Chapter, role: &HelperRole) -> ExitCode {
    eprintln!(
        "error: {} has no helper role {}",
        ch.bin_name(),
        role.name()
    );
    ExitCode::from(2)
}

/// What a chapter's `run` gets: the user's choices, and how to start a copy of itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The port the user asked for, or 0 for "pick a free one".
    pub port: u16,
    /// This chapter's program, for helper roles.
    pub program: ThisProgram,
    /// Which Node's cluster code the mirror follows (`--node`; 24 unless asked).
    pub node: u32,
}

impl Ctx {
    /// Run the lab with `args`, following the Node this chapter was asked to follow.
    pub fn lab(&self, args: &crate::lab::LabArgs) -> Result<crate::lab::Outcome, ChapterError> {
        let args = crate::lab::LabArgs {
            node: self.node,
            ..args.clone()
        };
        lab(&args)
    }

    /// The port to use: the user's, checked to be free, or a fresh ephemeral one.
    pub fn pick_port(&self) -> Result<u16, ChapterError> {
        if self.port != 0 {
            return match TcpListener::bind((LOOPBACK, self.port)) {
                Ok(_) => Ok(self.port),
                Err(e) => {
                    let errno = e
                        .raw_os_error()
                        .map_or(Errno::UnknownErrno, Errno::from_raw);
                    Err(ChapterError::port(LOOPBACK, self.port, "bind", errno))
                }
            };
        }
        free_port().map_err(|e| ChapterError::io("find a free port", e))
    }

    /// This program again in a helper role (`role`: the hidden subcommand and its arguments),
    /// printing the way we print.
    pub fn role_command<I, S>(&self, role: I) -> Result<Command, ChapterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.program.command(role)?;
        cmd.env(trace::ENV, trace::to_env());
        Ok(cmd)
    }

    /// Start a second copy of this very program in a helper role, its output going to the
    /// same place as ours, and wait for it (at most `limit`). Returns its exit status.
    pub fn spawn_role(&self, role: &[&str], limit: Duration) -> Result<ExitStatus, ChapterError> {
        let mut cmd = self.role_command(role)?;
        let done = helper::run(&mut cmd, Capture::Nothing, limit)?;
        Ok(done.status)
    }

    /// Like [`Ctx::spawn_role`], but the helper's standard output is captured and returned
    /// (it is not shown). Fails if the helper exits non-zero or outlives `limit`.
    pub fn capture_role(&self, role: &[&str], limit: Duration) -> Result<String, ChapterError> {
        let mut cmd = self.role_command(role)?;
        let done = helper::run(&mut cmd, Capture::Stdout, limit)?;
        if !done.status.success() {
            return Err(ChapterError::Failed(format!(
                "a helper process failed ({})",
                done.status
            )));
        }
        Ok(done.stdout)
    }
}

/// The command line every chapter program takes.
#[derive(Debug, Parser)]
#[command(about = "Run one chapter of the cluster walkthrough")]
pub struct ChapterArgs {
    /// Port for the chapter's servers on 127.0.0.1 (default: a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Which Node's cluster code the mirror follows: 20 (the article's), 22, 24 or 26
    #[arg(long = "node", default_value_t = 24, value_parser = crate::lab::parse_node_major)]
    pub node: u32,
    #[command(subcommand)]
    pub role: Option<HelperRole>,
}

/// A chapter program's whole `main`: a worker or a helper role first, else the framed
/// experiment.
pub fn main(ch: &Chapter) -> ExitCode {
    // Started by cluster.fork()? Then be the worker, as a Node cluster script would.
    if let Some(code) = crate::lab::worker_entry() {
        return code;
    }
    let args = match parse_command_line::<ChapterArgs>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if let Some(role) = args.role {
        return run_role(ch, role);
    }
    trace::init(trace::Format::Text, true, false);
    run_framed(
        ch,
        &Ctx {
            port: args.port,
            program: ThisProgram::default(),
            node: args.node,
        },
    )
}

/// Parse this program's command line with clap. A usage error (a number out of range, two
/// flags that need each other) is one line on stderr and exit code 2; help and version print
/// as clap prints them.
pub fn parse_command_line<P: Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        if e.use_stderr() {
            eprintln!("{}", one_line(&e));
        } else {
            let _ = e.print();
        }
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    })
}

/// clap's message on one line: `error: ...` and the details it puts on the lines below,
/// without the tips, the usage and the pointer to `--help` that follow.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let details = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"));
    details.collect::<Vec<_>>().join(" ")
}

/// Play a helper role of `ch`, printing the way the chapter that started us prints.
pub fn run_role(ch: &Chapter, role: HelperRole) -> ExitCode {
    trace::init_from_env();
    match ch.role {
        Some(play) => play(role),
        None => unknown_role(ch, &role),
    }
}

/// Heading, intro, experiment, outro; errors as one line and a non-zero exit.
pub fn run_framed(ch: &Chapter, ctx: &Ctx) -> ExitCode {
    trace::heading(&format!("Chapter {} · {}", ch.number, ch.title));
    trace::raw(ch.intro);
    trace::raw("");
    match (ch.run)(ctx) {
        Ok(()) => {
            trace::raw("");
            trace::raw(&format!("=> {}", ch.outro));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one lab experiment inside a chapter and print its summary.
pub fn lab(args: &crate::lab::LabArgs) -> Result<crate::lab::Outcome, ChapterError> {
    let out = crate::lab::run(args).map_err(|e| ChapterError::Failed(e.to_string()))?;
    crate::lab::print_summary(&out);
    trace::set_label("primary");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(errno: Errno) -> String {
        ChapterError::port(LOOPBACK, 80, "bind", errno).to_string()
    }

    #[test]
    fn a_port_in_use_says_in_use() {
        assert_eq!(
            message(Errno::EADDRINUSE),
            "port 80 on 127.0.0.1 is already in use by another program; choose another with \
             --port, or leave --port out to use a free one"
        );
    }

    #[test]
    fn a_port_refused_for_permission_says_permission() {
        let m = message(Errno::EACCES);
        assert!(m.starts_with("port 80 on 127.0.0.1 needs a permission this user lacks (bind EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE;"), "{m}");
        assert!(!m.contains("in use"), "{m}");
    }

    #[test]
    fn any_other_errno_is_named_with_its_call() {
        let m = message(Errno::EADDRNOTAVAIL);
        assert!(
            m.starts_with(
                "port 80 on 127.0.0.1 cannot be used: bind EADDRNOTAVAIL: Cannot assign requested address;"
            ),
            "{m}"
        );
        let e = ChapterError::port(LOOPBACK, 80, "bind", Errno::EACCES);
        assert!(matches!(
            e,
            ChapterError::PortUnusable {
                syscall: "bind",
                errno: Errno::EACCES,
                ..
            }
        ));
    }
}
