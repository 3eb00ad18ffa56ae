//! How sessionlab starts a throwaway `redis-server`: the lab's
//! `--mode redis` and the tests start it the same way, so what the tests
//! meet is what a lab cluster runs on.
//!
//! | argument | why |
//! |---|---|
//! | `--port P` | the port the caller picked (a free one, or `up`'s base) |
//! | `--bind 127.0.0.1` | loopback only: a lab's store is no service of the network |
//! | `--save ""` | no RDB snapshots: nothing outlives the run |
//! | `--appendonly no` | no AOF either; losing the data on a kill is the lesson of `--mode redis` |
//!
//! The caller adds where it runs (`--dir`, or its working directory).

/// The arguments of a scratch `redis-server` on `port`; see the module docs.
pub fn scratch_args(port: u16) -> Vec<String> {
    let port = port.to_string();
    [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_no_persistence() {
        let args = scratch_args(6390);
        assert_eq!(args[..2], ["--port", "6390"]);
        assert!(args.windows(2).any(|w| w == ["--bind", "127.0.0.1"]));
        assert!(args.windows(2).any(|w| w == ["--save", ""]));
        assert!(args.windows(2).any(|w| w == ["--appendonly", "no"]));
    }
}
