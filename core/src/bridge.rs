//! The bridge that carries a plugin's `tracing` events and panic messages to the host.
//!
//! A `cdylib` plugin links its own copy of std and of `tracing`, so its events would go to its
//! own (empty) global dispatcher and its panic messages to its own hook. When the host loads a
//! plugin it calls the root module's `install_bridge` with a [`HostBridge`] object; the plugin
//! side then installs a subscriber that formats each event and forwards it, and a panic hook
//! that forwards the panic message and location. Built-in phases share the host's std and
//! tracing and need no bridge.

use crate::context::LogLevel;
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RStr},
};
use std::any::Any;
use std::fmt::Write as _;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The host's receiving end of a plugin's log events.
#[sabi_trait]
pub trait HostBridge: Send + Sync + 'static {
    /// The most verbose level the host wants.
    fn max_level(&self) -> LogLevel;
    /// One formatted event from the plugin (`target` is the Rust module path).
    #[sabi(last_prefix_field)]
    fn event(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
}

/// An owned bridge object.
pub type HostBridgeBox = HostBridge_TO<RBox<()>>;

static BRIDGE: OnceLock<HostBridgeBox> = OnceLock::new();

/// The text of a panic payload.
pub fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}

struct Forward;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for Forward
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(bridge) = BRIDGE.get() else { return };
        let level = LogLevel::from_tracing(event.metadata().level());
        if level > bridge.max_level() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let _ = write!(text, "{}: ", span.name());
            }
        }
        text.push_str(&fields.message);
        text.push_str(&fields.rest);
        bridge.event(
            level,
            event.metadata().target().into(),
            text.as_str().into(),
        );
    }
}

/// Installs the bridge in this (plugin) copy of std and tracing. Called once per loaded library
/// by the host through the root module; later calls are ignored.
pub fn install(bridge: HostBridgeBox) {
    let max = bridge.max_level();
    if BRIDGE.set(bridge).is_err() {
        return;
    }
    let filter = match max {
        LogLevel::Error => tracing::level_filters::LevelFilter::ERROR,
        LogLevel::Warn => tracing::level_filters::LevelFilter::WARN,
        LogLevel::Info => tracing::level_filters::LevelFilter::INFO,
        LogLevel::Debug => tracing::level_filters::LevelFilter::DEBUG,
        LogLevel::Trace => tracing::level_filters::LevelFilter::TRACE,
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(Forward);
    let _ = tracing::subscriber::set_global_default(subscriber);
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(non-text panic payload)".into()),
        };
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Some(b) = BRIDGE.get() {
            b.event(
                LogLevel::Error,
                "panic".into(),
                format!("plugin panicked{loc}: {msg}").as_str().into(),
            );
        }
    }));
}
