//! # spyral-core: the Spyral-rs plugin contract
//!
//! This is the only crate a phase author depends on. It defines:
//!
//! - [`PhaseLike`], the stable-ABI (`abi_stable`) phase interface the host calls, and [`Phase`],
//!   the idiomatic trait a plugin implements (wrapped by [`PhaseAdapter`], which catches panics);
//! - [`PhaseResult`], [`ResultSchema`], [`PhaseError`], [`Workspace`] and [`RunContext`], the
//!   values that cross the boundary;
//! - shared segments ([`shared`]): the parent-side allocator and the worker-side read-only views;
//! - the plugin root module ([`plugin::PluginMod`]) and the [`export_plugin!`] macro, which also
//!   bridges the plugin's `tracing` events and panic messages to the host ([`bridge`]);
//! - typed configuration parsing ([`config`]) and deterministic seeds ([`seed`]).
//!
//! A minimal plugin:
//!
//! ```ignore
//! use spyral_core::prelude::*;
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config { threshold: f64 }
//!
//! struct MyPhase { name: String, config: Config }
//! impl PhaseFactory for MyPhase { /* from_config */ }
//! impl Phase for MyPhase { /* construct_artifact, run */ }
//!
//! spyral_core::export_plugin! {
//!     name: env!("CARGO_PKG_NAME"),
//!     version: env!("CARGO_PKG_VERSION"),
//!     kinds: [spyral_core::plugin::kind::<MyPhase>("my-phase", "MyPhase", "What it does")],
//! }
//! ```

// abi_stable's derives define impls inside functions (a pattern rustc now warns about).
#![allow(non_local_definitions)]
// abi_stable's `StableAbi` derive and `#[sabi_trait]` expand to `unsafe impl`s and unsafe
// calls in this crate. The unsafe code written by hand here is only the typed segment view
// (`shared::SharedSegment::as_slice`) and the exported loader symbol (`export_plugin!`), each
// with a `// SAFETY:` line.
#![allow(unsafe_code)]

pub mod bridge;
pub mod chunk;
pub mod config;
pub mod context;
pub mod error;
pub mod phase;
pub mod plugin;
pub mod result;
pub mod schema;
pub mod seed;
pub mod shared;
pub mod workspace;

pub use chunk::{Chunk, EventRange};
pub use context::{LogLevel, Progress, RunContext, RunSink};
pub use error::{PhaseError, PhaseErrorKind};
pub use phase::{Phase, PhaseAdapter, PhaseBox, PhaseLike};
pub use plugin::{
    kind, kind_with_schema, PhaseFactory, PluginInfo, PluginModRef, CORE_VERSION, RUSTC_VERSION,
};
pub use result::PhaseResult;
pub use schema::ResultSchema;
pub use shared::{ElementType, SharedAllocator, SharedSegment};
pub use workspace::{run_stem, PartialFile, Workspace};

/// Everything a phase implementation usually needs.
pub mod prelude {
    pub use crate::{
        config, kind, kind_with_schema, run_stem, Chunk, ElementType, EventRange, LogLevel,
        PartialFile, Phase, PhaseError, PhaseErrorKind, PhaseFactory, PhaseResult, Progress,
        ResultSchema, RunContext, SharedAllocator, SharedSegment, Workspace,
    };
}

/// Items the [`export_plugin!`] macro expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{
        __call_root_module_loader as call_root_module_loader, CheckTypeLayout, LibHeader,
        RootModuleResult,
    };
    pub use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::std_types::{ROption, RResult, RStr, RString};
}

pub use abi_stable;
/// The `schemars` a config's JSON Schema is derived with (see [`plugin::kind_with_schema`]).
pub use schemars;
