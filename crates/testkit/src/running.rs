//! A server task inside the test process, and the one way to stop it.
//!
//! The in-process servers of the kit (nodes, LBs) run as tokio tasks given
//! a shutdown future. [`Running`] holds the sending half of that future and
//! the task: dropping it starts the shutdown (the future resolves when its
//! sender is gone), [`Running::stop`] also waits, bounded, for the drain.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The future a server is given to know when to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module docs.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Spawn `serve(shutdown)`: a server that runs until `shutdown` resolves.
    pub fn spawn<F, S>(serve: S) -> Running
    where
        S: FnOnce(Shutdown) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async {
            let _ = rx.await;
        });
        Running {
            stop: Some(tx),
            task: Some(tokio::spawn(serve(shutdown))),
        }
    }

    /// Shut the server down and wait until it has (15 s at most), panicking
    /// with `what` if it does not stop or its task panicked.
    pub async fn stop(&mut self, what: &str) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .unwrap_or_else(|_| panic!("{what} did not stop within 15 s"))
                .unwrap_or_else(|e| panic!("{what} task panicked: {e}"));
        }
    }
}
