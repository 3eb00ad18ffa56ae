//! `sessionlab-lb`: parse flags, build the runtime, bind, run. The logic
//! lives in the library (`sessionlab_lb::run`).

use std::process::ExitCode;

use clap::Parser;
use sessionlab_lb::{Flags, LbOptions, Listeners, run, shutdown_signal};

fn main() -> ExitCode {
    let options = match LbOptions::try_from(Flags::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sessionlab-lb: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sessionlab_lb=info".into()),
        )
        .init();
    // A single-threaded runtime: with --threads N the LB starts N - 1 more,
    // one per worker thread (see `server::serve_on_threads`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessionlab-lb: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = shutdown_signal();
        let listeners = match Listeners::bind(&options).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sessionlab-lb: {e}");
                return ExitCode::from(2);
            }
        };
        match run(options, listeners, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sessionlab-lb: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
