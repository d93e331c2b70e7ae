//! Chapter 8: The complete picture. (Being written.)

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};

pub static CHAPTER: Chapter = Chapter {
    number: 8,
    slug: "complete-picture",
    title: "The complete picture",
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
