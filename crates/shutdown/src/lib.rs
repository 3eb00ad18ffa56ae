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

use std::future::Future;

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
