//! The dashboard's flags (each also a `SESSIONLAB_DASHBOARD_*` environment
//! variable), parsed once into [`Settings`]; a mistake is an error that
//! names the flag.
//!
//! What the dashboard needs to know is where to look and what it may do:
//!
//! - `--listen`: where the page is served (default 127.0.0.1:8079);
//! - `--lb-admin http://HOST:PORT`: the LB's admin API (backends, routing
//!   log, latency histograms; default http://127.0.0.1:8078, where
//!   `sessionlab up` puts it);
//! - `--node-admin ID=HOST:PORT` (repeatable): each node's cluster listener,
//!   where the node tells its sessions, memory and replication links. A host
//!   name (a compose service) is resolved on every request, so a node that
//!   starts after the dashboard is still found;
//! - `--lab-dir DIR`: the run folder of `sessionlab up`: turns on the kill,
//!   restart, partition and heal buttons;
//! - `--admin-token T`: the LB's admin token. The dashboard sends it to the
//!   LB and asks the browser for it on every `/admin/...` call. Without a
//!   token the page may only listen on loopback (like the LB's admin
//!   listener);
//! - `--lb-token T`: the LB's admin token for the LB only, the browser not
//!   asked for one (what `sessionlab up` passes; default `--admin-token`);
//! - `--lb-kind sessionlab|haproxy|nginx`: which LB serves the traffic.
//!   HAProxy and nginx have no sessionlab admin API: the page then shows
//!   the nodes as the lab sees them (HAProxy's runtime API through the run
//!   folder, else whether each node answers), says so, and has no routing
//!   log or latency charts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use sessionlab_lab::LbKind;

/// Node ids are the LB's backend ids: short and plain.
pub const MAX_ID_LEN: usize = 64;

/// sessionlab-dashboard: the live page over a sessionlab cluster (the LB's
/// admin API and the nodes' cluster listeners), with the lab's buttons.
#[derive(Debug, Clone, Parser)]
#[command(name = "sessionlab-dashboard", version)]
pub struct Config {
    /// Where the page is served.
    #[arg(
        long,
        env = "SESSIONLAB_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8079"
    )]
    pub listen: SocketAddr,

    /// The LB's admin API, http://HOST:PORT.
    #[arg(
        long,
        env = "SESSIONLAB_DASHBOARD_LB_ADMIN",
        default_value = "http://127.0.0.1:8078",
        value_parser = parse_lb_admin,
        value_name = "URL"
    )]
    pub lb_admin: HostPort,

    /// A node's cluster listener, ID=HOST:PORT (repeat the flag; in the env
    /// var, comma-separated). Nodes the LB learns at run time with an
    /// `admin` address are found without it.
    #[arg(
        long = "node-admin",
        env = "SESSIONLAB_DASHBOARD_NODE_ADMINS",
        value_delimiter = ',',
        value_name = "ID=HOST:PORT"
    )]
    pub node_admins: Vec<NodeAdmin>,

    /// The run folder of the `sessionlab up` that runs the cluster: turns on
    /// the kill, restart, partition and heal buttons.
    #[arg(long, env = "SESSIONLAB_DASHBOARD_LAB_DIR", value_name = "DIR")]
    pub lab_dir: Option<PathBuf>,

    /// The LB's admin token: sent to the LB, and required of the browser.
    #[arg(long, env = "SESSIONLAB_DASHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Which LB serves the traffic. With haproxy or nginx there is no LB
    /// admin API to read: the nodes are shown from the lab's own view.
    #[arg(long, value_enum, env = "SESSIONLAB_DASHBOARD_LB_KIND", default_value_t = LbKind::Sessionlab)]
    pub lb_kind: LbKind,

    /// The LB's admin token when the browser is not asked for one: sent to
    /// the LB only (default: --admin-token). `sessionlab up` passes the
    /// token it generated this way, so the page on loopback opens as is.
    #[arg(long, env = "SESSIONLAB_DASHBOARD_LB_TOKEN", hide_env_values = true)]
    pub lb_token: Option<String>,
}

/// What the dashboard runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub lb_admin: HostPort,
    pub node_admins: Vec<NodeAdmin>,
    pub lab_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    /// What the dashboard sends to the LB (`--lb-token`, else `--admin-token`).
    pub lb_token: Option<String>,
    pub lb_kind: LbKind,
}

/// A configuration mistake; the message starts with the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--listen {0} is reachable from other machines; set --admin-token (or listen on 127.0.0.1)"
    )]
    Exposed(SocketAddr),
    #[error("--admin-token must not be empty")]
    EmptyToken,
    #[error("--lb-token must not be empty")]
    EmptyLbToken,
    #[error("--node-admin: {0}")]
    NodeAdmin(String),
    #[error("--lab-dir {}: not a folder", .0.display())]
    LabDir(PathBuf),
}

impl Config {
    /// The checks across flags, once.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        for (i, a) in self.node_admins.iter().enumerate() {
            if self.node_admins[..i].iter().any(|other| other.id == a.id) {
                return Err(ConfigError::NodeAdmin(format!("{:?} is given twice", a.id)));
            }
        }
        if let Some(dir) = &self.lab_dir {
            if !dir.is_dir() {
                return Err(ConfigError::LabDir(dir.clone()));
            }
        }
        if self.lb_token.as_deref() == Some("") {
            return Err(ConfigError::EmptyLbToken);
        }
        match &self.admin_token {
            Some(t) if t.is_empty() => return Err(ConfigError::EmptyToken),
            None if !self.listen.ip().is_loopback() => {
                return Err(ConfigError::Exposed(self.listen));
            }
            _ => {}
        }
        Ok(Settings {
            listen: self.listen,
            lb_admin: self.lb_admin,
            node_admins: self.node_admins,
            lab_dir: self.lab_dir,
            lb_token: self.lb_token.or_else(|| self.admin_token.clone()),
            lb_kind: self.lb_kind,
            admin_token: self.admin_token,
        })
    }
}

/// `HOST:PORT`: an IP address (`[::1]:9081` for IPv6) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl From<SocketAddr> for HostPort {
    fn from(a: SocketAddr) -> Self {
        let host = match a {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        HostPort {
            host,
            port: a.port(),
        }
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let bad = || format!("expected HOST:PORT or IP:PORT, got {s:?}");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        match port.parse::<u16>() {
            Ok(port) if host_ok && port != 0 => Ok(HostPort {
                host: host.to_string(),
                port,
            }),
            _ => Err(bad()),
        }
    }
}

/// `node-1=127.0.0.1:9081`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAdmin {
    pub id: String,
    pub addr: HostPort,
}

/// A node id as the LB accepts backend ids: 1-64 of `A-Z a-z 0-9 _ -`.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromStr for NodeAdmin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, addr) = s
            .split_once('=')
            .ok_or("expected ID=HOST:PORT, e.g. node-1=127.0.0.1:9081")?;
        let id = id.trim();
        if !valid_node_id(id) {
            return Err(format!(
                "node id must be 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ -, got {id:?}"
            ));
        }
        Ok(NodeAdmin {
            id: id.to_string(),
            addr: addr.trim().parse()?,
        })
    }
}

fn parse_lb_admin(s: &str) -> Result<HostPort, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("expected http://HOST:PORT, got {s:?}"))?;
    rest.strip_suffix('/').unwrap_or(rest).parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("sessionlab-dashboard").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = parse(&[]).unwrap().resolve().unwrap();
        assert_eq!(s.listen, "127.0.0.1:8079".parse().unwrap());
        assert_eq!(s.lb_admin.to_string(), "127.0.0.1:8078");
        assert!(s.node_admins.is_empty() && s.lab_dir.is_none() && s.admin_token.is_none());
        assert_eq!(s.lb_kind, LbKind::Sessionlab);
        let s = parse(&["--lb-kind", "haproxy"]).unwrap().resolve().unwrap();
        assert_eq!(s.lb_kind, LbKind::Haproxy);
        let e = parse(&["--lb-kind", "traefik"]).unwrap_err().to_string();
        assert!(e.contains("--lb-kind"), "{e}");
    }

    #[test]
    fn node_admins_are_named_once_and_bad_flags_name_the_flag() {
        let s = parse(&[
            "--node-admin",
            "node-1=127.0.0.1:9081",
            "--node-admin",
            "node-2=node-2:9081",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(s.node_admins[0].addr.port(), 9081);
        assert_eq!(s.node_admins[1].addr.to_string(), "node-2:9081");
        let e = parse(&[
            "--node-admin",
            "node-1=127.0.0.1:9081",
            "--node-admin",
            "node-1=127.0.0.1:9082",
        ])
        .unwrap()
        .resolve()
        .unwrap_err();
        assert!(e.to_string().starts_with("--node-admin"), "{e}");
        let e = parse(&["--node-admin", "node-1"]).unwrap_err().to_string();
        assert!(e.contains("--node-admin"), "{e}");
        let e = parse(&["--lab-dir", "/nonexistent/run"])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().starts_with("--lab-dir"), "{e}");
        let e = parse(&["--lb-admin", "https://lb:8078"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--lb-admin"), "{e}");
        assert_eq!(
            parse(&["--lb-admin", "http://lb:8078/"])
                .unwrap()
                .lb_admin
                .to_string(),
            "lb:8078"
        );
    }

    #[test]
    fn the_lb_token_defaults_to_the_admin_token() {
        let s = parse(&["--lb-token", "lb"]).unwrap().resolve().unwrap();
        assert_eq!((s.lb_token.as_deref(), s.admin_token), (Some("lb"), None));
        let s = parse(&["--admin-token", "t"]).unwrap().resolve().unwrap();
        assert_eq!(s.lb_token.as_deref(), Some("t"));
        let e = parse(&["--lb-token", ""]).unwrap().resolve().unwrap_err();
        assert!(e.to_string().starts_with("--lb-token"), "{e}");
    }

    #[test]
    fn an_exposed_page_needs_a_token() {
        let e = parse(&["--listen", "0.0.0.0:8079"])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("--admin-token"), "{e}");
        parse(&["--listen", "0.0.0.0:8079", "--admin-token", "t"])
            .unwrap()
            .resolve()
            .unwrap();
        let e = parse(&["--admin-token", ""])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().starts_with("--admin-token"), "{e}");
    }
}
