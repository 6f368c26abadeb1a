use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    grab::cli::execute(grab::cli::Cli::parse())
}
