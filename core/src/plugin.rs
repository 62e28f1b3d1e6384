//! The root module of a plugin library and the [`export_plugin!`](crate::export_plugin) macro.
//!
//! Every plugin `cdylib` exports one [`PluginMod`]: its versions, the phase kinds it provides
//! (with a description and default configuration), a constructor and, since 0.2 without a
//! layout break, a JSON Schema of each kind's configuration. abi_stable checks the layout of
//! this module and of everything reachable from it when the host loads the library, and refuses
//! a library built against an incompatible core.
//!
//! The configuration schema is generated with `schemars` from the config struct
//! ([`kind_with_schema`]): the doc comment of each field becomes its `description`, and its
//! `Default` value its `default`. By convention a physical quantity ends its doc comment with
//! `Unit: <unit>.` (e.g. `Unit: mm.`), which `spyral plugins --doc KIND` shows in a column.

use crate::{
    bridge::HostBridgeBox,
    config,
    error::PhaseError,
    phase::{Phase, PhaseAdapter, PhaseBox},
};
use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RErr, RNone, ROption, RResult, RSome, RStr, RString, RVec},
    StableAbi,
};
use serde::{de::DeserializeOwned, Serialize};

/// The version of spyral-core a library was built against.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustc that compiled this copy of spyral-core.
pub const RUSTC_VERSION: &str = env!("SPYRAL_RUSTC_VERSION");

/// One phase kind a library provides.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PhaseKindInfo {
    /// The kind, as written in a pipeline's `kind:` (e.g. `pointcloud`).
    pub kind: RString,
    /// The name a phase of this kind gets when the pipeline gives none (e.g. `Pointcloud`).
    pub default_name: RString,
    /// One line saying what it does.
    pub description: RString,
    /// The default configuration as JSON text.
    pub default_config: RString,
}

/// What a library says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin crate's name.
    pub library_name: RString,
    /// The plugin crate's version.
    pub library_version: RString,
    /// The spyral-core version it was built against.
    pub core_version: RString,
    /// The rustc it was built with.
    pub rustc_version: RString,
    /// The phase kinds it provides.
    pub kinds: RVec<PhaseKindInfo>,
}

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Versions and phase kinds.
    pub info: extern "C" fn() -> PluginInfo,
    /// Connects the library's tracing and panic hook to the host (called once after loading).
    pub install_bridge: extern "C" fn(bridge: HostBridgeBox),
    /// Makes a phase of `kind` named `name` from its JSON `config`.
    #[sabi(last_prefix_field)]
    pub new_phase: extern "C" fn(
        kind: RStr<'_>,
        name: RStr<'_>,
        config: RStr<'_>,
    ) -> RResult<PhaseBox, PhaseError>,
    /// The JSON Schema (text) of `kind`'s configuration, or none when the kind declares none.
    /// Appended after the prefix: libraries built before it still load, and the accessor
    /// returns `None` for them (as abi_stable's prefix types allow).
    #[sabi(missing_field(option))]
    pub config_schema: extern "C" fn(kind: RStr<'_>) -> ROption<RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "spyral_plugin";
    const NAME: &'static str = "spyral_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// One phase kind as a plugin author declares it (usually with [`kind`]).
#[derive(Clone, Copy)]
pub struct KindDecl {
    /// The kind (e.g. `charge-sum`).
    pub kind: &'static str,
    /// Default phase name (e.g. `ChargeSum`).
    pub default_name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The default configuration as JSON text.
    pub default_config: fn() -> String,
    /// Makes the phase from its name, kind and JSON config text.
    pub construct: fn(name: &str, kind: &str, config: &str) -> Result<PhaseBox, PhaseError>,
    /// The JSON Schema of the configuration as JSON text (set by [`kind_with_schema`]).
    pub config_schema: Option<fn() -> String>,
}

/// A phase type built from a typed configuration.
pub trait PhaseFactory: Phase + Sized {
    /// Its parameters: `#[serde(default, deny_unknown_fields)]` with documented defaults.
    type Config: Serialize + DeserializeOwned + Default;
    /// Builds the phase named `name` from its parsed parameters.
    fn from_config(name: &str, config: Self::Config) -> Result<Self, PhaseError>;
}

fn default_config_of<P: PhaseFactory>() -> String {
    config::to_text(&P::Config::default())
}

fn construct_of<P: PhaseFactory>(
    name: &str,
    kind: &str,
    config: &str,
) -> Result<PhaseBox, PhaseError> {
    let params: P::Config = config::parse(name, config)?;
    let resolved = config::to_text(&params);
    let phase = P::from_config(name, params)?;
    Ok(PhaseAdapter::new(name, kind, phase)
        .with_resolved_config(resolved)
        .into_box())
}

/// Declares phase kind `kind` implemented by `P`, named `default_name` unless the pipeline
/// names it, with a one-line `description`.
pub const fn kind<P: PhaseFactory>(
    kind: &'static str,
    default_name: &'static str,
    description: &'static str,
) -> KindDecl {
    KindDecl {
        kind,
        default_name,
        description,
        default_config: default_config_of::<P>,
        construct: construct_of::<P>,
        config_schema: None,
    }
}

fn config_schema_of<C: schemars::JsonSchema>() -> String {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<C>();
    serde_json::to_string(&schema).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// Like [`kind`], and the kind also describes its configuration: a JSON Schema generated from
/// `P::Config` (doc comments become descriptions, end one with `Unit: mm.` for a quantity;
/// defaults come from `Default`), shown by `spyral plugins --doc KIND` and merged into
/// `spyral schema`. Derive it with `#[derive(spyral_core::schemars::JsonSchema)]` and
/// `#[schemars(crate = "spyral_core::schemars")]` (or a direct `schemars` 1 dependency).
pub const fn kind_with_schema<P: PhaseFactory>(
    kind: &'static str,
    default_name: &'static str,
    description: &'static str,
) -> KindDecl
where
    P::Config: schemars::JsonSchema,
{
    KindDecl {
        kind,
        default_name,
        description,
        default_config: default_config_of::<P>,
        construct: construct_of::<P>,
        config_schema: Some(config_schema_of::<P::Config>),
    }
}

/// A library's declaration: its name, version and kinds.
pub struct PluginDecl {
    /// Crate name (use `env!("CARGO_PKG_NAME")`).
    pub name: &'static str,
    /// Crate version (use `env!("CARGO_PKG_VERSION")`).
    pub version: &'static str,
    /// Phase kinds provided.
    pub kinds: &'static [KindDecl],
}

impl PluginDecl {
    /// The info record sent to the host.
    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            library_name: self.name.into(),
            library_version: self.version.into(),
            core_version: CORE_VERSION.into(),
            rustc_version: RUSTC_VERSION.into(),
            kinds: self
                .kinds
                .iter()
                .map(|k| PhaseKindInfo {
                    kind: k.kind.into(),
                    default_name: k.default_name.into(),
                    description: k.description.into(),
                    default_config: crate::phase::guard("default_config", || {
                        Ok((k.default_config)())
                    })
                    .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.message()))
                    .into(),
                })
                .collect(),
        }
    }

    /// The JSON Schema text of `kind`'s configuration (None: unknown kind, no schema declared,
    /// or generating it panicked).
    pub fn config_schema(&self, kind: &str) -> ROption<RString> {
        let Some(make) = self
            .kinds
            .iter()
            .find(|k| k.kind == kind)
            .and_then(|k| k.config_schema)
        else {
            return RNone;
        };
        match crate::phase::guard("config_schema", || Ok(make())).into_result() {
            Ok(s) => RSome(s.into()),
            Err(_) => RNone,
        }
    }

    /// Constructs a phase, catching panics and naming the known kinds on a typo.
    pub fn new_phase(&self, kind: &str, name: &str, config: &str) -> RResult<PhaseBox, PhaseError> {
        let Some(decl) = self.kinds.iter().find(|k| k.kind == kind) else {
            let known: Vec<&str> = self.kinds.iter().map(|k| k.kind).collect();
            return RErr(PhaseError::config(format!(
                "library {} has no phase kind `{kind}` (it provides: {})",
                self.name,
                known.join(", ")
            )));
        };
        crate::phase::guard(&format!("constructing phase {name} ({kind})"), || {
            (decl.construct)(name, kind, config)
        })
    }
}

/// Exports a plugin's root module. Use once per `cdylib`, at the crate root:
///
/// ```ignore
/// spyral_core::export_plugin! {
///     name: env!("CARGO_PKG_NAME"),
///     version: env!("CARGO_PKG_VERSION"),
///     kinds: [MY_KIND],
/// }
/// ```
///
/// It defines `pub fn spyral_plugin_module() -> PluginModRef` (used by a host that links the
/// crate directly, as `spyral` does for its built-in phases) and the exported symbol abi_stable
/// looks for in a shared library.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, kinds: [$($kind:expr),* $(,)?] $(,)?) => {
        #[doc(hidden)]
        pub static SPYRAL_PLUGIN_DECL: $crate::plugin::PluginDecl = $crate::plugin::PluginDecl {
            name: $name,
            version: $version,
            kinds: &[$($kind),*],
        };

        /// The plugin's root module (also usable when the crate is linked directly).
        pub fn spyral_plugin_module() -> $crate::plugin::PluginModRef {
            extern "C" fn __spyral_info() -> $crate::plugin::PluginInfo {
                SPYRAL_PLUGIN_DECL.info()
            }
            extern "C" fn __spyral_install_bridge(bridge: $crate::bridge::HostBridgeBox) {
                $crate::bridge::install(bridge)
            }
            extern "C" fn __spyral_new_phase(
                kind: $crate::__private::RStr<'_>,
                name: $crate::__private::RStr<'_>,
                config: $crate::__private::RStr<'_>,
            ) -> $crate::__private::RResult<$crate::phase::PhaseBox, $crate::error::PhaseError> {
                SPYRAL_PLUGIN_DECL.new_phase(kind.as_str(), name.as_str(), config.as_str())
            }
            extern "C" fn __spyral_config_schema(
                kind: $crate::__private::RStr<'_>,
            ) -> $crate::__private::ROption<$crate::__private::RString> {
                SPYRAL_PLUGIN_DECL.config_schema(kind.as_str())
            }
            use $crate::__private::PrefixTypeTrait as _;
            $crate::plugin::PluginMod {
                info: __spyral_info,
                install_bridge: __spyral_install_bridge,
                new_phase: __spyral_new_phase,
                config_schema: __spyral_config_schema,
            }
            .leak_into_prefix()
        }

        // The symbol abi_stable's loader looks up; this is what `#[export_root_module]` expands
        // to, written out so that plugins need no direct abi_stable dependency.
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
            pub extern "C" fn __spyral_erased_module() -> $crate::__private::RootModuleResult {
                $crate::__private::call_root_module_loader(spyral_plugin_module)
            }
            // SAFETY: the constructor returns the module type named here and the layout of that
            // type is checked by the loader (CheckTypeLayout::Yes); this is the exact expansion
            // of abi_stable's `#[export_root_module]`.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::plugin::PluginModRef>(
                    __spyral_erased_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
