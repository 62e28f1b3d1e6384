//! Shared numerical fits used by several phases: the analytic least-squares circle of
//! spyral-spec section 3.3.1 ([`circle`]) and the penalised cubic smoothing spline with scipy's
//! `make_smoothing_spline(x, y, lam)` semantics ([`spline`]).

pub mod circle;
pub mod spline;

pub use circle::{circle_points, least_squares_circle, Circle};
pub use spline::{FitError, SmoothingSpline};
