//! The template phase: the smallest complete Spyral-rs plugin, documented line by line.
//!
//! For every run it reads one artifact of the previous phase (by default the raw `trace` file),
//! counts its bytes and computes a checksum, and writes `<workspace>/Template/run_NNNN.json`.
//! Replace the body of `run` with your analysis; keep the shape.

// Everything a phase needs comes from spyral-core's prelude.
use spyral_core::prelude::*;
// serde derives turn the `config:` block of the pipeline file into typed parameters.
use serde::{Deserialize, Serialize};
use std::io::Read;

// `default` fills any field the pipeline leaves out; `deny_unknown_fields` turns a typo into an
// error naming the field. `JsonSchema` (through spyral-core's re-export) turns these doc comments
// into `spyral plugins --doc template` and the pipeline's JSON Schema (the struct's doc is the
// description; a field doc ending `Unit: <unit>.` fills the unit column).
/// Parameters of the template phase: which input artifact it checksums, and how it reads it.
#[derive(Debug, Clone, Serialize, Deserialize, spyral_core::schemars::JsonSchema)]
#[schemars(crate = "spyral_core::schemars")]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// Which artifact of the previous phase to read (`trace` is the raw run file).
    pub input_artifact: String,
    /// Read buffer size. Unit: KiB.
    pub buffer_kib: usize,
}

/// The documented defaults, shown by `spyral plugins` and used for missing fields.
impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            input_artifact: "trace".to_string(),
            buffer_kib: 256,
        }
    }
}

/// The phase object: its name (from the pipeline) and its parameters.
pub struct TemplatePhase {
    name: String,
    config: TemplateConfig,
}

/// How spyral builds the phase: it parses the config for you and hands it over.
impl PhaseFactory for TemplatePhase {
    type Config = TemplateConfig;
    fn from_config(name: &str, config: TemplateConfig) -> Result<Self, PhaseError> {
        // Check values here, so a bad value fails at `spyral validate`, not mid-run.
        if config.buffer_kib == 0 {
            return Err(PhaseError::config("buffer_kib must be at least 1"));
        }
        Ok(TemplatePhase {
            name: name.to_string(),
            config,
        })
    }
}

/// What this phase writes: one `.json` artifact named `template`.
fn outgoing() -> ResultSchema {
    ResultSchema::new().with(
        "template",
        ".json",
        serde_json::json!({"run": "int", "input_bytes": "int", "fnv1a64": "string"}),
    )
}

impl Phase for TemplatePhase {
    /// `None`: this phase accepts whatever the previous phase produces.
    fn incoming_schema(&self) -> Option<ResultSchema> {
        None
    }

    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(outgoing())
    }

    /// Where the artifact of a run is, without running (used when the phase is inactive).
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        let path = workspace.artifact_path(payload.run_number, "json");
        Ok(PhaseResult::new(payload.run_number).with_artifact("template", path))
    }

    /// Processes one run.
    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        // 1. Find the input; `require` explains what is missing if anything is.
        let input = payload.require(&self.config.input_artifact)?;
        let total = std::fs::metadata(&input)
            .map_err(|e| PhaseError::io_at(&input, "cannot stat", &e))?
            .len();
        let mut file = std::fs::File::open(&input)
            .map_err(|e| PhaseError::io_at(&input, "cannot open", &e))?;

        // 2. Do the work, reporting progress (in bytes here) and honouring Ctrl-C.
        let mut buf = vec![0u8; self.config.buffer_kib * 1024];
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut done: u64 = 0;
        loop {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            let n = file
                .read(&mut buf)
                .map_err(|e| PhaseError::io_at(&input, "cannot read", &e))?;
            if n == 0 {
                break;
            }
            for b in &buf[..n] {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            done += n as u64;
            ctx.progress(done, total);
        }

        // 3. Write the artifact under a temporary name, then rename it: a crash never leaves
        //    a half-written file under the final name.
        let dest = ctx.workspace().artifact_path(ctx.run(), "json");
        let out = PartialFile::new(&dest)?;
        let text = serde_json::json!({
            "run": ctx.run(),
            "input_bytes": done,
            "fnv1a64": format!("{hash:016x}"),
        });
        std::fs::write(out.path(), format!("{text:#}\n"))
            .map_err(|e| PhaseError::io_at(out.path(), "cannot write", &e))?;
        let dest = out.commit()?;

        // 4. Log (this lands in the worker's log with the phase and run) and return the result.
        tracing::info!("{}: run {} read {done} bytes", self.name, ctx.run());
        let mut result = PhaseResult::new(ctx.run()).with_artifact("template", dest);
        result.set_metadata("bytes", done);
        Ok(result)
    }
}

// Export the library: its name, version and the phase kinds it provides.
spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [spyral_core::kind_with_schema::<TemplatePhase>(
        "template",
        "Template",
        "Checksums one input artifact per run and writes run_NNNN.json (a starting point for your own phase)",
    )],
}
