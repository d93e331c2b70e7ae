//! Chapter 11: What each strategy costs. (Being written.)

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};

pub static CHAPTER: Chapter = Chapter {
    number: 11,
    slug: "cost",
    title: "What each strategy costs",
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
