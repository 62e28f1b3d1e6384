//! Typed rows of the default phases' parquet tables: [`EstimateRow`] (`Estimation/run_NNNN.parquet`)
//! and [`FitRow`] (`InterpSolver/run_NNNN_<iso>.parquet`), one field per column (units in
//! `docs/formats.md`).
//!
//! [`EstimateRow::read`] / [`FitRow::read`] read a table by column name (any column order;
//! extra columns are ignored; a missing column is an error naming it), and
//! [`EstimateRow::write`] / [`FitRow::write`] write one in exactly the layout the phases write
//! (the same columns in the same order through [`Table`], so the same bytes).

use crate::table::{Column, Table};
use spyral_core::PhaseError;
use std::path::{Path, PathBuf};

/// A typed row over a table's int64 columns, then its float64 columns, then int64 columns
/// that follow the floats; each field named by its column.
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        $name:ident {
            ints: [$($int:ident = $int_col:literal),* $(,)?],
            floats: [$($float:ident = $float_col:literal),* $(,)?],
            tail_ints: [$($tail:ident = $tail_col:literal),* $(,)?] $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            $(#[doc = concat!("Column `", $int_col, "` (int64).")] pub $int: i64,)*
            $(#[doc = concat!("Column `", $float_col, "` (float64).")] pub $float: f64,)*
            $(#[doc = concat!("Column `", $tail_col, "` (int64).")] pub $tail: i64,)*
        }

        impl $name {
            /// The int64 columns before the floats, in file order.
            pub const INT_COLUMNS: &'static [&'static str] = &[$($int_col),*];
            /// The float64 columns, in file order.
            pub const FLOAT_COLUMNS: &'static [&'static str] = &[$($float_col),*];
            /// The int64 columns after the floats, in file order.
            pub const TAIL_INT_COLUMNS: &'static [&'static str] = &[$($tail_col),*];

            /// Reads every row of the parquet table at `path`.
            pub fn read(path: &Path) -> Result<Vec<Self>, PhaseError> {
                Self::from_table(&Table::read_parquet(path)?, path)
            }

            /// The rows of `table` (read from `path`, named in errors).
            pub fn from_table(table: &Table, path: &Path) -> Result<Vec<Self>, PhaseError> {
                let missing = |c: &str| {
                    PhaseError::invalid_input(format!(
                        "{}: no int64/float64 column `{c}` (a {} table has {})",
                        path.display(),
                        stringify!($name),
                        [Self::INT_COLUMNS, Self::FLOAT_COLUMNS, Self::TAIL_INT_COLUMNS]
                            .concat()
                            .join(", ")
                    ))
                };
                $(let $int = table.int($int_col).ok_or_else(|| missing($int_col))?;)*
                $(let $float = table.float($float_col).ok_or_else(|| missing($float_col))?;)*
                $(let $tail = table.int($tail_col).ok_or_else(|| missing($tail_col))?;)*
                Ok((0..table.rows())
                    .map(|i| $name {
                        $($int: $int[i],)*
                        $($float: $float[i],)*
                        $($tail: $tail[i],)*
                    })
                    .collect())
            }

            /// The rows as a [`Table`] in the phase's column order.
            pub fn to_table(rows: &[Self]) -> Table {
                let mut t = Table::with_columns(Self::INT_COLUMNS, Self::FLOAT_COLUMNS);
                for c in Self::TAIL_INT_COLUMNS {
                    t.columns.push((c.to_string(), Column::I64(Vec::new())));
                }
                for r in rows {
                    $(t.push_i64($int_col, r.$int);)*
                    $(t.push_f64($float_col, r.$float);)*
                    $(t.push_i64($tail_col, r.$tail);)*
                }
                t
            }

            /// Writes `rows` to `dest` (through a temporary name) with the default codec.
            pub fn write(rows: &[Self], dest: &Path) -> Result<PathBuf, PhaseError> {
                Self::to_table(rows).write_parquet(dest)
            }
        }
    };
}

table_row! {
    /// One row of the Estimation table: a cluster's initial estimates (lengths in mm, angles in
    /// radians, `brho` in T·m; ion-chamber values -1 when absent).
    EstimateRow {
        ints: [
            event = "event",
            cluster_index = "cluster_index",
            cluster_label = "cluster_label",
            orig_run = "orig_run",
            orig_event = "orig_event",
        ],
        floats: [
            ic_amplitude = "ic_amplitude",
            ic_centroid = "ic_centroid",
            ic_integral = "ic_integral",
            ic_multiplicity = "ic_multiplicity",
            vertex_x = "vertex_x",
            vertex_y = "vertex_y",
            vertex_z = "vertex_z",
            center_x = "center_x",
            center_y = "center_y",
            center_z = "center_z",
            polar = "polar",
            azimuthal = "azimuthal",
            brho = "brho",
            dedx = "dEdx",
            sqrt_dedx = "sqrt_dEdx",
            de = "dE",
            arclength = "arclength",
        ],
        tail_ints: [direction = "direction"],
    }
}

table_row! {
    /// One row of the InterpSolver table: a fitted track (vertex in metres, angles in radians,
    /// `brho` in T·m, `ke` in MeV; `sigma_* = 1e6` means "not computed").
    FitRow {
        ints: [
            event = "event",
            cluster_index = "cluster_index",
            cluster_label = "cluster_label",
            orig_run = "orig_run",
            orig_event = "orig_event",
        ],
        floats: [
            vertex_x = "vertex_x",
            sigma_vx = "sigma_vx",
            vertex_y = "vertex_y",
            sigma_vy = "sigma_vy",
            vertex_z = "vertex_z",
            sigma_vz = "sigma_vz",
            brho = "brho",
            sigma_brho = "sigma_brho",
            ke = "ke",
            sigma_ke = "sigma_ke",
            polar = "polar",
            sigma_polar = "sigma_polar",
            azimuthal = "azimuthal",
            sigma_azimuthal = "sigma_azimuthal",
            redchisq = "redchisq",
        ],
        tail_ints: [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::{ESTIMATION_FLOAT_COLUMNS, ESTIMATION_INT_COLUMNS};
    use crate::schemas::{SOLVER_FLOAT_COLUMNS, SOLVER_INT_COLUMNS};

    #[test]
    fn the_rows_name_the_columns_the_schemas_list_in_their_order() {
        assert_eq!(EstimateRow::INT_COLUMNS, ESTIMATION_INT_COLUMNS);
        assert_eq!(EstimateRow::FLOAT_COLUMNS, ESTIMATION_FLOAT_COLUMNS);
        assert_eq!(FitRow::INT_COLUMNS, SOLVER_INT_COLUMNS);
        assert_eq!(FitRow::FLOAT_COLUMNS, SOLVER_FLOAT_COLUMNS);
    }

    #[test]
    fn rows_round_trip_and_a_missing_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let fit = |k: i64| FitRow {
            event: k,
            cluster_index: 0,
            cluster_label: 1,
            orig_run: 7,
            orig_event: k + 100,
            vertex_x: 0.001 * k as f64,
            sigma_vx: 1e6,
            vertex_y: -0.002,
            sigma_vy: 1e6,
            vertex_z: 0.5,
            sigma_vz: 1e6,
            brho: 0.8,
            sigma_brho: 1e6,
            ke: 12.5,
            sigma_ke: 1e6,
            polar: 1.1,
            sigma_polar: 1e6,
            azimuthal: 2.2,
            sigma_azimuthal: 1e6,
            redchisq: 0.9,
        };
        let rows = vec![fit(3), fit(4)];
        let path = FitRow::write(&rows, &dir.path().join("run_0001_2H.parquet")).unwrap();
        assert_eq!(FitRow::read(&path).unwrap(), rows);
        // An Estimation reader on a fits table names what is missing.
        let e = EstimateRow::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("run_0001_2H.parquet") && e.contains("`ic_amplitude`"),
            "{e}"
        );
    }
}
