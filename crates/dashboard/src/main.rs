//! `sessionlab-dashboard`: parse flags, bind, run. The logic lives in the
//! library (`sessionlab_dashboard::run`).

use std::process::ExitCode;

use clap::Parser;
use sessionlab_dashboard::{Config, run};
use sessionlab_shutdown::{Failed, serve_main};

fn main() -> ExitCode {
    serve_main(
        "sessionlab-dashboard",
        "sessionlab_dashboard=info,sessionlab_lab=info",
        Config::parse().resolve(),
        |settings, shutdown| async move {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|e| Failed::Usage(format!("--listen {}: {e}", settings.listen)))?;
            run(settings, listener, shutdown)
                .await
                .map_err(|e| Failed::Run(e.to_string()))
        },
    )
}
