//! # spyral-host: the `spyral` command
//!
//! The binary (`src/main.rs`) is a thin clap front end over these modules:
//!
//! - [`pipeline`]: the YAML pipeline file;
//! - [`plugins`]: finding, loading and checking plugin libraries;
//! - [`chain`]: constructing the phases and validating the schema chain;
//! - [`runs`]: collecting runs and planning them over workers (snake, dynamic);
//! - [`protocol`]: the typed messages between the parent and its workers;
//! - [`provenance`]: provenance records beside artifacts, and the resume rule;
//! - [`worker`]: the hidden `spyral worker` process;
//! - [`parent`]: the parent side of `spyral run` (spawn, collect, display, report);
//! - [`segments`]: shared read-only memory segments (memfd);
//! - [`slurm`]: `spyral slurm`, sbatch scripts for job arrays;
//! - [`logs`]: per-launch log folders and log files;
//! - [`status`]: `spyral status`, the per-run, per-phase state table;
//! - [`scaffold`]: `spyral new-phase`;
//! - [`demo`]: `spyral simulate` and `spyral demo` (through the simulator, `spyral-sim`).

pub mod chain;
pub mod demo;
pub mod dispatch;
pub mod display;
pub mod execute;
pub mod fdpass;
pub mod identity;
pub mod launch;
pub mod locks;
pub mod logs;
pub mod parent;
pub mod pipeline;
pub mod plugin_host;
pub mod plugins;
pub mod protocol;
pub mod provenance;
pub mod reference;
pub mod report;
pub mod report_cmd;
pub mod runs;
pub mod scaffold;
pub mod sdk;
pub mod segments;
pub mod slurm;
pub mod status;
pub mod supervise;
pub mod worker;
