mod flags;

pub use flags::*;
