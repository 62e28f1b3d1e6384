//! The AT-TPC run simulator.
