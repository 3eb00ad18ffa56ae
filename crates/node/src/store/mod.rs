pub mod redis;
pub mod wiring;
