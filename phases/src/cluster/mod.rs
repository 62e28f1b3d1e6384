//! The Cluster phase (kind `cluster`, folder `Cluster`): point clouds to clusters (HDBSCAN,
//! outlier cleaning, joins), spyral-spec section 3.2.
//!
//! Per event of the Pointcloud artifact (`/cloud/cloud_<id>` for `min_event..=max_event`):
//! events whose z is not sorted are skipped with a warning; otherwise [`clusterize`] runs
//! HDBSCAN on `[x, y, 0.584·z]` ([`hdbscan`], scikit-learn semantics), cleans every cluster with
//! the Local Outlier Factor ([`lof`]), computes track directions and joins broken tracks
//! (continuity join, or overlap join), and cleans again. The artifact keeps Spyral's layout:
//!
//! - `/cluster` with attributes `min_event`, `max_event` (int64);
//! - `/cluster/event_<id>` (written even with 0 clusters) with attributes `nclusters` (int64),
//!   `orig_run`, `orig_event`, `ic_amplitude`, `ic_centroid`, `ic_integral`, `ic_multiplicity`
//!   (copied from the cloud, keeping integer or float type);
//! - `/cluster/event_<id>/cluster_<k>` with attributes `label` and `direction` (int64: -1 none,
//!   0 forward, 1 backward) and dataset `cloud`, float64 `(N, 5)` = `[x, y, z, integral, scale]`.
//!
//! Deviations from Spyral 1.1.2 (see also [`clusterize`]): tripclust is not implemented (a
//! configuration error); the overlap join works as intended (B's radius checked, merged
//! clusters rebuilt); a direction spline that cannot be fitted falls back to the raw points;
//! clouds with non-finite x, y or z are skipped with a warning; a cloud smaller than
//! `min_points` (or 2 points) gets no clusters instead of raising.
//!
//! Splittable: a chunk clusters the events of its range (the `/cluster` range attributes are
//! the input's, i.e. the run's) and writes them at its chunk path as a spill file
//! (`spyral_data::artifacts::spill`; a chunk's input is the Pointcloud chunk's spill file);
//! [`Phase::merge`] re-writes the chunks' events in id order through the same
//! [`ClusterWriter`], giving the bytes of a whole run.

pub mod clusterize;
pub mod hdbscan;
pub mod lof;

pub use clusterize::{cluster_event, Cluster, ClusterError, Direction, EventClusters};

use crate::chunking;
use clusterize::{CloudRow, CLOUD_COLUMNS, CLUSTER_COLUMNS};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
pub use spyral_data::artifacts::cluster::{
    ClusterArtifact, ClusterEventRecord, ClusterRecord, ClusterWriter, EVENT_ATTRS,
};
use spyral_data::artifacts::pointcloud::IC_ATTRS;
use spyral_data::artifacts::{spill, CloudFile};
use spyral_data::attpc::detector::DetectorParameters;
use spyral_data::attpc::h5util::{self, AttrNumber};
use std::path::Path;

/// HDBSCAN parameters (Spyral's `HdbscanParameters`), README defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HdbscanParameters {
    /// `min_samples`: neighbourhood size, the point itself included, of the core distance
    /// (default 3). Unit: points.
    pub min_points: usize,
    /// `min_cluster_size = max(int(min_size_scale_factor · N), min_size_lower_cutoff)` for a
    /// cloud of N points (default 0.03).
    pub min_size_scale_factor: f64,
    /// Lower bound of `min_cluster_size` (default 10; at least 2). Unit: points.
    pub min_size_lower_cutoff: usize,
    /// Clusters born below this distance (in the x, y, 0.584·z space, mm) are merged into
    /// their parent (default 10.0; 0 disables). Unit: mm.
    pub cluster_selection_epsilon: f64,
}

impl Default for HdbscanParameters {
    fn default() -> Self {
        HdbscanParameters {
            min_points: 3,
            min_size_scale_factor: 0.03,
            min_size_lower_cutoff: 10,
            cluster_selection_epsilon: 10.0,
        }
    }
}

/// Continuity-join parameters (Spyral's `ContinuityJoinParameters`), README defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ContinuityJoinParameters {
    /// Fraction of the mean circle radius of the two clusters under which the radial gap
    /// between A's end and B's start must fall (default 0.4).
    pub join_radius_fraction: f64,
    /// Fraction of the joint z extent under which the z gap must fall (default 0.2).
    pub join_z_fraction: f64,
}

impl Default for ContinuityJoinParameters {
    fn default() -> Self {
        ContinuityJoinParameters {
            join_radius_fraction: 0.4,
            join_z_fraction: 0.2,
        }
    }
}

/// Overlap-join parameters (Spyral's `OverlapJoinParameters`); defaults from the documented
/// "overlap" recipe, used when `overlap_join: {}` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OverlapJoinParameters {
    /// Merge when the circles' intersection exceeds this fraction of the smaller circle's
    /// area (default 0.25).
    pub circle_overlap_ratio: f64,
    /// Clusters with fewer points are never joined (default 15). Unit: points.
    pub min_cluster_size_join: usize,
}

impl Default for OverlapJoinParameters {
    fn default() -> Self {
        OverlapJoinParameters {
            circle_overlap_ratio: 0.25,
            min_cluster_size_join: 15,
        }
    }
}

/// Cluster parameters (Spyral's `ClusterParameters`, README-newest defaults) plus the detector
/// parameters Spyral hands the phase.
///
/// `hdbscan` must be set: Spyral's alternative, tripclust (a C++ extension), is not
/// implemented, and a configuration that sets `tripclust` or sets `hdbscan` to null is
/// rejected. `continuity_join` takes precedence over `overlap_join`; with neither, every
/// direction stays NONE (and Estimation rejects every cluster, as in Spyral).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Clouds with fewer points get no clusters (default 50). Unit: points.
    pub min_cloud_size: usize,
    /// HDBSCAN parameters (default: the README values; must not be null).
    #[serde(alias = "hdbscan_parameters")]
    pub hdbscan: Option<HdbscanParameters>,
    /// Not supported: any non-null value is a configuration error.
    #[serde(
        alias = "tripclust_parameters",
        skip_serializing_if = "Option::is_none"
    )]
    pub tripclust: Option<serde_json::Value>,
    /// Continuity join (default: the README values; null disables).
    pub continuity_join: Option<ContinuityJoinParameters>,
    /// Overlap join (default null).
    pub overlap_join: Option<OverlapJoinParameters>,
    /// Share of increasing (decreasing) azimuth steps above which a track is FORWARD
    /// (BACKWARD) (default 0.5).
    pub direction_threshold: f64,
    /// LOF `n_neighbors = max(2, int(outlier_scale_factor · n))` (default 0.1).
    pub outlier_scale_factor: f64,
    /// Detector parameters (not used by the clustering itself).
    pub detector: DetectorParameters,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            min_cloud_size: 50,
            hdbscan: Some(HdbscanParameters::default()),
            tripclust: None,
            continuity_join: Some(ContinuityJoinParameters::default()),
            overlap_join: None,
            direction_threshold: 0.5,
            outlier_scale_factor: 0.1,
            detector: DetectorParameters::default(),
        }
    }
}

impl ClusterConfig {
    /// Checks every value; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.tripclust.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("tripclust is not supported by Spyral-rs: configure `hdbscan` and remove `tripclust`".into());
        }
        let Some(h) = &self.hdbscan else {
            return Err("`hdbscan` must be set (tripclust, Spyral's alternative, is not supported by Spyral-rs)".into());
        };
        if h.min_points < 1 {
            return Err("hdbscan.min_points must be at least 1".into());
        }
        if h.min_size_lower_cutoff < 2 {
            return Err(format!(
                "hdbscan.min_size_lower_cutoff = {} must be at least 2",
                h.min_size_lower_cutoff
            ));
        }
        let finite_nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} = {v} must be a finite, non-negative number"
                ))
            }
        };
        finite_nonneg("hdbscan.min_size_scale_factor", h.min_size_scale_factor)?;
        finite_nonneg(
            "hdbscan.cluster_selection_epsilon",
            h.cluster_selection_epsilon,
        )?;
        if let Some(c) = &self.continuity_join {
            finite_nonneg(
                "continuity_join.join_radius_fraction",
                c.join_radius_fraction,
            )?;
            finite_nonneg("continuity_join.join_z_fraction", c.join_z_fraction)?;
        }
        if let Some(o) = &self.overlap_join {
            finite_nonneg("overlap_join.circle_overlap_ratio", o.circle_overlap_ratio)?;
        }
        if !self.direction_threshold.is_finite() {
            return Err(format!(
                "direction_threshold = {} must be a finite number",
                self.direction_threshold
            ));
        }
        finite_nonneg("outlier_scale_factor", self.outlier_scale_factor)?;
        self.detector
            .validate()
            .map_err(|e| format!("detector: {e}"))?;
        Ok(())
    }
}

/// The phase.
pub struct ClusterPhase {
    name: String,
    config: ClusterConfig,
}

impl ClusterPhase {
    /// The validated configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }
}

impl PhaseFactory for ClusterPhase {
    type Config = ClusterConfig;
    fn from_config(name: &str, config: ClusterConfig) -> Result<Self, PhaseError> {
        config
            .validate()
            .map_err(|e| PhaseError::config(format!("phase {name}: {e}")))?;
        if config.continuity_join.is_some() && config.overlap_join.is_some() {
            tracing::info!(
                "phase {name}: both continuity_join and overlap_join are set; the continuity join is used"
            );
        }
        Ok(ClusterPhase {
            name: name.to_string(),
            config,
        })
    }
}

/// Why an event's cloud is not clustered.
enum Skip {
    Unsorted(usize),
    NonFinite(usize),
}

fn check_cloud(rows: &[CloudRow]) -> Option<Skip> {
    if let Some(i) = rows
        .iter()
        .position(|r| !(r[0].is_finite() && r[1].is_finite() && r[2].is_finite()))
    {
        return Some(Skip::NonFinite(i));
    }
    rows.windows(2)
        .position(|w| w[1][2] - w[0][2] < 0.0)
        .map(|i| Skip::Unsorted(i + 1))
}

/// The `/cloud` range attributes of a point-cloud file.
fn cloud_range(
    clouds: &hdf5::Group,
    bad: impl Fn(String) -> PhaseError,
) -> Result<(i64, i64), PhaseError> {
    let bound = |name: &str| -> Result<i64, PhaseError> {
        h5util::attr_i64(clouds, name)
            .map_err(|e| bad(format!("/cloud: {e}")))?
            .ok_or_else(|| bad(format!("/cloud has no `{name}` attribute")))
    };
    Ok((bound("min_event")?, bound("max_event")?))
}

/// One event of the point-cloud input: the cloud and the [`EVENT_ATTRS`] values it carries
/// (`None` where an attribute is absent).
type InputEvent = (Array2<f64>, [Option<AttrNumber>; 6]);

/// The point-cloud input of a call: an HDF5 artifact in Spyral's layout (any producer's:
/// attributes keep their stored type, absent ones are tolerated) or the spill file of a chunk
/// (what this crate's Pointcloud writes for a chunk), with its `min_event`/`max_event`.
enum CloudInput {
    Hdf5 {
        clouds: hdf5::Group,
        _file: hdf5::File,
        range: (i64, i64),
        /// The ids of its `cloud_<id>` datasets, sorted.
        present: Vec<i64>,
    },
    Spill(CloudFile),
}

impl CloudInput {
    /// Opens `src`; `bad` turns a problem into the error naming the file.
    fn open(src: &Path, bad: &impl Fn(String) -> PhaseError) -> Result<Self, PhaseError> {
        if spill::is_spill(src) {
            return Ok(CloudInput::Spill(CloudFile::open(src)?));
        }
        let file = hdf5::File::open(src).map_err(|e| bad(format!("cannot open: {e}")))?;
        let clouds = file
            .group("cloud")
            .map_err(|e| bad(format!("no `cloud` group: {e}")))?;
        let range = cloud_range(&clouds, bad)?;
        let mut present: Vec<i64> = clouds
            .member_names()
            .map_err(|e| bad(format!("/cloud: cannot list: {e}")))?
            .iter()
            .filter_map(|n| n.strip_prefix("cloud_")?.parse().ok())
            .collect();
        present.sort_unstable();
        Ok(CloudInput::Hdf5 {
            clouds,
            _file: file,
            range,
            present,
        })
    }

    /// The ids in `first..=last` the input holds a cloud for, in order: what a call iterates,
    /// so a damaged `max_event` near 2^63 costs nothing.
    fn ids_in(&self, first: i64, last: i64) -> Vec<i64> {
        let inside = |&id: &i64| (first..=last).contains(&id);
        match self {
            CloudInput::Hdf5 { present, .. } => present.iter().copied().filter(inside).collect(),
            CloudInput::Spill(f) => f
                .ids
                .iter()
                .filter_map(|&id| i64::try_from(id).ok())
                .filter(inside)
                .collect(),
        }
    }

    /// `min_event` and `max_event`.
    fn range(&self) -> (i64, i64) {
        match self {
            CloudInput::Hdf5 { range, .. } => *range,
            CloudInput::Spill(f) => f.range,
        }
    }

    /// Event `id`, or `None` when the input has no cloud for it.
    fn event(
        &self,
        id: i64,
        bad: &impl Fn(String) -> PhaseError,
    ) -> Result<Option<InputEvent>, PhaseError> {
        let name = format!("cloud_{id}");
        let clouds = match self {
            CloudInput::Spill(f) => {
                let Some(id) = u64::try_from(id)
                    .ok()
                    .filter(|i| f.ids.binary_search(i).is_ok())
                else {
                    return Ok(None);
                };
                let r = f.read(id)?;
                let attrs = EVENT_ATTRS.map(|attr| match attr {
                    "orig_run" => Some(AttrNumber::Signed(r.orig_run)),
                    "orig_event" => Some(AttrNumber::Signed(r.orig_event)),
                    ic => IC_ATTRS
                        .iter()
                        .position(|&n| n == ic)
                        .map(|k| AttrNumber::Float(r.ic[k])),
                });
                return Ok(Some((r.cloud, attrs)));
            }
            CloudInput::Hdf5 { clouds, .. } => clouds,
        };
        let Some(ds) = h5util::opt_dataset(clouds, &name) else {
            return Ok(None);
        };
        let cloud: Array2<f64> = h5util::read_f64_matrix(&ds)
            .map_err(|e| bad(format!("/cloud/{name}: cannot read: {e}")))?;
        let mut attrs = [None; 6];
        for (slot, attr) in attrs.iter_mut().zip(EVENT_ATTRS) {
            *slot =
                h5util::attr_number(&ds, attr).map_err(|e| bad(format!("/cloud/{name}: {e}")))?;
        }
        Ok(Some((cloud, attrs)))
    }
}

impl Phase for ClusterPhase {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::pointcloud())
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::cluster())
    }
    fn resolved_config(&self) -> String {
        config::to_text(&self.config)
    }
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(payload.run_number)
            .with_artifact("cluster", workspace.artifact_path(payload.run_number, "h5")))
    }

    fn splittable(&self) -> bool {
        true
    }

    fn events(
        &self,
        payload: &PhaseResult,
        _workspace: &Workspace,
    ) -> Result<Option<EventRange>, PhaseError> {
        let src = payload.require("pointcloud")?;
        let bad = |what: String| PhaseError::invalid_input(format!("{}: {what}", src.display()));
        let (a, b) = CloudInput::open(&src, &bad)?.range();
        Ok(chunking::event_range(a, b))
    }

    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        let src = payload.require("pointcloud")?;
        let bad = |what: String| {
            PhaseError::invalid_input(format!("run {run}: {}: {what}", src.display()))
        };
        let input = CloudInput::open(&src, &bad)?;
        let (min_event, max_event) = input.range();
        let writer =
            ClusterWriter::create_for(ctx, &ctx.artifact_path("h5"), min_event, max_event)?;

        // The run's ids, or those of the chunk, that have a cloud.
        let (first, last) = chunking::id_range(ctx, min_event, max_event).unwrap_or((0, -1));
        let ids = input.ids_in(first, last);
        let mut progress = Progress::new(ctx, ids.len() as u64);
        let (mut events, mut skipped, mut n_clusters) = (0u64, 0u64, 0u64);
        let mut warned_attrs = false;
        let mut rows: Vec<CloudRow> = Vec::new();
        for id in ids {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            progress.tick();
            let Some((cloud, stored)) = input.event(id, &bad)? else {
                continue;
            };
            let name = format!("cloud_{id}");
            if cloud.ncols() < CLOUD_COLUMNS {
                return Err(bad(format!(
                    "/cloud/{name} has {} columns, expected {CLOUD_COLUMNS}",
                    cloud.ncols()
                )));
            }
            rows.clear();
            rows.extend(cloud.outer_iter().map(|r| {
                let mut row = [0.0; CLOUD_COLUMNS];
                for (d, s) in row.iter_mut().zip(r.iter()) {
                    *d = *s;
                }
                row
            }));
            match check_cloud(&rows) {
                Some(Skip::Unsorted(i)) => {
                    tracing::warn!(
                        "{}: run {run}, event {id}: the cloud is not sorted by z (row {i}); event skipped",
                        self.name
                    );
                    skipped += 1;
                    continue;
                }
                Some(Skip::NonFinite(i)) => {
                    tracing::warn!(
                        "{}: run {run}, event {id}: row {i} has a non-finite x, y or z; event skipped",
                        self.name
                    );
                    skipped += 1;
                    continue;
                }
                None => {}
            }
            let result = cluster_event(&rows, &self.config).map_err(|e| {
                PhaseError::internal(format!("run {run}, event {id}: clustering failed: {e}"))
            })?;

            let mut attrs = [AttrNumber::Signed(0); 6];
            for ((slot, attr), value) in attrs.iter_mut().zip(EVENT_ATTRS).zip(stored) {
                *slot = match value {
                    Some(v) => v,
                    None => {
                        if !warned_attrs {
                            tracing::warn!(
                                "{}: run {run}: /cloud/{name} has no `{attr}` attribute; using the run number, the event number or -1 (warned once per run)",
                                self.name
                            );
                            warned_attrs = true;
                        }
                        match attr {
                            "orig_run" => AttrNumber::Signed(i64::from(run)),
                            "orig_event" => AttrNumber::Signed(id),
                            _ => AttrNumber::Float(-1.0),
                        }
                    }
                };
            }
            let clusters = result
                .clusters
                .iter()
                .map(|c| {
                    Array2::from_shape_vec(
                        (c.data.len(), CLUSTER_COLUMNS),
                        c.data.iter().flatten().copied().collect(),
                    )
                    .map(|cloud| ClusterRecord {
                        label: c.label,
                        direction: c.direction.code(),
                        cloud,
                    })
                    .map_err(|e| PhaseError::internal(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer.write(&ClusterEventRecord {
                id,
                attrs,
                clusters,
            })?;
            events += 1;
            n_clusters += result.clusters.len() as u64;
        }
        let dest = writer.finish()?;
        tracing::info!(
            "{}: run {run}{}: {events} events, {n_clusters} clusters, {skipped} events skipped",
            self.name,
            ctx.events().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        let mut result = PhaseResult::new(run).with_artifact("cluster", dest);
        result.set_metadata("events", events);
        result.set_metadata("clusters", n_clusters);
        result.set_metadata("skipped_events", skipped);
        Ok(result)
    }

    fn merge(
        &self,
        parts: &[PhaseResult],
        ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        chunking::check_parts(&self.name, parts, run)?;
        let files = chunking::part_paths(&self.name, parts, "cluster")?;
        let range = ClusterArtifact::open(&files[0])?.range;
        let writer =
            ClusterWriter::create(&ctx.workspace().artifact_path(run, "h5"), range.0, range.1)?;
        let mut progress = Progress::new(ctx, files.len() as u64);
        for path in &files {
            let part = ClusterArtifact::open(path)?;
            for &id in &part.ids {
                if ctx.cancelled() {
                    return Err(PhaseError::cancelled());
                }
                writer.write(&part.read(id)?)?;
            }
            progress.tick();
        }
        let dest = writer.finish()?;
        let result = PhaseResult::new(run).with_artifact("cluster", dest);
        Ok(chunking::with_metadata(
            result,
            chunking::sum_metadata(parts),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c: ClusterConfig = config::parse("Cluster", "").unwrap();
        assert_eq!(c, ClusterConfig::default());
        assert!(c.validate().is_ok());
        let h = c.hdbscan.as_ref().unwrap();
        assert_eq!((h.min_points, h.min_size_lower_cutoff), (3, 10));
        assert_eq!(c.continuity_join, Some(ContinuityJoinParameters::default()));
        assert!(c.overlap_join.is_none());

        let t: ClusterConfig = config::parse("Cluster", r#"{"tripclust": {"r": 6}}"#).unwrap();
        assert!(t.validate().unwrap_err().contains("tripclust"));
        let t: ClusterConfig = config::parse("Cluster", r#"{"hdbscan": null}"#).unwrap();
        assert!(t.validate().unwrap_err().contains("tripclust"));
        let e = ClusterPhase::from_config("Cluster", t).err().unwrap();
        assert_eq!(e.kind, PhaseErrorKind::Config);

        let o: ClusterConfig = config::parse(
            "Cluster",
            r#"{"continuity_join": null, "overlap_join": {}, "hdbscan_parameters": {"min_points": 5}}"#,
        )
        .unwrap();
        assert_eq!(o.overlap_join, Some(OverlapJoinParameters::default()));
        assert_eq!(o.hdbscan.as_ref().unwrap().min_points, 5);
        assert!(
            config::parse::<ClusterConfig>("Cluster", r#"{"hdbscan": {"min_pts": 5}}"#).is_err()
        );
        let bad: ClusterConfig =
            config::parse("Cluster", r#"{"hdbscan": {"min_size_lower_cutoff": 1}}"#).unwrap();
        assert!(bad.validate().is_err());
    }
}
