//! The AT-TPC data layer: trace file formats, the pad plane, detector parameters.
