//! `cluster-walkthrough bench`: what each way of sharing a port costs. (Being written.)

use std::process::ExitCode;

/// `cluster-walkthrough bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A short run (under 20 seconds)
    #[arg(long)]
    pub quick: bool,
    /// One JSON object with every measurement
    #[arg(long)]
    pub json: bool,
}

/// The whole command.
pub fn main(_args: &BenchArgs) -> ExitCode {
    eprintln!("error: the benchmark is not written yet");
    ExitCode::FAILURE
}
