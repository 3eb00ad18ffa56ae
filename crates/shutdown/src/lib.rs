//! The shutdown future every sessionlab server binary hands to its `run`.
//!
//! Server entry points take bound listeners and a shutdown future (see the
//! conventions in `docs/architecture.md`); the node, the LB, the echo
//! backend and the dashboard all want the same one: complete on SIGTERM
//! (what `sessionlab down`, Kubernetes and compose send) or SIGINT (Ctrl-C),
//! then drain and exit 0.
//!
//! Why a crate of its own, this small: the function needs tokio's signal
//! driver, and the crates every binary already shares cannot carry that.
//! `sessionlab-wire` is the contract crate that the lab, the load tool and
//! the protocol core's neighbours read without a runtime; putting a tokio
//! dependency there would pull a runtime into all of them. A tiny crate that
//! depends on tokio's `signal` feature only keeps each binary's dependency
//! list honest and the one implementation in one place.
//!
//! | when | what happens |
//! |---|---|
//! | [`shutdown_signal`] is *called* | the SIGTERM and SIGINT handlers are installed |
//! | a signal arrives before the first poll | it is remembered; the first poll completes |
//! | a handler cannot be installed | that signal is not awaited; the other still is |
//! | not unix | Ctrl-C only |
//!
//! The handlers are installed when the function is called, not when the
//! future is first polled: a server announces itself as started before it
//! polls its shutdown future, and a SIGTERM in between must still mean
//! "drain and exit 0", not the default "die at once". Call it inside the
//! runtime.
//!
//! [`serve_main`] is the rest of a thin server binary's `main` once its
//! flags are parsed, the same for the LB and the dashboard: a bad
//! configuration printed with exit status 2, logs to stderr, a
//! single-threaded runtime, the shutdown future, and the server's failure
//! printed with the status it means ([`Failed`]).
//!
//! [`Every`] is the other half of a server's lifecycle: the background
//! loops (the LB's health checks and DNS discovery, the dashboard's
//! samplers) that run every so often until the server stops.

mod every;

pub use every::Every;

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

/// The shutdown future as [`serve_main`] hands it to the server.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a server stopped without being asked to.
#[derive(Debug)]
pub enum Failed {
    /// Something the command line asked for cannot be had (a busy port):
    /// exit status 2, like a bad flag.
    Usage(String),
    /// The server failed while running: exit status 1.
    Run(String),
}

/// `main` of a server binary `name` after its flags were turned into
/// `options`: exit 2 with the message if they are an error; else logs at
/// `RUST_LOG` (or `default_log`), a single-threaded runtime, and `serve`
/// with the options and the [`shutdown_signal`] (installed before `serve`
/// is polled); its [`Failed`] printed as `name: ...`.
pub fn serve_main<T, E, F>(
    name: &str,
    default_log: &str,
    options: Result<T, E>,
    serve: impl FnOnce(T, Shutdown) -> F,
) -> ExitCode
where
    E: Display,
    F: Future<Output = Result<(), Failed>>,
{
    let options = match options {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_log.into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Installed now, before the first poll: a SIGTERM right after start
        // still means "stop cleanly".
        let shutdown: Shutdown = Box::pin(shutdown_signal());
        match serve(options, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failed::Usage(e)) => {
                eprintln!("{name}: {e}");
                ExitCode::from(2)
            }
            Err(Failed::Run(e)) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C); see the [crate docs](crate).
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            async fn wait(s: Option<Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::shutdown_signal;

    /// A SIGTERM sent after the call but before the first poll is not lost
    /// (and does not kill the test process: the handler is already there).
    #[test]
    fn sigterm_before_first_poll_completes_the_future() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let shutdown = shutdown_signal();
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
            tokio::time::timeout(Duration::from_secs(10), shutdown)
                .await
                .expect("the SIGTERM completes the shutdown future");
        });
    }
}
