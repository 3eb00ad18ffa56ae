//! `sessionlab`: parses the command line and runs it (see `sessionlab_lab::main`).

fn main() -> std::process::ExitCode {
    sessionlab_lab::main()
}
