//! The phase contract.
//!
//! [`PhaseLike`] is the `#[sabi_trait]` that crosses the plugin boundary; its layout is checked
//! by abi_stable when a plugin is loaded, so it must not change without a core version bump.
//! Plugin authors do not implement it directly: they implement the idiomatic [`Phase`] trait
//! with ordinary Rust types, and [`PhaseAdapter`] turns it into a `PhaseLike` that catches
//! panics at every call (a panic becomes [`PhaseErrorKind::Panic`] for that call, the process
//! lives on).

use crate::{
    chunk::EventRange,
    context::RunContext,
    error::{PhaseError, PhaseErrorKind},
    result::PhaseResult,
    schema::ResultSchema,
    shared::{SegmentAllocatorMut, SharedAllocator, SharedSegment},
    workspace::Workspace,
};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RErr, ROk, ROption, RResult, RSlice, RString, RVec},
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The stable-ABI phase interface. Method order and signatures are part of the ABI.
#[sabi_trait]
pub trait PhaseLike: Send + Sync {
    /// The phase's name (unique in a pipeline; also its artifact folder name).
    fn name(&self) -> RString;
    /// The phase kind it was made from.
    fn kind(&self) -> RString;
    /// The schema of the artifacts it reads (None: accepts anything); an error if the phase's
    /// code failed (a panic never means "accepts anything").
    fn incoming_schema(&self) -> RResult<ROption<ResultSchema>, PhaseError>;
    /// The schema of the artifacts it writes (None: unspecified), or the error that prevented it.
    fn outgoing_schema(&self) -> RResult<ROption<ResultSchema>, PhaseError>;
    /// Its configuration with every default filled in, as JSON text, or the error.
    fn resolved_config(&self) -> RResult<RString, PhaseError>;
    /// Builds the phase's assets (parent process, once per launch, active phases only).
    fn create_assets(&mut self, workspace: &Workspace) -> RResult<(), PhaseError>;
    /// Allocates and fills shared segments (parent process). The default does nothing.
    fn create_shared_data(
        &mut self,
        workspace: &Workspace,
        allocator: SegmentAllocatorMut<'_>,
    ) -> RResult<(), PhaseError> {
        let _ = (workspace, allocator);
        ROk(())
    }
    /// Receives this phase's sealed segments (worker process, before the first run).
    fn attach_shared(&mut self, segments: RVec<SharedSegment<'static>>) -> RResult<(), PhaseError>;
    /// The result this phase would have produced for `payload`'s run, without running
    /// (used for inactive phases).
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> RResult<PhaseResult, PhaseError>;
    /// Whether the phase can process a run in event chunks and merge them.
    fn splittable(&self) -> RResult<bool, PhaseError>;
    /// The event ids it would process for `payload`'s run (None: unknown or not splittable).
    /// Asked of the first active phase of a chain to plan chunks.
    fn events(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> RResult<ROption<EventRange>, PhaseError>;
    /// Merges the results of a run's chunks, in event order, into the run's artifacts.
    fn merge(
        &self,
        parts: RSlice<'_, PhaseResult>,
        context: &RunContext<'_>,
    ) -> RResult<PhaseResult, PhaseError>;
    /// Processes one run, or one chunk of it (`context.chunk()`).
    #[sabi(last_prefix_field)]
    fn run(
        &self,
        payload: &PhaseResult,
        context: &RunContext<'_>,
    ) -> RResult<PhaseResult, PhaseError>;
}

/// An owned phase object as returned by a plugin.
pub type PhaseBox = PhaseLike_TO<'static, RBox<()>>;

/// The trait plugin authors implement. Only `construct_artifact` and `run` are required.
pub trait Phase: Send + Sync + 'static {
    /// Schema of the artifacts it reads; `None` accepts anything.
    fn incoming_schema(&self) -> Option<ResultSchema> {
        None
    }
    /// Schema of the artifacts it writes; `None` is unspecified.
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        None
    }
    /// The resolved configuration as JSON text (see [`crate::config::to_text`]).
    fn resolved_config(&self) -> String {
        "{}".to_string()
    }
    /// Builds assets once per launch in the parent (e.g. a lookup table).
    fn create_assets(&mut self, _workspace: &Workspace) -> Result<(), PhaseError> {
        Ok(())
    }
    /// Allocates shared segments in the parent. Default: none.
    fn create_shared_data(
        &mut self,
        _workspace: &Workspace,
        _allocator: &mut SharedAllocator<'_, '_>,
    ) -> Result<(), PhaseError> {
        Ok(())
    }
    /// Receives the phase's sealed segments in a worker.
    fn attach_shared(&mut self, _segments: Vec<SharedSegment<'static>>) -> Result<(), PhaseError> {
        Ok(())
    }
    /// The conventional result for `payload`'s run without running.
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError>;
    /// Processes one run, or, when `ctx.chunk()` is set, only that chunk's events (writing at
    /// [`RunContext::artifact_path`]).
    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError>;
    /// Whether the phase can process chunks of a run and [`merge`](Phase::merge) them. The
    /// default is no: the host then runs whole runs through it.
    fn splittable(&self) -> bool {
        false
    }
    /// The event ids the phase would process for `payload`'s run (used to plan chunks when it
    /// is the first phase of a chain). Default: unknown.
    fn events(
        &self,
        _payload: &PhaseResult,
        _workspace: &Workspace,
    ) -> Result<Option<EventRange>, PhaseError> {
        Ok(None)
    }
    /// Merges the results of the run's chunks (`parts`, in event order) into the run's
    /// artifacts; the result must be byte-identical to an unsplit run. Only called when
    /// [`splittable`](Phase::splittable) says yes.
    fn merge(
        &self,
        _parts: &[PhaseResult],
        _ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        Err(PhaseError::internal(
            "this phase is not splittable: merge was not expected",
        ))
    }
}

/// Wraps a [`Phase`] as a [`PhaseLike`], catching panics in every call.
pub struct PhaseAdapter<P: Phase> {
    name: String,
    kind: String,
    resolved: Option<String>,
    inner: P,
}

impl<P: Phase> PhaseAdapter<P> {
    /// Wraps `inner` under `name` (from the pipeline) and `kind`.
    pub fn new(name: &str, kind: &str, inner: P) -> Self {
        PhaseAdapter {
            name: name.to_string(),
            kind: kind.to_string(),
            resolved: None,
            inner,
        }
    }
    /// Records the resolved configuration text (used instead of `Phase::resolved_config`).
    pub fn with_resolved_config(mut self, text: String) -> Self {
        self.resolved = Some(text);
        self
    }
    /// Boxes it as the object the host receives.
    pub fn into_box(self) -> PhaseBox {
        PhaseLike_TO::from_value(self, abi_stable::sabi_trait::TD_Opaque)
    }
}

/// Runs `f`, turning a panic into a `PhaseError::Panic` that names the call.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, PhaseError>) -> RResult<T, PhaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e),
        Err(payload) => RErr(PhaseError::new(
            PhaseErrorKind::Panic,
            format!(
                "{what} panicked: {}",
                crate::bridge::panic_message(&payload)
            ),
        )),
    }
}

impl<P: Phase> PhaseLike for PhaseAdapter<P> {
    fn name(&self) -> RString {
        self.name.as_str().into()
    }
    fn kind(&self) -> RString {
        self.kind.as_str().into()
    }
    fn incoming_schema(&self) -> RResult<ROption<ResultSchema>, PhaseError> {
        guard("incoming_schema", || {
            Ok(self.inner.incoming_schema().into())
        })
    }
    fn outgoing_schema(&self) -> RResult<ROption<ResultSchema>, PhaseError> {
        guard("outgoing_schema", || {
            Ok(self.inner.outgoing_schema().into())
        })
    }
    fn resolved_config(&self) -> RResult<RString, PhaseError> {
        if let Some(text) = &self.resolved {
            return ROk(text.as_str().into());
        }
        guard("resolved_config", || {
            Ok(self.inner.resolved_config().into())
        })
    }
    fn create_assets(&mut self, workspace: &Workspace) -> RResult<(), PhaseError> {
        guard("create_assets", || self.inner.create_assets(workspace))
    }
    fn create_shared_data(
        &mut self,
        workspace: &Workspace,
        mut allocator: SegmentAllocatorMut<'_>,
    ) -> RResult<(), PhaseError> {
        guard("create_shared_data", || {
            let mut alloc = SharedAllocator::new(&mut allocator);
            self.inner.create_shared_data(workspace, &mut alloc)
        })
    }
    fn attach_shared(&mut self, segments: RVec<SharedSegment<'static>>) -> RResult<(), PhaseError> {
        guard("attach_shared", || {
            self.inner.attach_shared(segments.into_vec())
        })
    }
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> RResult<PhaseResult, PhaseError> {
        guard("construct_artifact", || {
            self.inner.construct_artifact(payload, workspace)
        })
    }
    fn splittable(&self) -> RResult<bool, PhaseError> {
        guard("splittable", || Ok(self.inner.splittable()))
    }
    fn events(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> RResult<ROption<EventRange>, PhaseError> {
        guard("events", || {
            self.inner.events(payload, workspace).map(ROption::from)
        })
    }
    fn merge(
        &self,
        parts: RSlice<'_, PhaseResult>,
        context: &RunContext<'_>,
    ) -> RResult<PhaseResult, PhaseError> {
        guard("merge", || self.inner.merge(parts.as_slice(), context))
    }
    fn run(
        &self,
        payload: &PhaseResult,
        context: &RunContext<'_>,
    ) -> RResult<PhaseResult, PhaseError> {
        guard("run", || self.inner.run(payload, context))
    }
}
