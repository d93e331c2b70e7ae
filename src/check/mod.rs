//! `check <ch>.<n>`: run what the reader wrote for an exercise and say whether it works, the
//! rustlings way. One line on stdout, `pass: ...` or `fail: <what was expected>; <what was
//! seen>`, and the exit code to match: 0 pass, 1 fail, 2 no such exercise, 3 skipped (a
//! tool the exercise needs, such as `strace` or a recent Node, is missing: the line says
//! `skipped: ...`).
//!
//! The reader's files are under `exercises/chNN/`, each with a `TODO`: a Node script, or
//! (7.2) a line of flags for our lab and a prediction of what it prints. The solutions, which
//! the book shows folded, are the same paths under `exercises/solutions/`. `--file` checks
//! another file in place of the reader's (the tests check the starters and the solutions
//! that way). Every check runs the file under a deadline, on 127.0.0.1 and ephemeral
//! ports, and leaves nothing running (see `run`). One module per chapter holds its checks.
//!
//! Nothing here mirrors Node: this is the workshop's referee.

mod ch01;
mod ch02;
mod ch03;
mod ch04;
mod ch05;
mod ch06;
mod ch07;
mod ch08;
mod ch09;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `check` on the command line.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The exercise, chapter and number: `1.1`, `5.1`
    #[arg(required_unless_present = "list")]
    pub exercise: Option<String>,
    /// List the exercises and the file of each
    #[arg(long, conflicts_with_all = ["exercise", "file"])]
    pub list: bool,
    /// Check this file instead of the exercise's own (e.g. its solution)
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// One exercise: what the reader writes, and how we tell that it works.
#[derive(Debug)]
pub struct Exercise {
    /// `1.1`: chapter, then number in the chapter's list of exercises people write.
    pub id: &'static str,
    /// One line: what the reader makes.
    pub title: &'static str,
    /// The reader's file, under `exercises/`. Its solution has the same path under
    /// `exercises/solutions/`.
    pub file: &'static str,
    /// Run `file` (the reader's, or another) and judge it.
    check: fn(&Path) -> Checked,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// Not checked here: a tool it needs is missing (the text says which).
    Skipped(String),
}

impl Verdict {
    /// Its one line (more for a failure that shows what the program printed).
    pub fn line(&self) -> String {
        match self {
            Verdict::Pass(s) => format!("pass: {s}"),
            Verdict::Fail(s) => format!("fail: {s}"),
            Verdict::Skipped(s) => format!("skipped: {s}"),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Pass(_) => 0,
            Verdict::Fail(_) => 1,
            Verdict::Skipped(_) => 3,
        }
    }
}

/// What one check returns: `Ok` with what passed, or why not. `?` passes a failure (or a
/// skip) on.
type Checked = Result<String, Verdict>;

/// A failure, as a [`Checked`].
fn fail(why: impl Into<String>) -> Checked {
    Err(Verdict::Fail(why.into()))
}

/// Every exercise, in the book's order.
pub const EXERCISES: &[Exercise] = &[
    Exercise {
        id: "1.1",
        title: "Listen twice on one port in one process; print the error's code and syscall",
        file: "ch01/1_listen_twice.js",
        check: ch01::listen_twice,
    },
    Exercise {
        id: "2.1",
        title: "Two workers with `exclusive: true` on one port: each tells the primary how it went",
        file: "ch02/1_exclusive.js",
        check: ch02::exclusive,
    },
    Exercise {
        id: "2.2",
        title: "Make a child of child_process.fork() believe it is cluster worker 1",
        file: "ch02/2_fake_worker.js",
        check: ch02::fake_worker,
    },
    Exercise {
        id: "3.1",
        title: "List a worker's sockets before and after it listens (/proc/self/fd)",
        file: "ch03/1_worker_fds.js",
        check: ch03::worker_fds,
    },
    Exercise {
        id: "4.1",
        title: "Two servers on port 0 in each worker, under our lab: which ports are shared?",
        file: "ch04/1_two_servers.js",
        check: ch04::two_servers,
    },
    Exercise {
        id: "5.1",
        title: "A cluster primary that makes six requests and prints who answered each",
        file: "ch05/1_rotation.js",
        check: ch05::rotation,
    },
    Exercise {
        id: "6.1",
        title: "Switch a cluster script to SCHED_NONE from inside; strace shows who listens",
        file: "ch06/1_sched_none.js",
        check: ch06::sched_none,
    },
    Exercise {
        id: "7.1",
        title: "Handle 'error' so that workers stay up when the port is taken",
        file: "ch07/1_survive.js",
        check: ch07::survive,
    },
    Exercise {
        id: "7.2",
        title: "Flags for our lab: kill worker 2 after 5 connections; predict the rotation",
        file: "ch07/2_lose_a_worker.txt",
        check: ch07::lose_a_worker,
    },
    Exercise {
        id: "8.1",
        title: "Read the lab's wire log: count Node's messages, follow each newconn",
        file: "ch08/1_wire_log.js",
        check: ch08::wire_log,
    },
    Exercise {
        id: "9.1",
        title: "Two plain processes on one port with reusePort (SO_REUSEPORT)",
        file: "ch09/1_reuse_port.js",
        check: ch09::reuse_port,
    },
];

impl Exercise {
    /// The reader's file.
    pub fn starter(&self) -> PathBuf {
        exercises_dir().join(self.file)
    }

    /// The solution the book shows.
    pub fn solution(&self) -> PathBuf {
        exercises_dir().join("solutions").join(self.file)
    }

    /// Run `file` as this exercise's answer and judge it.
    pub fn check(&self, file: &Path) -> Verdict {
        match (self.check)(file) {
            Ok(passed) => Verdict::Pass(passed),
            Err(verdict) => verdict,
        }
    }
}

/// `exercises/` in this crate.
pub fn exercises_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("exercises")
}

/// The exercise with this id (`1.1`).
pub fn find(id: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.id == id)
}

/// A file as the reader would type it: relative to the crate's root when it is inside.
fn typed(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// `check`: list the exercises, or check one.
pub fn main(args: &CheckArgs) -> ExitCode {
    if args.list {
        for e in EXERCISES {
            println!(
                "{:<4} {:<34} {}",
                e.id,
                format!("exercises/{}", e.file),
                e.title
            );
        }
        return ExitCode::SUCCESS;
    }
    let id = args.exercise.as_deref().unwrap_or_default();
    let Some(exercise) = find(id) else {
        eprintln!("error: no exercise {id:?}; `cluster-walkthrough check --list` shows them");
        return ExitCode::from(2);
    };
    let file = args.file.clone().unwrap_or_else(|| exercise.starter());
    if !file.is_file() {
        eprintln!("error: {} is not a file", file.display());
        return ExitCode::from(2);
    }
    // Absolute, so that the checks may run it from any directory.
    let file = std::path::absolute(&file).unwrap_or(file);
    eprintln!("checking {}: {}", exercise.id, typed(&file));
    let verdict = exercise.check(&file);
    println!("{}", verdict.line());
    ExitCode::from(verdict.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exercise_has_a_starter_with_a_todo_and_a_solution_without() {
        for e in EXERCISES {
            let starter = std::fs::read_to_string(e.starter()).expect("the starter");
            let solution = std::fs::read_to_string(e.solution()).expect("the solution");
            assert!(starter.contains("TODO"), "{} has no TODO", e.file);
            assert!(
                !solution.contains("TODO"),
                "the solution of {} has a TODO",
                e.file
            );
            let chapter = e.id.split('.').next().expect("a chapter");
            assert!(
                e.file.starts_with(&format!("ch{chapter:0>2}/")),
                "{}",
                e.file
            );
        }
    }

    /// Workshop rule: nothing an exercise starts listens beyond loopback.
    #[test]
    fn every_exercise_that_listens_binds_127_0_0_1() {
        for e in EXERCISES {
            for file in [e.starter(), e.solution()] {
                let text = std::fs::read_to_string(&file).expect("the file");
                let listens = text.matches(".listen(").count();
                let on_host = text.matches(", HOST").count() + text.matches("host: HOST").count();
                assert!(
                    listens == 0
                        || text.contains("const HOST = '127.0.0.1';") && on_host >= listens,
                    "{}: every listen() should name HOST, which is 127.0.0.1",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn every_chapter_from_1_to_9_has_an_exercise() {
        for ch in 1..=9 {
            assert!(
                EXERCISES
                    .iter()
                    .any(|e| e.id.starts_with(&format!("{ch}."))),
                "chapter {ch}"
            );
        }
    }
}
