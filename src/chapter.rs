//! What every chapter program shares: its command line, its frame (heading, a few
//! sentences on what is about to happen, the live trace, one line on what it showed), and the
//! plumbing to start a second copy of itself in another role.
//!
//! A chapter is a `static` [`Chapter`]; its `chapters/chNN_*.rs` file defines it and its
//! `main` is one call to [`main`]. The tour (`cluster-walkthrough`) runs each chapter as its
//! own process, exactly as a reader would with `cargo run --bin chNN-...`.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

use clap::Parser;

use crate::helper::{self, Capture, HelperError};
use crate::trace;

/// Loopback: where every server in this project binds unless the user says otherwise.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The variable that tells a re-executed chapter program which helper role to play
/// (`second:PORT` for chapter 1's second process, for example).
pub const ROLE_ENV: &str = "CLUSTER_WALKTHROUGH_ROLE";

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
    /// A helper role the program can be re-executed into (see [`Ctx::spawn_role`]).
    pub role: Option<fn(&str) -> ExitCode>,
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
    #[error(
        "port {port} on {host} is already in use by another program; choose another with --port, or leave --port out to use a free one"
    )]
    PortInUse { host: IpAddr, port: u16 },
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

impl ChapterError {
    /// An I/O failure with what we were doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ChapterError::Io {
            what: what.into(),
            source,
        }
    }
}

/// What a chapter's `run` gets: the user's choices.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The port the user asked for, or 0 for "pick a free one".
    pub port: u16,
}

impl Ctx {
    /// The port to use: the user's, checked to be free, or a fresh ephemeral one.
    pub fn pick_port(&self) -> Result<u16, ChapterError> {
        if self.port != 0 {
            return match TcpListener::bind((LOOPBACK, self.port)) {
                Ok(_) => Ok(self.port),
                Err(_) => Err(ChapterError::PortInUse {
                    host: LOOPBACK,
                    port: self.port,
                }),
            };
        }
        free_port()
    }

    /// Start a second copy of this very program in another role, its output going to the
    /// same place as ours, and wait for it (at most `limit`). Returns its exit status.
    pub fn spawn_role(&self, role: &str, limit: Duration) -> Result<ExitStatus, ChapterError> {
        let mut cmd = role_command(role)?;
        let done = helper::run(&mut cmd, Capture::Nothing, limit)?;
        Ok(done.status)
    }

    /// Like [`Ctx::spawn_role`], but the helper's standard output is captured and returned
    /// (it is not shown). Fails if the helper exits non-zero or outlives `limit`.
    pub fn capture_role(&self, role: &str, limit: Duration) -> Result<String, ChapterError> {
        let mut cmd = role_command(role)?;
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

/// This program again, with our arguments, in `role`, printing the way we print.
fn role_command(role: &str) -> Result<Command, ChapterError> {
    let mut cmd = helper::this_program(std::env::args_os().skip(1))?;
    cmd.env(ROLE_ENV, role).env(trace::ENV, trace::to_env());
    Ok(cmd)
}

/// A free ephemeral port on 127.0.0.1 (the kernel picks; we close it at once).
pub fn free_port() -> Result<u16, ChapterError> {
    let l =
        TcpListener::bind((LOOPBACK, 0)).map_err(|e| ChapterError::io("find a free port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| ChapterError::io("find a free port", e))?
        .port();
    Ok(port)
}

/// The command line every chapter program takes.
#[derive(Debug, Parser)]
#[command(about = "Run one chapter of the cluster walkthrough")]
pub struct ChapterArgs {
    /// Port for the chapter's servers on 127.0.0.1 (default: a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// A chapter program's whole `main`: helper roles first, then the framed experiment.
pub fn main(ch: &Chapter) -> ExitCode {
    // Started by cluster.fork()? Then be the worker, as a Node cluster script would.
    if let Some(code) = crate::lab::worker_entry() {
        return code;
    }
    if let Ok(role) = std::env::var(ROLE_ENV) {
        trace::init_from_env();
        return match ch.role {
            Some(f) => f(&role),
            None => {
                eprintln!("error: {} has no role {role:?}", ch.bin_name());
                ExitCode::from(2)
            }
        };
    }
    let args = ChapterArgs::parse();
    trace::init(trace::Format::Text, true, false);
    run_framed(ch, &Ctx { port: args.port })
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
