//! The particle-identification gate: Spyral's PID JSON (`{"name", "vertices": [[x, y], ...],
//! "Z", "A", optional "xaxis"/"yaxis"}`), the nucleus it selects, and a strict point-in-polygon
//! test (shapely `contains` semantics: points on the boundary are outside).
//!
//! The gate's axes are Estimation columns: `dEdx` (x) and `brho` (y) unless **both** `xaxis`
//! and `yaxis` are given, as in Spyral.

use serde_json::Value;
use spyral_data::physics::Nucleus;
use std::path::{Path, PathBuf};

/// Why a PID file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// The file could not be read.
    #[error("cannot read particle-ID file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("particle-ID file {path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A required field is missing or has the wrong type, or the polygon is degenerate.
    #[error("particle-ID file {path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: PidProblem,
    },
}

/// What is wrong with the contents of a PID gate.
#[derive(Debug, thiserror::Error)]
pub enum PidProblem {
    /// The top level is not an object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// No `vertices` list.
    #[error("missing \"vertices\" (a list of [x, y] pairs)")]
    NoVertices,
    /// A vertex is not an `[x, y]` pair of numbers.
    #[error("\"vertices\" must be a list of [x, y] number pairs")]
    BadVertex,
    /// Fewer than 3 distinct points, or a non-finite coordinate.
    #[error("\"vertices\" must hold at least 3 distinct finite points")]
    Degenerate,
    /// `Z` or `A` is missing or not a non-negative integer.
    #[error("missing or invalid \"{0}\" (a non-negative integer)")]
    BadInteger(&'static str),
    /// No such nucleus in the mass table.
    #[error(transparent)]
    Nucleus(#[from] spyral_data::physics::PhysicsError),
    /// `Z = 0`.
    #[error("Z = 0: a neutral particle has no track to fit")]
    Neutral,
}

/// A PID gate and the nucleus it selects.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticleId {
    /// The gate's name.
    pub name: String,
    /// Polygon vertices (closing vertex optional).
    pub vertices: Vec<[f64; 2]>,
    /// Estimation column on the x axis.
    pub x_axis: String,
    /// Estimation column on the y axis.
    pub y_axis: String,
    /// The selected nucleus (AME2020 mass).
    pub nucleus: Nucleus,
}

impl ParticleId {
    /// Reads a PID JSON file.
    pub fn from_file(path: &Path) -> Result<Self, PidError> {
        let text = std::fs::read_to_string(path).map_err(|source| PidError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| PidError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&value).map_err(|problem| PidError::Invalid {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses the PID JSON value; the error text says which field is wrong.
    pub fn from_json(value: &Value) -> Result<Self, PidProblem> {
        let obj = value.as_object().ok_or(PidProblem::NotAnObject)?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let vertices = obj
            .get("vertices")
            .and_then(Value::as_array)
            .ok_or(PidProblem::NoVertices)?
            .iter()
            .map(|v| {
                let p = v.as_array().filter(|p| p.len() == 2)?;
                Some([p[0].as_f64()?, p[1].as_f64()?])
            })
            .collect::<Option<Vec<[f64; 2]>>>()
            .ok_or(PidProblem::BadVertex)?;
        let distinct = {
            let mut v = vertices.clone();
            if v.len() > 1 && v.first() == v.last() {
                v.pop();
            }
            v.len()
        };
        if distinct < 3 || vertices.iter().flatten().any(|c| !c.is_finite()) {
            return Err(PidProblem::Degenerate);
        }
        let int = |key: &'static str| -> Result<u32, PidProblem> {
            obj.get(key)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(PidProblem::BadInteger(key))
        };
        let (z, a) = (int("Z")?, int("A")?);
        let nucleus = Nucleus::new(z, a)?;
        if z == 0 {
            return Err(PidProblem::Neutral);
        }
        let axis = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
        let (x_axis, y_axis) = match (axis("xaxis"), axis("yaxis")) {
            (Some(x), Some(y)) => (x, y),
            _ => ("dEdx".to_string(), "brho".to_string()),
        };
        Ok(ParticleId {
            name,
            vertices,
            x_axis,
            y_axis,
            nucleus,
        })
    }

    /// Whether `(x, y)` is strictly inside the polygon (boundary points are outside, NaN is
    /// outside).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        polygon_contains(&self.vertices, x, y)
    }
}

/// Strict point-in-polygon test (even-odd rule; points on an edge or vertex are outside).
pub fn polygon_contains(vertices: &[[f64; 2]], x: f64, y: f64) -> bool {
    if !(x.is_finite() && y.is_finite()) || vertices.len() < 3 {
        return false;
    }
    let n = vertices.len();
    let mut inside = false;
    for i in 0..n {
        let [x1, y1] = vertices[i];
        let [x2, y2] = vertices[(i + 1) % n];
        // On the edge: collinear and within its bounding box.
        let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
        if cross == 0.0 && x >= x1.min(x2) && x <= x1.max(x2) && y >= y1.min(y2) && y <= y1.max(y2)
        {
            return false;
        }
        if (y1 > y) != (y2 > y) {
            let xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1);
            if x < xc {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn square_strictly_inside() {
        let sq = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        assert!(polygon_contains(&sq, 1.0, 1.0));
        assert!(!polygon_contains(&sq, 2.0, 1.0));
        assert!(!polygon_contains(&sq, 0.0, 0.0));
        assert!(!polygon_contains(&sq, 1.0, 2.0));
        assert!(!polygon_contains(&sq, 3.0, 1.0));
        assert!(!polygon_contains(&sq, f64::NAN, 1.0));
        // A concave polygon.
        let c = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [2.0, 1.0], [0.0, 4.0]];
        assert!(polygon_contains(&c, 1.0, 1.0));
        assert!(!polygon_contains(&c, 2.0, 3.0));
    }

    #[test]
    fn parses_spyral_pid_json() {
        let v = json!({"name": "p", "vertices": [[0, 0], [1, 0], [1, 1], [0, 0]], "Z": 1, "A": 1});
        let pid = ParticleId::from_json(&v).unwrap();
        assert_eq!(pid.x_axis, "dEdx");
        assert_eq!(pid.y_axis, "brho");
        assert_eq!(pid.nucleus.isotope_symbol(), "1H");
        let v = json!({"vertices": [[0, 0], [1, 0], [1, 1]], "Z": 1, "A": 1, "xaxis": "dE"});
        assert_eq!(ParticleId::from_json(&v).unwrap().x_axis, "dEdx");
        let v = json!({"vertices": [[0, 0], [1, 0], [1, 1]], "Z": 1, "A": 1, "xaxis": "dE", "yaxis": "arclength"});
        assert_eq!(ParticleId::from_json(&v).unwrap().y_axis, "arclength");
        assert!(ParticleId::from_json(&json!({"vertices": [[0, 0]], "Z": 1, "A": 1})).is_err());
        assert!(
            ParticleId::from_json(&json!({"vertices": [[0, 0], [1, 0], [1, 1]], "A": 1})).is_err()
        );
    }
}
