//! Chapter 10: Checking our work against Node. (Being written.)

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};

pub static CHAPTER: Chapter = Chapter {
    number: 10,
    slug: "against-node",
    title: "Checking our work against Node",
    intro: "(This chapter is being written.)",
    outro: "(This chapter is being written.)",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

fn run(_ctx: &Ctx) -> Result<(), ChapterError> {
    Ok(())
}
