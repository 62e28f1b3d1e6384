//! The result schemas of the default phases, as Spyral declares them (spec section 4.1): the
//! artifact name, its extension and a nested description of its data.

use serde_json::json;
use spyral_core::ResultSchema;

/// The raw run file: `trace` (.h5).
pub fn trace() -> ResultSchema {
    ResultSchema::new().with("trace", ".h5", json!({"get": "array", "frib": "array"}))
}

/// Pointcloud's output: `pointcloud` (.h5).
pub fn pointcloud() -> ResultSchema {
    ResultSchema::new().with("pointcloud", ".h5", json!({"cloud": {"cloud": "array"}}))
}

/// Cluster's output: `cluster` (.h5).
pub fn cluster() -> ResultSchema {
    ResultSchema::new().with(
        "cluster",
        ".h5",
        json!({"cluster": {"event": {"cluster": "array"}}}),
    )
}

/// The Estimation parquet's columns and types, in order.
pub const ESTIMATION_INT_COLUMNS: [&str; 5] = [
    "event",
    "cluster_index",
    "cluster_label",
    "orig_run",
    "orig_event",
];
/// Float columns of the Estimation parquet, in order (after the int columns).
pub const ESTIMATION_FLOAT_COLUMNS: [&str; 17] = [
    "ic_amplitude",
    "ic_centroid",
    "ic_integral",
    "ic_multiplicity",
    "vertex_x",
    "vertex_y",
    "vertex_z",
    "center_x",
    "center_y",
    "center_z",
    "polar",
    "azimuthal",
    "brho",
    "dEdx",
    "sqrt_dEdx",
    "dE",
    "arclength",
];

/// Estimation's output: `estimation` (.parquet) plus the `cluster` file it read.
pub fn estimation() -> ResultSchema {
    let mut cols = serde_json::Map::new();
    for c in ESTIMATION_INT_COLUMNS {
        cols.insert(c.into(), json!("int"));
    }
    for c in ESTIMATION_FLOAT_COLUMNS {
        cols.insert(c.into(), json!("float"));
    }
    cols.insert("direction".into(), json!("int"));
    cluster().with("estimation", ".parquet", serde_json::Value::Object(cols))
}

/// The InterpSolver parquet's int columns, in order.
pub const SOLVER_INT_COLUMNS: [&str; 5] = [
    "event",
    "cluster_index",
    "cluster_label",
    "orig_run",
    "orig_event",
];
/// The InterpSolver parquet's float columns, in order.
pub const SOLVER_FLOAT_COLUMNS: [&str; 15] = [
    "vertex_x",
    "sigma_vx",
    "vertex_y",
    "sigma_vy",
    "vertex_z",
    "sigma_vz",
    "brho",
    "sigma_brho",
    "ke",
    "sigma_ke",
    "polar",
    "sigma_polar",
    "azimuthal",
    "sigma_azimuthal",
    "redchisq",
];

/// InterpSolver's output: `interp_solver` (.parquet).
pub fn interp_solver() -> ResultSchema {
    let mut cols = serde_json::Map::new();
    for c in SOLVER_INT_COLUMNS {
        cols.insert(c.into(), json!("int"));
    }
    for c in SOLVER_FLOAT_COLUMNS {
        cols.insert(c.into(), json!("float"));
    }
    ResultSchema::new().with("interp_solver", ".parquet", serde_json::Value::Object(cols))
}
