//! `cluster-walkthrough`: the guided tour (the default), one chapter, the chapter list, the
//! book. Thin on purpose: it parses the command line and hands over to the library or to a
//! chapter program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use cluster_walkthrough::bench::servers::{self, ServerSpec};
use cluster_walkthrough::bench::{self, BenchArgs, Progress};
use cluster_walkthrough::chapter::{self, Chapter, Ctx, HelperRole};
use cluster_walkthrough::helper::{self, Capture, ThisProgram};
use cluster_walkthrough::{book, lab, trace};

/// The longest one chapter of the tour may take (the slowest takes a few seconds).
const CHAPTER_LIMIT: Duration = Duration::from_secs(120);

#[path = "../chapters/ch00_puzzle.rs"]
mod ch00;
#[path = "../chapters/ch01_listen_twice.rs"]
mod ch01;
#[path = "../chapters/ch02_listen_in_cluster.rs"]
mod ch02;
#[path = "../chapters/ch03_fork.rs"]
mod ch03;
#[path = "../chapters/ch04_query_server.rs"]
mod ch04;
#[path = "../chapters/ch05_round_robin.rs"]
mod ch05;
#[path = "../chapters/ch06_shared_handle.rs"]
mod ch06;
#[path = "../chapters/ch07_failures.rs"]
mod ch07;
#[path = "../chapters/ch08_complete_picture.rs"]
mod ch08;
#[path = "../chapters/ch09_beneath_node.rs"]
mod ch09;
#[path = "../chapters/ch10_against_node.rs"]
mod ch10;
#[path = "../chapters/ch11_cost.rs"]
mod ch11;
#[path = "../chapters/ch12_since_the_article.rs"]
mod ch12;

/// Every chapter, in reading order.
fn chapters() -> [&'static Chapter; 13] {
    [
        &ch00::CHAPTER,
        &ch01::CHAPTER,
        &ch02::CHAPTER,
        &ch03::CHAPTER,
        &ch04::CHAPTER,
        &ch05::CHAPTER,
        &ch06::CHAPTER,
        &ch07::CHAPTER,
        &ch08::CHAPTER,
        &ch09::CHAPTER,
        &ch10::CHAPTER,
        &ch11::CHAPTER,
        &ch12::CHAPTER,
    ]
}

#[derive(Debug, Parser)]
#[command(
    name = "cluster-walkthrough",
    version,
    about = "Why can many Node.js cluster workers listen() on one port? Run the answer."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run every chapter in order (the default)
    Tour {
        /// Port for the chapters' servers on 127.0.0.1 (default: a free one per chapter)
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// List the chapters and how to run each
    List,
    /// Run one chapter, by number or slug
    Chapter {
        /// A number (`1`) or a slug (`listen-twice`)
        which: String,
        /// Port for the chapter's servers on 127.0.0.1 (default: a free one)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Which Node's cluster code the mirror follows: 20 (the article's), 22, 24 or 26
        #[arg(long = "node", default_value_t = 24, value_parser = lab::parse_node_major)]
        node: u32,
        /// A helper role of the chapter (hidden: the chapter starts it itself)
        #[command(subcommand)]
        role: Option<HelperRole>,
    },
    /// A primary with N workers and every knob Node has
    Lab(lab::LabArgs),
    /// Measure what each strategy costs (build with --release)
    Bench(BenchArgs),
    /// Print a file of Node's lib/ as a given Node binary holds it, with line numbers
    NodeSource(cluster_walkthrough::node_source::NodeSourceArgs),
    /// Check an exercise you wrote: `check 1.1` (`check --list` shows them all)
    Check(cluster_walkthrough::check::CheckArgs),
    /// Build the HTML book and print the path of its index.html
    Book {
        /// Where to write the book (default: book/build)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A server under test of `bench` (hidden: `bench` starts it itself)
    #[command(hide = true)]
    BenchServer(ServerSpec),
}

fn main() -> ExitCode {
    // Started by cluster.fork()? Then this process is a worker, as in a Node cluster script.
    if let Some(code) = lab::worker_entry() {
        return code;
    }
    let cli = match chapter::parse_command_line::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if !matches!(
        cli.command,
        Some(Cmd::Lab(_) | Cmd::Bench(_) | Cmd::BenchServer(_))
    ) {
        trace::init(trace::Format::Text, true, false);
    }
    match cli.command.unwrap_or(Cmd::Tour { port: 0 }) {
        Cmd::Tour { port } => tour(port),
        Cmd::List => list(),
        Cmd::Chapter {
            which,
            port,
            node,
            role,
        } => match find(&which) {
            Some(ch) => run_chapter(ch, port, node, role),
            None => {
                eprintln!(
                    "error: no chapter {which:?}; `cluster-walkthrough list` shows the chapters"
                );
                ExitCode::from(2)
            }
        },
        Cmd::Book { out } => build_book(out),
        Cmd::Lab(args) => lab::main(&args),
        Cmd::Bench(args) => bench(&args),
        Cmd::BenchServer(spec) => servers::serve_role(&spec),
        Cmd::NodeSource(args) => cluster_walkthrough::node_source::main(&args),
        Cmd::Check(args) => cluster_walkthrough::check::main(&args),
    }
}

/// One chapter, or one of its helper roles. Its helpers are `cluster-walkthrough chapter N
/// <role>`: this program, with the words that lead back to the chapter.
fn run_chapter(ch: &Chapter, port: u16, node: u32, role: Option<HelperRole>) -> ExitCode {
    if let Some(role) = role {
        return chapter::run_role(ch, role);
    }
    let program = ThisProgram::new(["chapter".to_string(), ch.number.to_string()]);
    chapter::run_framed(
        ch,
        &Ctx {
            port,
            program,
            node,
        },
    )
}

fn find(which: &str) -> Option<&'static Chapter> {
    let n: Option<u8> = which.parse().ok();
    chapters()
        .into_iter()
        .find(|c| Some(c.number) == n || c.slug == which || c.bin_name() == which)
}

fn list() -> ExitCode {
    for ch in chapters() {
        println!(
            "{:>2}  {:<40} cargo run --bin {}",
            ch.number,
            ch.title,
            ch.bin_name()
        );
    }
    ExitCode::SUCCESS
}

/// Each chapter runs as its own process (`<this program> chapter N`), as a reader would run
/// it; a chapter that fails or hangs stops the tour with a clear line.
fn tour(port: u16) -> ExitCode {
    // Ctrl-C reaches the chapter and its workers too (one process group); we only wait for
    // them to go and say so in one line.
    cluster_walkthrough::sys::install_interrupt_handler();
    // A port of the user's that is taken fails here, once, not in every chapter.
    let program = ThisProgram::default();
    if let Err(e) = (Ctx {
        port,
        program,
        node: 24,
    })
    .pick_port()
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    trace::raw("The cluster walkthrough: why many Node.js workers can listen on one port.");
    for ch in chapters() {
        let number = ch.number.to_string();
        let port = port.to_string();
        let status = ThisProgram::default()
            .command(["chapter", &number, "--port", &port])
            .and_then(|mut cmd| helper::run(&mut cmd, Capture::Nothing, CHAPTER_LIMIT));
        if cluster_walkthrough::sys::interrupted() {
            eprintln!("tour interrupted");
            return ExitCode::from(130);
        }
        match status.map(|done| done.status) {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!(
                    "error: chapter {} ({}) failed ({s}); run it alone with `cargo run --bin {}`",
                    ch.number,
                    ch.title,
                    ch.bin_name()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: chapter {}: {e}", ch.number);
                return ExitCode::FAILURE;
            }
        }
    }
    trace::raw("");
    trace::raw("End of the tour. `cargo run -- book` builds the book that explains every line.");
    ExitCode::SUCCESS
}

/// `bench`, with a progress bar on stderr (which hides itself when stderr is not a terminal).
fn bench(args: &BenchArgs) -> ExitCode {
    let mut bar: Option<ProgressBar> = None;
    bench::main(args, &mut |p| show_progress(&mut bar, p))
}

fn show_progress(bar: &mut Option<ProgressBar>, progress: Progress) {
    match progress {
        Progress::Starting {
            done,
            total,
            workers,
            round,
            rounds,
            strategy,
        } => {
            let bar = bar.get_or_insert_with(|| progress_bar(total));
            bar.set_position(done);
            let label = strategy.label();
            bar.set_message(format!(
                "{workers} workers, round {round}/{rounds}: {label}"
            ));
        }
        Progress::Tracing {
            done,
            total,
            workers,
            strategy,
        } => {
            let bar = bar.get_or_insert_with(|| progress_bar(total));
            bar.set_length(total);
            bar.set_position(done);
            let label = strategy.label();
            bar.set_message(format!("{workers} workers, under strace: {label}"));
        }
        Progress::Finished => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
        }
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn build_book(out: Option<PathBuf>) -> ExitCode {
    let root = book::book_root();
    let out = out.unwrap_or_else(|| root.join("build"));
    match book::build(&root, &out) {
        Ok(index) => {
            println!("{}", index.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
