//! The phase chain: constructing every phase of a pipeline from its library and config, and
//! validating it (unique names, schema agreement between consecutive active phases) before
//! anything is created on disk.
//!
//! The parent builds the chain from the pipeline file once. Workers never read the file: they
//! rebuild exactly the validated chain from its [`ResolvedPhase`]s (kind, name, resolved
//! config, library path and code identity), which the parent sends in the job message.

use crate::identity::LibraryId;
use crate::pipeline::{PhaseSpec, Pipeline};
use crate::plugins::{Library, PluginError, Registry, Source};
use serde::{Deserialize, Serialize};
use spyral_core::{PhaseBox, PhaseErrorKind, ResultSchema, Workspace};
use std::path::{Path, PathBuf};

/// Errors while building or validating the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A plugin could not be loaded or the kind is unknown.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A phase refused its configuration or failed to construct.
    #[error("{file}:{line}: phase {name} ({kind}): {message}")]
    Construct {
        /// Pipeline file.
        file: String,
        /// Line of the offending entry or field.
        line: usize,
        /// Phase name.
        name: String,
        /// Phase kind.
        kind: String,
        /// The phase's message.
        message: String,
    },
    /// Two phases share a name.
    #[error("{file}:{line}: phase name `{name}` is used twice (first at line {first_line}); give one of them a different `name:`")]
    DuplicateName {
        /// Pipeline file.
        file: String,
        /// Line of the second use.
        line: usize,
        /// First use.
        first_line: usize,
        /// The name.
        name: String,
    },
    /// Consecutive active phases disagree on the artifacts.
    #[error("schema mismatch: phase {prev} produces\n{prev_schema}\nbut phase {next} expects\n{next_schema}")]
    Schema {
        /// Producer.
        prev: String,
        /// Consumer.
        next: String,
        /// What the producer writes.
        prev_schema: String,
        /// What the consumer reads.
        next_schema: String,
    },
    /// No phase is active.
    #[error("no phase of the pipeline is active")]
    NothingActive,
    /// A plugin library changed on disk after the parent validated the chain.
    #[error("plugin library {path} changed after the launch validated it (was {expected}, now {found}); rerun `spyral run` to use the new build")]
    LibraryChanged {
        /// The file.
        path: PathBuf,
        /// Identity the parent validated.
        expected: String,
        /// Identity found now.
        found: String,
    },
    /// A phase's schema or configuration getter failed (a panic included).
    #[error("phase {name} ({kind}): {call} failed: {message}")]
    Call {
        /// Phase name.
        name: String,
        /// Phase kind.
        kind: String,
        /// Which getter.
        call: &'static str,
        /// Its error.
        message: String,
    },
    /// A resolved phase could not be rebuilt in a worker.
    #[error("phase {name} ({kind}): cannot be rebuilt from its resolved configuration: {message}")]
    Rebuild {
        /// Phase name.
        name: String,
        /// Phase kind.
        kind: String,
        /// What failed.
        message: String,
    },
}

/// One phase of a validated chain, as the parent sends it to workers: everything needed to
/// construct exactly the phase the parent validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResolvedPhase {
    /// Position in the chain (0-based).
    pub index: usize,
    /// Phase kind.
    pub kind: String,
    /// Resolved name (also its folder name).
    pub name: String,
    /// Whether it runs.
    pub active: bool,
    /// The resolved configuration, every default filled in (JSON text).
    pub config: String,
    /// The library that provides it.
    pub library: LibraryId,
}

/// What the parent knows of a validated phase: no phase object (plugin code never runs in the
/// parent), only what the plugin host reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseView {
    /// What a worker needs to rebuild it (kind, name, active, resolved config, library).
    pub resolved: ResolvedPhase,
    /// Where its library came from, for people.
    pub source: String,
    /// Line of its entry in the pipeline file.
    pub line: usize,
    /// Whether it can process runs in event chunks (asked of active phases).
    #[serde(default)]
    pub splittable: bool,
}

impl PhaseView {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.resolved.name
    }
    /// Whether it runs.
    pub fn active(&self) -> bool {
        self.resolved.active
    }
    /// Its workspace in `pipeline`.
    pub fn workspace(&self, pipeline: &Pipeline) -> Workspace {
        Workspace::new(&pipeline.workspace, &pipeline.traces, &self.resolved.name)
    }
}

/// One constructed phase.
pub struct ChainPhase {
    /// Its pipeline entry.
    pub spec: PhaseSpec,
    /// The resolved name.
    pub name: String,
    /// Where its library came from.
    pub source: Source,
    /// The library's identity.
    pub library: LibraryId,
    /// The phase object.
    pub phase: PhaseBox,
    /// Its workspace (artifact and asset folders).
    pub workspace: Workspace,
    /// Its resolved configuration (JSON text), asked once at construction.
    pub config: String,
}

impl ChainPhase {
    /// The phase's workspace.
    pub fn workspace(&self) -> Workspace {
        self.workspace.clone()
    }
    /// Its resolved config (JSON text).
    pub fn resolved_config(&self) -> String {
        self.config.clone()
    }
    /// Its resolved config as a JSON value (`Null` if the phase returned invalid JSON).
    pub fn resolved_config_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.resolved_config()).unwrap_or(serde_json::Value::Null)
    }
    /// What the parent is told about it.
    pub fn view(&self) -> PhaseView {
        PhaseView {
            resolved: self.resolved(),
            source: self.source.to_string(),
            line: self.spec.line,
            splittable: false,
        }
    }
    /// What a worker needs to rebuild it.
    pub fn resolved(&self) -> ResolvedPhase {
        ResolvedPhase {
            index: self.spec.index,
            kind: self.spec.kind.clone(),
            name: self.name.clone(),
            active: self.spec.active,
            config: self.resolved_config(),
            library: self.library.clone(),
        }
    }
}

fn schema_text(s: &Option<ResultSchema>) -> String {
    match s {
        None => "  (any)".to_string(),
        Some(s) => s
            .to_json_pretty()
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Constructs every phase of `pipeline` with libraries from `registry`.
pub fn build(pipeline: &Pipeline, registry: &Registry) -> Result<Vec<ChainPhase>, ChainError> {
    build_with(
        pipeline,
        registry,
        &mut |_: &str, _: &str, _: &'static str| {},
    )
}

/// Like [`build`], announcing each plugin call (phase name, kind, call) before making it, so a
/// crash can be attributed.
pub fn build_with(
    pipeline: &Pipeline,
    registry: &Registry,
    on_call: &mut dyn FnMut(&str, &str, &'static str),
) -> Result<Vec<ChainPhase>, ChainError> {
    let file = pipeline.path.display().to_string();
    let mut out: Vec<ChainPhase> = Vec::new();
    for spec in &pipeline.phases {
        let (lib, info) = registry
            .find(&spec.kind)
            .ok_or_else(|| registry.unknown_kind(&spec.kind, format!(" ({file}:{})", spec.line)))?;
        let name = match &spec.name {
            Some(n) => n.clone(),
            None => {
                // A name written in the pipeline was checked when it was parsed; a plugin's
                // default name is checked here, by the same rule.
                let name = info.default_name.to_string();
                if let Some(problem) = crate::pipeline::phase_name_problem(&name) {
                    return Err(ChainError::Construct {
                        file: file.clone(),
                        line: spec.line,
                        name: format!("{name:?}"),
                        kind: spec.kind.clone(),
                        message: format!(
                            "the plugin's default phase name cannot be a folder name ({problem}); give the phase a `name:`"
                        ),
                    });
                }
                name
            }
        };
        if let Some(first) = out.iter().find(|c| c.name == name) {
            return Err(ChainError::DuplicateName {
                file: file.clone(),
                line: spec.line,
                first_line: first.spec.line,
                name,
            });
        }
        let config = spec
            .config
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default();
        on_call(&name, &spec.kind, "construction");
        let phase = lib.new_phase(&spec.kind, &name, &config).map_err(|e| {
            let line = match e.kind {
                PhaseErrorKind::Config => field_of(e.message())
                    .map(|f| pipeline.config_field_line(spec, &f))
                    .filter(|l| *l > 0)
                    .unwrap_or(if spec.config_line > 0 {
                        spec.config_line
                    } else {
                        spec.line
                    }),
                _ => spec.line,
            };
            ChainError::Construct {
                file: file.clone(),
                line,
                name: name.clone(),
                kind: spec.kind.clone(),
                message: e.to_string(),
            }
        })?;
        on_call(&name, &spec.kind, "resolved_config");
        let config = phase
            .resolved_config()
            .into_result()
            .map_err(|e| ChainError::Call {
                name: name.clone(),
                kind: spec.kind.clone(),
                call: "resolved_config",
                message: e.to_string(),
            })?
            .to_string();
        out.push(ChainPhase {
            spec: spec.clone(),
            workspace: Workspace::new(&pipeline.workspace, &pipeline.traces, &name),
            name,
            source: lib.source.clone(),
            library: lib.id.clone(),
            phase,
            config,
        });
    }
    Ok(out)
}

/// Rebuilds, in a worker, exactly the chain the parent validated: each library is loaded from
/// the path the parent used and must have the same code identity; each phase is constructed
/// from its resolved configuration.
pub fn rebuild(
    resolved: &[ResolvedPhase],
    workspace: &Path,
    traces: &Path,
) -> Result<Vec<ChainPhase>, ChainError> {
    let mut libraries: Vec<Library> = Vec::new();
    let mut out = Vec::new();
    for r in resolved {
        let have = libraries.iter().position(|l| l.id.path == r.library.path);
        let lib_index = match have {
            Some(i) => i,
            None => {
                let lib = match &r.library.path {
                    None => crate::plugins::builtin(),
                    Some(p) => crate::plugins::load(p)?,
                };
                if lib.id.code != r.library.code {
                    return Err(ChainError::LibraryChanged {
                        path: r
                            .library
                            .path
                            .clone()
                            .unwrap_or_else(|| PathBuf::from("(the spyral executable)")),
                        expected: r.library.code.clone(),
                        found: lib.id.code.clone(),
                    });
                }
                libraries.push(lib);
                libraries.len() - 1
            }
        };
        let lib = &libraries[lib_index];
        let phase =
            lib.new_phase(&r.kind, &r.name, &r.config)
                .map_err(|e| ChainError::Rebuild {
                    name: r.name.clone(),
                    kind: r.kind.clone(),
                    message: e.to_string(),
                })?;
        let value: Option<serde_json::Value> = serde_json::from_str(&r.config).ok();
        let config = phase
            .resolved_config()
            .into_result()
            .map_err(|e| ChainError::Rebuild {
                name: r.name.clone(),
                kind: r.kind.clone(),
                message: e.to_string(),
            })?
            .to_string();
        out.push(ChainPhase {
            spec: PhaseSpec {
                index: r.index,
                kind: r.kind.clone(),
                name: Some(r.name.clone()),
                active: r.active,
                config: value,
                line: 0,
                config_line: 0,
            },
            name: r.name.clone(),
            source: lib.source.clone(),
            library: lib.id.clone(),
            phase,
            workspace: Workspace::new(workspace, traces, &r.name),
            config,
        });
    }
    Ok(out)
}

/// The field path in a config error message (``at field `a.b` ``).
fn field_of(message: &str) -> Option<String> {
    let i = message.find("at field `")? + "at field `".len();
    let rest = &message[i..];
    let j = rest.find('`')?;
    let path = &rest[..j];
    // `unknown field` errors point at the parent; the unknown key is named in the message.
    let unknown = message
        .find("unknown field `")
        .map(|k| &message[k + "unknown field `".len()..])
        .and_then(|r| r.find('`').map(|e| r[..e].to_string()));
    Some(match unknown {
        Some(u) if !path.ends_with(&u) => format!("{path}.{u}"),
        _ => path.to_string(),
    })
}

/// Checks the schema chain over the active phases, like Spyral's `Pipeline.validate`: each
/// active phase's incoming schema must equal the previous active phase's outgoing schema
/// (a `None` on either side accepts anything).
pub fn validate(chain: &[ChainPhase]) -> Result<(), ChainError> {
    validate_with(chain, &mut |_: &str, _: &str, _: &'static str| {})
}

/// Like [`validate`], announcing each plugin call before making it.
pub fn validate_with(
    chain: &[ChainPhase],
    on_call: &mut dyn FnMut(&str, &str, &'static str),
) -> Result<(), ChainError> {
    let active: Vec<&ChainPhase> = chain.iter().filter(|c| c.spec.active).collect();
    if active.is_empty() {
        return Err(ChainError::NothingActive);
    }
    let mut call = |c: &ChainPhase, which: &'static str| {
        on_call(&c.name, &c.spec.kind, which);
        let r = if which == "incoming_schema" {
            c.phase.incoming_schema()
        } else {
            c.phase.outgoing_schema()
        };
        r.into_result()
            .map(Option::<ResultSchema>::from)
            .map_err(|e| ChainError::Call {
                name: c.name.clone(),
                kind: c.spec.kind.clone(),
                call: which,
                message: e.to_string(),
            })
    };
    // Every active phase answers both schema calls, so a failing getter is always an error.
    let mut schemas = Vec::new();
    for c in &active {
        schemas.push((call(c, "incoming_schema")?, call(c, "outgoing_schema")?));
    }
    for (i, pair) in active.windows(2).enumerate() {
        let (prev, next) = (pair[0], pair[1]);
        let out = &schemas[i].1;
        let inc = &schemas[i + 1].0;
        if let (Some(o), Some(i)) = (out, inc) {
            if o != i {
                return Err(ChainError::Schema {
                    prev: prev.name.clone(),
                    next: next.name.clone(),
                    prev_schema: schema_text(out),
                    next_schema: schema_text(inc),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_from_messages() {
        assert_eq!(
            field_of("phase X: invalid config at field `a.b`: unknown field `c`, expected one of"),
            Some("a.b.c".to_string())
        );
        assert_eq!(
            field_of("phase X: invalid config at field `a.size`: invalid type"),
            Some("a.size".to_string())
        );
        assert_eq!(field_of("no field here"), None);
    }
}
