//! `sessionlab`: parses the command line and runs it (see `sessionlab_lab::cli`).

fn main() -> std::process::ExitCode {
    sessionlab_lab::cli::main()
}
