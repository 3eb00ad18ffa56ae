//! `sessionlab-node`: parse the flags into options (once), set up logging,
//! run the node.

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use sessionlab_node::{Cli, Command, Listeners, NodeOptions, hash_password, run, wire};
use sessionlab_shutdown::shutdown_signal;

fn main() -> ExitCode {
    sessionlab_node::release_large_blocks();
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        let mut password = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut password) {
            eprintln!("sessionlab-node: reading the password from stdin: {e}");
            return ExitCode::FAILURE;
        }
        println!("{}", hash_password(password.trim_end_matches(['\r', '\n'])));
        return ExitCode::SUCCESS;
    }
    // The one conversion: a combination of flags that cannot work stops
    // here, named, with exit status 2, before anything binds.
    let cfg = match NodeOptions::try_from(cli.flags) {
        Ok(cfg) => cfg,
        Err(e) => e.into_clap().exit(),
    };
    // `--log` was checked when parsed.
    let filter = tracing_subscriber::EnvFilter::new(&cfg.log);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `--clock-skew`: the whole process's clock, before anything reads it.
    if cfg.timeouts.clock_skew_ms != 0 {
        sessionlab_session::clock::set_skew_ms(cfg.timeouts.clock_skew_ms);
        tracing::warn!(
            skew_ms = cfg.timeouts.clock_skew_ms,
            "this node's clock is skewed on purpose (--clock-skew)"
        );
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessionlab-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Signal handlers first, so a SIGTERM during start-up drains too.
        let shutdown = shutdown_signal();
        let listeners = Listeners::bind(&cfg.listen)?;
        let wiring = wire(&cfg).await?;
        run(cfg, listeners, wiring, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessionlab-node: {e}");
            ExitCode::FAILURE
        }
    }
}
