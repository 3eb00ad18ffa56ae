//! Histories: every operation of every simulated user, as the user saw it.
//!
//! A count of stale reads says *that* something went wrong; a history says
//! *what*: which request, sent when, answered by which node, with which
//! value. The [checker](crate::check) reads one and finds the operations
//! that break a session guarantee; other tools can read it too, so the
//! format is a contract (documented in `docs/lab.md`) and stays stable.
//!
//! One JSON object per line, in completion order:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `user` | integer | the simulated user (0, 1, ...) |
//! | `client` | integer | which of the user's clients (tabs) sent it |
//! | `op` | string | `login`, `read`, `increment`, `cart_put`, `cart_delete`, `logout` |
//! | `invoke_us` | integer | when it was sent, µs since the run started |
//! | `complete_us` | integer | when its answer (or failure) came |
//! | `node` | string or null | the answer's `X-Served-By` |
//! | `status` | integer or null | HTTP status; null when no answer came |
//! | `counter` | integer or null | the counter the answer carried (`read`, `increment`) |
//! | `version` | string or null | the session version the answer carried (`17@node-1`) |
//! | `logged_in` | bool or null | the answer showed the user's session (null: no answer) |
//! | `session` | string, optional | the session id's first characters a `read` answer carried (absent when unknown) |
//!
//! The times are on the load tool's clock (one monotonic clock for every
//! user), so "A completed before B was invoked" is a fact, not a guess
//! across machines. `logged_in` separates "the counter is 0 because the
//! session is new" from "the counter went back to 0".

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Login,
    Read,
    Increment,
    CartPut,
    CartDelete,
    Logout,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Login => "login",
            OpKind::Read => "read",
            OpKind::Increment => "increment",
            OpKind::CartPut => "cart_put",
            OpKind::CartDelete => "cart_delete",
            OpKind::Logout => "logout",
        }
    }
}

/// One line of a history; see the module docs for the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub user: u32,
    pub client: u32,
    pub op: OpKind,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub node: Option<String>,
    pub status: Option<u16>,
    pub counter: Option<i64>,
    pub version: Option<String>,
    pub logged_in: Option<bool>,
    /// Optional (absent in older histories and when unknown): the first
    /// characters of the session id a `read` answer carried, as the nodes'
    /// replication events name the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl Operation {
    /// The request got a 2xx or 3xx answer.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }

    /// An increment the cluster acknowledged on the user's session, and
    /// the value it answered.
    pub fn acked_increment(&self) -> Option<i64> {
        (self.op == OpKind::Increment && self.ok() && self.logged_in == Some(true))
            .then_some(self.counter)
            .flatten()
    }

    /// A read that showed the user's session, and its counter.
    pub fn session_read(&self) -> Option<i64> {
        (self.op == OpKind::Read && self.status == Some(200) && self.logged_in == Some(true))
            .then_some(self.counter)
            .flatten()
    }
}

/// The most operations a run keeps in memory (about 150 bytes each): a
/// run longer than this keeps its first operations and says it was cut.
pub const MAX_OPERATIONS: usize = 4_000_000;

/// Put the users' operations into completion order (ties: invoke time,
/// then user), the order a history file has.
pub fn completion_order(ops: &mut [Operation]) {
    ops.sort_by_key(|o| (o.complete_us, o.invoke_us, o.user, o.client));
}

/// Write a history, one JSON object per line.
pub fn write(ops: &[Operation], out: impl Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: not a history operation: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
    #[error("the history has more than {MAX_OPERATIONS} operations")]
    TooLong,
}

/// Read a history written by [`write`] (blank lines are skipped). The
/// operations are put into completion order whatever order the lines have.
pub fn read(input: impl BufRead) -> Result<Vec<Operation>, ReadError> {
    let mut ops = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if ops.len() == MAX_OPERATIONS {
            return Err(ReadError::TooLong);
        }
        let op = serde_json::from_str(&line).map_err(|source| ReadError::Line {
            line: i + 1,
            source,
        })?;
        ops.push(op);
    }
    completion_order(&mut ops);
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, at: u64) -> Operation {
        Operation {
            user: 3,
            client: 0,
            op: kind,
            invoke_us: at,
            complete_us: at + 10,
            node: Some("node-1".into()),
            status: Some(200),
            counter: Some(4),
            version: Some("7@node-1".into()),
            logged_in: Some(true),
            session: None,
        }
    }

    #[test]
    fn a_line_has_the_documented_fields() {
        let mut out = Vec::new();
        write(&[op(OpKind::CartPut, 5)], &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "{\"user\":3,\"client\":0,\"op\":\"cart_put\",\"invoke_us\":5,\"complete_us\":15,\
             \"node\":\"node-1\",\"status\":200,\"counter\":4,\"version\":\"7@node-1\",\
             \"logged_in\":true}\n"
        );
    }

    #[test]
    fn read_round_trips_and_sorts_by_completion() {
        let ops = vec![op(OpKind::Read, 50), op(OpKind::Login, 1)];
        let mut out = Vec::new();
        write(&ops, &mut out).unwrap();
        out.extend_from_slice(b"\n");
        let back = read(&out[..]).unwrap();
        assert_eq!(back[0].op, OpKind::Login);
        assert_eq!(back[1], ops[0]);
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let text = format!(
            "{}\n{{\"user\":1}}\n",
            serde_json::to_string(&op(OpKind::Read, 1)).unwrap()
        );
        let e = read(text.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
    }

    #[test]
    fn only_answered_changes_of_the_session_count() {
        let mut i = op(OpKind::Increment, 1);
        assert_eq!(i.acked_increment(), Some(4));
        i.logged_in = Some(false);
        assert_eq!(i.acked_increment(), None);
        let mut r = op(OpKind::Read, 1);
        assert_eq!(r.session_read(), Some(4));
        r.status = None;
        assert_eq!(r.session_read(), None);
    }
}
