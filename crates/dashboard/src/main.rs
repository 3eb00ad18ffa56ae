//! `sessionlab-dashboard`: parse flags, bind, run. The logic lives in the
//! library (`sessionlab_dashboard::run`).

use std::process::ExitCode;

use clap::Parser;
use sessionlab_dashboard::{Config, run};
use sessionlab_shutdown::shutdown_signal;

fn main() -> ExitCode {
    let settings = match Config::parse().resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sessionlab-dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sessionlab_dashboard=info,sessionlab_lab=info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessionlab-dashboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Installed now, before the first poll: a SIGTERM right after start
        // still means "stop cleanly".
        let shutdown = shutdown_signal();
        let listener = match tokio::net::TcpListener::bind(settings.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sessionlab-dashboard: --listen {}: {e}", settings.listen);
                return ExitCode::from(2);
            }
        };
        match run(settings, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sessionlab-dashboard: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
