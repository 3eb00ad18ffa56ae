//! `sessionlab-echo`: a tiny backend for the LB's tests and benchmark
//! (a test tool; see `sessionlab_lb::echo`). Prints `listening on ADDR`
//! once bound, so a test can start it on port 0 and read the port.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use sessionlab_lb::echo::{EchoState, run};
use sessionlab_lb::shutdown_signal;

/// A fast test backend that answers with `X-Served-By: <id>`.
#[derive(Parser)]
#[command(name = "sessionlab-echo", version)]
struct Args {
    /// The id reported in X-Served-By.
    #[arg(long, env = "SESSIONLAB_ECHO_ID")]
    id: String,
    /// Listen address (port 0 picks a free port).
    #[arg(long, env = "SESSIONLAB_ECHO_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Wait this many milliseconds before every answer (not /healthz).
    #[arg(long, env = "SESSIONLAB_ECHO_DELAY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    delay_ms: u64,
    /// Worker threads.
    #[arg(long, env = "SESSIONLAB_ECHO_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads as usize)
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        eprintln!("sessionlab-echo: cannot start the runtime");
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sessionlab-echo: --listen {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        };
        let shutdown = shutdown_signal();
        match listener.local_addr() {
            Ok(addr) => println!("listening on {addr}"),
            Err(e) => {
                eprintln!("sessionlab-echo: {e}");
                return ExitCode::FAILURE;
            }
        }
        let state =
            EchoState::with_delay(&args.id, std::time::Duration::from_millis(args.delay_ms));
        run(state, listener, shutdown).await;
        ExitCode::SUCCESS
    })
}
