//! Health: whether a backend may get traffic.
//!
//! A rise/fall state machine ([`checks::HealthMachine`]) fed by active
//! checks (`GET <health path>` every interval) and passive ones (real
//! traffic that cannot connect or times out). Why both: active checks bring
//! a backend back (a down backend gets no traffic to succeed with), passive
//! ones notice a dead backend within a few requests instead of
//! `fall × interval`. See [`checks`] for the rules and their timing.

pub(crate) mod checks;

pub(crate) use checks::{
    HealthConfig, HealthMachine, HttpProbe, Initial, Transition, run_active_checks,
};
