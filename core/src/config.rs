//! Phase configuration: text (JSON) in, typed parameters out.
//!
//! The host sends each phase its `config` from the pipeline file as JSON text. A phase parses it
//! into its own parameter struct, which uses `#[serde(default, deny_unknown_fields)]`: missing
//! fields take the documented defaults, and an unknown or mistyped field is an error naming the
//! phase and the field path.

use crate::error::PhaseError;
use serde::{de::DeserializeOwned, Serialize};

/// Parses `text` (JSON; empty or `null` means "all defaults") into `T` for phase `phase`.
pub fn parse<T: DeserializeOwned + Default>(phase: &str, text: &str) -> Result<T, PhaseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_str(trimmed);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut msg = inner.to_string();
        // serde_json appends a position in the JSON text the host generated: useless to a user.
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        let field = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at field `{path}`")
        };
        PhaseError::config(format!("phase {phase}: invalid config{field}: {msg}"))
    })
}

/// The JSON text of a (resolved) parameter struct.
pub fn to_text<T: Serialize>(params: &T) -> String {
    serde_json::to_string_pretty(params).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        radius: f64,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Params {
        size: u32,
        inner: Inner,
    }

    impl Default for Params {
        fn default() -> Self {
            Params {
                size: 50,
                inner: Inner { radius: 2.5 },
            }
        }
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let p: Params = parse("X", r#"{"size": 3}"#).unwrap();
        assert_eq!(p.size, 3);
        assert_eq!(p.inner.radius, 2.5);
        assert_eq!(parse::<Params>("X", "").unwrap(), Params::default());
    }

    #[test]
    fn unknown_and_mistyped_fields_name_the_path() {
        let e = parse::<Params>("Cluster", r#"{"inner": {"radus": 1}}"#).unwrap_err();
        assert!(e.message().contains("phase Cluster"), "{}", e.message());
        assert!(e.message().contains("inner.radus"), "{}", e.message());
        assert!(e.message().contains("unknown field"), "{}", e.message());
        let e = parse::<Params>("Cluster", r#"{"size": "big"}"#).unwrap_err();
        assert!(e.message().contains("`size`"), "{}", e.message());
        assert!(!e.message().contains("at line"), "{}", e.message());
    }
}
