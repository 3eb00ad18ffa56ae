pub mod binding;
pub mod cas;
pub mod cookie;
pub mod middleware;
pub mod tracking;
pub mod websession;
