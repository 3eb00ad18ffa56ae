//! `sessionlab attack hijack`, `sessionlab attack fixation` and
//! `sessionlab attack csrf`: the hijacking lab.
//!
//! Each attack is a script of steps, each step a small story with two
//! clients, the *victim* (alice) and the *attacker*, and real requests to
//! real `sessionlab-node` processes. Every step prints what it did and why
//! the server answered as it did, and ends in a [`Finding`]: the attack
//! worked (`vulnerable`) or a defence stopped it (`defended`). `--json`
//! prints the findings for scripts (and the end-to-end test asserts them).
//!
//! ## Whose nodes
//! The defences are node flags (`--idle-timeout 2s`, `--bind-session
//! user-agent`, `--secure-cookies`, `--tracking url`, `--referrer-policy`,
//! `--auth jwt`, `--access-ttl`), and one running cluster has one set of
//! flags. So the command starts the nodes each step needs itself: single
//! `sessionlab-node` processes on free loopback ports, with their logs in a
//! temporary folder, stopped when the step ends. It needs no cluster and
//! leaves nothing behind. `--target URL` runs the first steps (steal the
//! id, then log out) against a running app instead, for instance the load
//! balancer of `sessionlab up`, to show the same theft through a real
//! cluster; the steps that need a particular flag still use nodes of their
//! own.
//!
//! ## The steps
//! `hijack` (session ids): steal the cookie and read alice's session;
//! logout deletes the session on the server; idle expiry ends a stolen id
//! the victim stopped using; binding to the User-Agent refuses a thief with
//! another browser (and admits one who copies the header: a weak defence);
//! the `Secure` attribute keeps the cookie off plain HTTP. Then the same
//! theft for real, by reading the traffic ([`wiretap`]): a relay on
//! loopback between alice and a `sessionlab-lb` of the attack's own copies
//! every byte; over plain HTTP it finds the cookie and the attacker
//! replays it, over HTTPS it finds only TLS records, and the `Secure`
//! cookie alice got over HTTPS is not in her request to the plain port.
//!
//! `hijack --auth jwt` (tokens): steal the access token (and read its
//! payload: signed, not encrypted); logout on one node does nothing on a
//! node that does not share the deny-list; with the deny-list it holds;
//! a short access-token lifetime ends a stolen token by itself; refresh
//! rotation with reuse detection kills a stolen refresh token's family.
//!
//! `fixation`: an id the attacker got from the server and planted in the
//! victim's browser is shared until login and worth nothing after it (the
//! id is rotated), in cookie mode and in URL mode; a made-up id is never
//! adopted; in URL mode the id leaks to another site through `Referer`
//! unless the page says `Referrer-Policy: no-referrer`.
//!
//! `csrf`: another site's form logs alice's browser in as the attacker
//! (login CSRF) on a node with `--csrf-check off`; a default node refuses
//! it by `Origin`/`Sec-Fetch-Site` with 403 while its own form works; the
//! classic CSRF of a change in alice's name is already stopped by
//! `SameSite=Lax`.
//!
//! Ids and tokens are printed as their first six characters only: they are
//! credentials, even in a lab (the wiretap's copy stays in memory).

mod csrf;
mod fixation;
mod hijack;
mod scene;
mod wiretap;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::error::{LabError, Result};
use csrf::csrf;
use fixation::fixation;
use hijack::{hijack_jwt, hijack_session};
use scene::AttackLab;

/// The attacks.
#[derive(Debug, Subcommand)]
pub enum Attack {
    /// Steal alice's session id (or token) and use it; then each defence.
    Hijack(AttackArgs),
    /// Plant a session id before alice logs in; and the id leaking from URLs.
    Fixation(AttackArgs),
    /// Another site logs alice in as the attacker (login CSRF); the origin
    /// check that stops it.
    Csrf(AttackArgs),
}

/// How the victim authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// A session id in a cookie.
    Session,
    /// JWT access and refresh tokens.
    Jwt,
}

/// Options of the attacks.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// What the victim logs in with (hijack; fixation is about session ids).
    #[arg(long, value_enum, default_value_t = AuthKind::Session)]
    pub auth: AuthKind,
    /// A running app (e.g. http://127.0.0.1:8080, the LB of `sessionlab up`)
    /// to steal from in the first steps, instead of a node of the attack's own.
    #[arg(long, env = "SESSIONLAB_ATTACK_TARGET")]
    pub target: Option<String>,
    /// Folder with sessionlab-node (default: next to this binary).
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Print the findings as JSON on stdout (the story goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Whether the attack worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Vulnerable,
    Defended,
}

impl Outcome {
    /// `Defended` if what the defence should bring about happened.
    pub fn defended_if(held: bool) -> Outcome {
        if held {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        }
    }

    /// `Vulnerable` if what the attack tried worked.
    pub fn vulnerable_if(worked: bool) -> Outcome {
        Outcome::defended_if(!worked)
    }
}

/// The end of one step.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A short name, e.g. `steal-cookie`, `logout`, `idle-expiry`.
    pub step: String,
    /// The node flags (or target) it ran against.
    pub setup: String,
    pub outcome: Outcome,
    /// What happened and why, one sentence.
    pub why: String,
}

/// All findings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub attack: String,
    pub findings: Vec<Finding>,
}

/// Runs an attack; returns what to print on stdout at the end.
pub async fn run(attack: Attack) -> Result<String> {
    let (name, args) = match &attack {
        Attack::Hijack(a) => (
            match a.auth {
                AuthKind::Session => "hijack",
                AuthKind::Jwt => "hijack-jwt",
            },
            a,
        ),
        Attack::Fixation(a) => ("fixation", a),
        Attack::Csrf(a) => ("csrf", a),
    };
    let mut lab = AttackLab::new(args)?;
    let result = match (&attack, args.auth) {
        (Attack::Hijack(_), AuthKind::Session) => hijack_session(&mut lab).await,
        (Attack::Hijack(_), AuthKind::Jwt) => hijack_jwt(&mut lab).await,
        (Attack::Fixation(_), _) => fixation(&mut lab).await,
        (Attack::Csrf(_), _) => csrf(&mut lab).await,
    };
    result?;
    let report = Report {
        attack: name.to_string(),
        findings: lab.findings,
    };
    if args.json {
        return serde_json::to_string_pretty(&report).map_err(|e| LabError::Api {
            target: "attack".into(),
            detail: e.to_string(),
        });
    }
    Ok(summary(&report))
}

/// The closing table.
pub fn summary(report: &Report) -> String {
    let mut out = format!("\nsummary of `{}`:\n", report.attack);
    for f in &report.findings {
        let outcome = match f.outcome {
            Outcome::Vulnerable => "VULNERABLE",
            Outcome::Defended => "defended",
        };
        out.push_str(&format!("  {:<24} {:<11} {}\n", f.step, outcome, f.setup));
    }
    out.trim_end().to_string()
}
