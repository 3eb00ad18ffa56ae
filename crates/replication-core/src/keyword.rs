//! Flag values that are one keyword each (`--replication-ack quorum`).
//!
//! An enum of such values needs `FromStr` (the flag) and `Display` (logs,
//! the admin view) to agree on every keyword, and its error to list them
//! all. [`keyword_enum!`](crate::keyword_enum) writes both impls from one
//! table, so a new variant cannot be added to one and forgotten in the
//! other. It is exported because the transport crate's flags use it too.

/// `FromStr` and `Display` for an enum whose values are keywords, from one
/// table `Variant => "keyword"`. A value not in the table is refused with
/// a [`ConfigError`](crate::ConfigError) saying
/// `"<what> must be a, b or c, not \"x\""`.
#[macro_export]
macro_rules! keyword_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::ConfigError;
            fn from_str(s: &str) -> Result<Self, $crate::ConfigError> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err($crate::ConfigError::Invalid(format!(
                        "{} must be {}, not {other:?}",
                        $what,
                        $crate::one_of(&[$($name),+])
                    ))),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $name,)+
                })
            }
        }
    };
}

/// `a, b or c` (for [`keyword_enum!`](crate::keyword_enum)'s error).
#[doc(hidden)]
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::one_of;
    use crate::{AckMode, ConfigError, PartitionPolicy};

    #[test]
    fn every_keyword_parses_back_and_others_are_refused_by_name() {
        for mode in [AckMode::None, AckMode::Sent, AckMode::All, AckMode::Quorum] {
            assert_eq!(mode.to_string().parse::<AckMode>(), Ok(mode));
        }
        assert_eq!(
            "most".parse::<AckMode>(),
            Err(ConfigError::Invalid(
                "replication ack mode must be none, sent, all or quorum, not \"most\"".into()
            ))
        );
        assert_eq!(PartitionPolicy::Consistent.to_string(), "consistent");
        assert_eq!(
            "strict".parse::<PartitionPolicy>(),
            Err(ConfigError::Invalid(
                "partition policy must be available or consistent, not \"strict\"".into()
            ))
        );
    }

    #[test]
    fn the_keywords_are_listed_as_a_sentence() {
        assert_eq!(one_of(&["on"]), "on");
        assert_eq!(
            one_of(&["available", "consistent"]),
            "available or consistent"
        );
        assert_eq!(
            one_of(&["none", "sent", "all", "quorum"]),
            "none, sent, all or quorum"
        );
    }
}
