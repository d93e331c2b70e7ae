//! Chapter 9: Beneath Node: three ways to share a port. (Being written.)

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};

pub static CHAPTER: Chapter = Chapter {
    number: 9,
    slug: "beneath-node",
    title: "Beneath Node: three ways to share a port",
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
