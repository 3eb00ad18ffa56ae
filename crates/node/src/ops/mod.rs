pub mod admin;
pub mod metrics;
pub mod process_memory;
