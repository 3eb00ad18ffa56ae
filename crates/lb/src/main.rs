//! `sessionlab-lb`: parse flags, build the runtime, bind, run. The logic
//! lives in the library (`sessionlab_lb::run`).

use std::process::ExitCode;

use clap::Parser;
use sessionlab_lb::{Flags, LbOptions, Listeners, run};
use sessionlab_shutdown::{Failed, serve_main};

fn main() -> ExitCode {
    // A single-threaded runtime: with --threads N the LB starts N - 1 more,
    // one per worker thread (see `server::serve_on_threads`).
    serve_main(
        "sessionlab-lb",
        "sessionlab_lb=info",
        LbOptions::try_from(Flags::parse()),
        |options, shutdown| async move {
            let listeners = Listeners::bind(&options)
                .await
                .map_err(|e| Failed::Usage(e.to_string()))?;
            run(options, listeners, shutdown)
                .await
                .map_err(|e| Failed::Run(e.to_string()))
        },
    )
}
