//! `authsession`: the operator's command line for device sessions
//! (SPEC §8). Every command prints JSON on stdout; any error exits non-zero
//! with its message and stable kind on stderr.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
