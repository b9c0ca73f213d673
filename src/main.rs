//! The `hookgate` binary: parse the command line, start logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use hookgate::cli::commands::{Cli, run};
use hookgate::telemetry;

fn main() -> ExitCode {
    telemetry::init_logs();
    run(Cli::parse())
}
