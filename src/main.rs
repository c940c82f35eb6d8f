//! The `faultline` binary: parse arguments, call the library, map the outcome to an
//! exit code. Everything else lives in the library.

fn main() {
    std::process::exit(faultline_cli::main());
}

#[path = "cli/mod.rs"]
mod faultline_cli;
