//! Result schemas: what artifacts a phase consumes and produces.
//!
//! A schema maps artifact names to a file extension and a nested description of the data (JSON),
//! as in Python Spyral's `ResultSchema`. Two schemas are equal when their artifacts are deeply
//! equal; the data descriptions are stored in canonical JSON (sorted keys, no whitespace) so the
//! derived equality is deep equality. Schemas are descriptions: nothing checks them against files.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};
use std::fmt;

/// One artifact: its name, file extension (with the dot, e.g. `.h5`) and data description.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSchema {
    /// Artifact name, e.g. `pointcloud`.
    pub name: RString,
    /// File extension with its leading dot, e.g. `.h5` or `.parquet`.
    pub extension: RString,
    /// Canonical JSON text describing the nested data (groups, datasets, columns and types).
    pub data: RString,
}

/// The set of artifacts a phase consumes or produces, sorted by name.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultSchema {
    /// Artifacts sorted by name.
    pub artifacts: RVec<ArtifactSchema>,
}

/// A schema text that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid result schema: {0}")]
pub struct SchemaError(String);

impl ResultSchema {
    /// An empty schema (no artifacts).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an artifact whose data description is `data` (any JSON value).
    pub fn with(mut self, name: &str, extension: &str, data: serde_json::Value) -> Self {
        self.artifacts.retain(|a| a.name.as_str() != name);
        self.artifacts.push(ArtifactSchema {
            name: name.into(),
            extension: extension.into(),
            data: canonical(&data).into(),
        });
        self.artifacts.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// Parses Spyral's JSON form: `{"name": {"extension": ".h5", "data": {...}}, ...}`.
    pub fn from_json(text: &str) -> Result<Self, SchemaError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SchemaError(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| SchemaError("the top level must be an object".into()))?;
        let mut schema = ResultSchema::new();
        for (name, art) in obj {
            let ext = art
                .get("extension")
                .and_then(|e| e.as_str())
                .ok_or_else(|| {
                    SchemaError(format!("artifact `{name}` has no string `extension`"))
                })?;
            let data = art.get("data").cloned().unwrap_or(serde_json::Value::Null);
            schema = schema.with(name, ext, data);
        }
        Ok(schema)
    }

    /// The schema in Spyral's JSON form, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        let mut map = serde_json::Map::new();
        for a in self.artifacts.iter() {
            let data: serde_json::Value =
                serde_json::from_str(a.data.as_str()).unwrap_or(serde_json::Value::Null);
            map.insert(
                a.name.to_string(),
                serde_json::json!({"extension": a.extension.as_str(), "data": data}),
            );
        }
        serde_json::to_string_pretty(&serde_json::Value::Object(map)).unwrap_or_default()
    }

    /// The artifact named `name`, if any.
    pub fn artifact(&self, name: &str) -> Option<&ArtifactSchema> {
        self.artifacts.iter().find(|a| a.name.as_str() == name)
    }
}

impl fmt::Display for ResultSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .artifacts
            .iter()
            .map(|a| format!("{}{}", a.name, a.extension))
            .collect();
        write!(f, "[{}]", names.join(", "))
    }
}

fn canonical(v: &serde_json::Value) -> String {
    // serde_json's Map is a BTreeMap (no preserve_order feature), so keys come out sorted.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_is_deep_and_ignores_key_order() {
        let a = ResultSchema::from_json(
            r#"{"cluster": {"extension": ".h5", "data": {"cluster": {"event": {"cluster": "array"}}}},
                "estimation": {"extension": ".parquet", "data": {"a": "int", "b": "float"}}}"#,
        )
        .unwrap();
        let b = ResultSchema::new()
            .with("estimation", ".parquet", json!({"b": "float", "a": "int"}))
            .with(
                "cluster",
                ".h5",
                json!({"cluster": {"event": {"cluster": "array"}}}),
            );
        assert_eq!(a, b);
        let c = b
            .clone()
            .with("estimation", ".parquet", json!({"a": "int"}));
        assert_ne!(a, c);
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(ResultSchema::from_json("[1,2]").is_err());
        assert!(ResultSchema::from_json(r#"{"x": {"data": 1}}"#).is_err());
    }
}
