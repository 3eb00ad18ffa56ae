//! nginx in front of the nodes: the configuration the lab writes for
//! Debian's nginx (open source, 1.22 here), and its reload.
//!
//! ## What OSS nginx has, and what it lacks
//!
//! - **No cookie-insert stickiness.** The `sticky cookie` directive is
//!   NGINX Plus only. The nearest open-source answer that really keeps a
//!   user on one node is the one Tomcat shops used with mod_jk: the node
//!   appends its id to the session id (`--route-suffix`: `<id>.node-2`,
//!   the `jvmRoute`), and a `map` on that suffix picks an upstream whose
//!   primary server is that node, with the others as `backup`. So in the
//!   sticky modes behind nginx the lab starts the nodes with
//!   `--route-suffix`. A plain `hash $cookie_SLSESSION` would not do: the
//!   id changes at login (fixation defence), so the user would hash to
//!   another node right after logging in. `ip_hash` would pin every user of
//!   one address (here: all of them, on 127.0.0.1) to one node.
//! - **Hashing** the session cookie (`hash ... consistent`, ketama) for the
//!   strategies that hash; without a cookie (before login) the key is the
//!   request id, so anonymous requests spread instead of piling on one node.
//!   No bounded loads.
//! - **Passive health only**: `max_fails=1 fail_timeout=2s` takes a server
//!   out for 2 s after one failed attempt; nothing probes `/healthz` (active
//!   checks are NGINX Plus). A request whose server refuses the connection
//!   goes to the next one (`proxy_next_upstream error timeout http_502`), so
//!   a killed node costs no error, only a try.
//! - **No runtime API.** `drain` rewrites the file with the node marked
//!   `down` and reloads (SIGHUP: new workers start with the new file, old
//!   ones finish their connections). `down` is not HAProxy's drain: the
//!   node's sticky users move too (their route upstream falls to a backup).
//! - **No status**: `status` and the dashboard show the lab's own view.
//!
//! ## Running as a user
//! Every path nginx would write is in the run folder: `-p <run>/lb` (the
//! prefix), `pid`, the temp folders, `-e stderr` and `error_log stderr` (so
//! even the first error lands in `logs/lb.log`). `daemon off`: the lab
//! tracks the master process like the nodes. Bodies are bounded (1 MiB, in
//! memory) and temp files are off, so a worker never needs to write a file
//! (as root, its workers run as `nobody`, who cannot enter the run folder).

use std::path::{Path, PathBuf};

use super::{Balance, Plan};
use crate::error::{LabError, Result};

/// The override for the binary.
pub const BIN_ENV: &str = "SESSIONLAB_NGINX_BIN";
/// The upstream of every node.
const POOL: &str = "sessionlab_nodes";

/// Debian's nginx, or the error naming the package.
pub fn find() -> Result<PathBuf> {
    super::system_binary("nginx", BIN_ENV, "nginx")
}

fn conf(dir: &Path) -> String {
    dir.join("nginx.conf").to_string_lossy().into_owned()
}

/// The command line: prefix and file in the run folder, errors to stderr.
pub fn args(dir: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        dir.to_string_lossy().into_owned(),
        "-c".into(),
        conf(dir),
        "-e".into(),
        "stderr".into(),
    ]
}

/// `nginx -t`: the file is valid for this nginx.
pub fn validate(program: &Path, dir: &Path) -> Result<()> {
    // nginx makes the temp folders, not their parent.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(LabError::io(format!("creating {}", tmp.display())))?;
    let out = std::process::Command::new(program)
        .arg("-t")
        .args(args(dir))
        .output()
        .map_err(LabError::io(format!("running {} -t", program.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::InvalidArgument(format!(
        "--lb nginx: {} -t refused the generated {}: {}",
        program.display(),
        conf(dir),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// `s` as a literal inside an nginx regular expression in double quotes.
fn regex_literal(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.^$|?*+()[]{}\"';".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The upstream name for the node `id` (nginx names: no `-`).
fn route_upstream(id: &str) -> String {
    format!("sessionlab_route_{}", id.replace('-', "_"))
}

/// The generated `nginx.conf`.
pub fn config(plan: &Plan<'_>) -> Result<String> {
    config_with(plan, plan.balance()?)
}

fn config_with(plan: &Plan<'_>, balance: Balance) -> Result<String> {
    let st = plan.state;
    for n in &st.nodes {
        if !n
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(LabError::InvalidArgument(format!(
                "--lb nginx: the node id `{}` does not fit an upstream name",
                n.id
            )));
        }
    }
    let dir = plan.dir.to_string_lossy();
    let tmp = plan.dir.join("tmp").to_string_lossy().into_owned();
    let cookie = regex_literal(plan.session_cookie);
    let strategy = st.mode.preset().lb_strategy;
    let mut out = format!(
        "# Generated by sessionlab for a {mode} cluster of {n} nodes (strategy {strategy});\n\
         # `sessionlab config lb` prints it. The lab rewrites it at every `up` and `drain`:\n\
         # copy it to change it. nginx's manual: https://nginx.org/en/docs/\n\
         #\n\
         # Open-source nginx has no cookie-insert stickiness (`sticky cookie` is NGINX\n\
         # Plus): the sticky modes use the node's route suffix on the session id\n\
         # (<id>.node-N, the nodes run with --route-suffix), mapped to an upstream per\n\
         # node; the hashing ones hash the session cookie. Health is passive only\n\
         # (max_fails/fail_timeout): nothing probes /healthz.\n\
         \n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {dir}/nginx.pid;\n\
         error_log stderr notice;\n\
         \n\
         events {{\n\
         \x20   worker_connections 4096;\n\
         }}\n\
         \n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   # Workers never write files: bodies in memory, bounded; no temp files.\n\
         \x20   client_max_body_size 1m;\n\
         \x20   client_body_buffer_size 1m;\n\
         \x20   proxy_max_temp_file_size 0;\n\
         \x20   client_body_temp_path {tmp}/body;\n\
         \x20   proxy_temp_path {tmp}/proxy;\n\
         \x20   fastcgi_temp_path {tmp}/fastcgi;\n\
         \x20   uwsgi_temp_path {tmp}/uwsgi;\n\
         \x20   scgi_temp_path {tmp}/scgi;\n\
         \x20   keepalive_timeout 60s;\n\
         \n\
         \x20   # The session id from the Cookie header (any cookie name).\n\
         \x20   map $http_cookie $sl_session {{\n\
         \x20       default \"\";\n\
         \x20       \"~(?:^|;)\\s*{cookie}=\\\"?(?<sl_sid>[^;\\\"]*)\" $sl_sid;\n\
         \x20   }}\n",
        mode = st.mode,
        n = st.nodes.len(),
    );
    let server = |port: u16, extra: &str| {
        format!("server 127.0.0.1:{port} max_fails=1 fail_timeout=2s{extra};")
    };
    let down = |id: &str| match plan.drained.contains(id) {
        true => " down",
        false => "",
    };
    let hashed = matches!(balance, Balance::ConsistentHash | Balance::BoundedHash);
    if hashed {
        out.push_str(
            "\n    # Before login there is no cookie: hash the request id, so anonymous\n\
             \x20   # requests spread instead of all landing on one node.\n\
             \x20   map $sl_session $sl_hash_key {\n\
             \x20       \"\" $request_id;\n\
             \x20       default $sl_session;\n\
             \x20   }\n",
        );
    }
    out.push_str(&format!("\n    upstream {POOL} {{\n"));
    match balance {
        Balance::Random => out.push_str("        random;\n"),
        Balance::LeastConn => out.push_str("        least_conn;\n"),
        Balance::ConsistentHash | Balance::BoundedHash => {
            out.push_str("        hash $sl_hash_key consistent;\n")
        }
        _ => {}
    }
    for n in &st.nodes {
        out.push_str(&format!(
            "        {}  # {}\n",
            server(n.app_port, down(&n.id)),
            n.id
        ));
    }
    out.push_str("        keepalive 32;\n    }\n");
    let sticky = matches!(balance, Balance::StickyCookie | Balance::StickyRoute);
    let target = if sticky {
        out.push_str(
            "\n    # Sticky without cookie insert: the node named by the session id's\n\
             \x20   # suffix (<id>.node-N), the others as backups for failover.\n\
             \x20   map $sl_session $sl_upstream {\n",
        );
        out.push_str(&format!("        default {POOL};\n"));
        for n in &st.nodes {
            out.push_str(&format!(
                "        \"~\\.{}$\" {};\n",
                regex_literal(&n.id),
                route_upstream(&n.id)
            ));
        }
        out.push_str("    }\n");
        for n in &st.nodes {
            out.push_str(&format!("\n    upstream {} {{\n", route_upstream(&n.id)));
            out.push_str(&format!(
                "        {}  # {}\n",
                server(n.app_port, down(&n.id)),
                n.id
            ));
            for other in st.nodes.iter().filter(|o| o.id != n.id) {
                let extra = format!(" backup{}", down(&other.id));
                out.push_str(&format!(
                    "        {}  # {}\n",
                    server(other.app_port, &extra),
                    other.id
                ));
            }
            out.push_str("        keepalive 8;\n    }\n");
        }
        "$sl_upstream".to_string()
    } else {
        POOL.to_string()
    };
    out.push_str(&format!(
        "\n    server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://{target};\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_set_header Host $http_host;\n\
         \x20           # The nodes trust X-Forwarded-For from 127.0.0.1 (--trusted-proxy).\n\
         \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20           proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20           # A refused connection or a 502 goes to the next server.\n\
         \x20           proxy_next_upstream error timeout http_502;\n\
         \x20           proxy_connect_timeout 1s;\n\
         \x20           proxy_read_timeout 30s;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        port = st.lb.port,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{LbKind, tests::sample};
    use crate::preset::Mode;
    use std::collections::BTreeSet;

    fn generated(mode: Mode, balance: Option<&str>, drained: &[&str], dir: &Path) -> String {
        let st = sample(mode, LbKind::Nginx, 3);
        let drained: BTreeSet<String> = drained.iter().map(|s| s.to_string()).collect();
        let plan = Plan {
            state: &st,
            dir,
            session_cookie: "SLSESSION",
            drained: &drained,
        };
        match balance {
            None => config(&plan),
            Some(b) => config_with(&plan, b.parse().unwrap()),
        }
        .unwrap()
    }

    #[test]
    fn round_robin_modes_use_the_plain_upstream() {
        let text = generated(Mode::Replicated, None, &[], Path::new("/r/lb"));
        for line in [
            "daemon off;\n",
            "pid /r/lb/nginx.pid;\n",
            "    proxy_temp_path /r/lb/tmp/proxy;\n",
            "        server 127.0.0.1:8081 max_fails=1 fail_timeout=2s;  # node-1\n",
            "        listen 127.0.0.1:8080;\n",
            "            proxy_pass http://sessionlab_nodes;\n",
            "            proxy_next_upstream error timeout http_502;\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("        hash "), "{text}");
        assert!(text.contains("sticky cookie` is NGINX\n# Plus"), "{text}");
    }

    #[test]
    fn sticky_modes_route_by_the_id_suffix_with_backups() {
        let text = generated(Mode::StickyReplicated, None, &["node-2"], Path::new("/r"));
        for line in [
            "        \"~\\.node-2$\" sessionlab_route_node_2;\n",
            "            proxy_pass http://$sl_upstream;\n",
            "    upstream sessionlab_route_node_1 {\n\
             \x20       server 127.0.0.1:8081 max_fails=1 fail_timeout=2s;  # node-1\n\
             \x20       server 127.0.0.1:8082 max_fails=1 fail_timeout=2s backup down;  # node-2\n",
            "        server 127.0.0.1:8082 max_fails=1 fail_timeout=2s down;  # node-2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn hashing_strategies_hash_the_session_cookie_or_the_request_id() {
        let text = generated(
            Mode::Replicated,
            Some("consistent-hash"),
            &[],
            Path::new("/r"),
        );
        assert!(
            text.contains("        hash $sl_hash_key consistent;\n"),
            "{text}"
        );
        assert!(text.contains("        \"\" $request_id;\n"), "{text}");
        let text = generated(Mode::Replicated, Some("least-conn"), &[], Path::new("/r"));
        assert!(text.contains("        least_conn;\n"), "{text}");
        assert_eq!(regex_literal("a.b$"), "a\\.b\\$");
    }

    /// The generated file passes `nginx -t` for every mode and strategy,
    /// where nginx is installed (scripts/test.sh installs it).
    #[test]
    fn nginx_accepts_the_generated_file() {
        let Ok(program) = find() else {
            eprintln!("nginx is not installed: skipping `nginx -t` (apt-get install nginx)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let mut cases: Vec<(Mode, Option<&str>)> = Mode::ALL.iter().map(|m| (*m, None)).collect();
        for b in [
            "consistent-hash",
            "bounded-hash",
            "sticky-route",
            "least-conn",
            "random",
        ] {
            cases.push((Mode::Replicated, Some(b)));
        }
        for (mode, b) in cases {
            let text = generated(mode, b, &["node-3"], dir.path());
            std::fs::write(dir.path().join("nginx.conf"), &text).unwrap();
            validate(&program, dir.path()).unwrap_or_else(|e| panic!("{mode} {b:?}: {e}\n{text}"));
        }
    }
}
