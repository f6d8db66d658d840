//! The `yizhan` binary: parse the command line, run it, map errors to an
//! exit code. Everything else is in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = yizhan::cli::parse();
    let json = cli.json;
    match yizhan::cli::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            yizhan::cli::report(&e, json);
            ExitCode::FAILURE
        }
    }
}
