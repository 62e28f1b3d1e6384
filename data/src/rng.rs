//! Random numbers for phases: a ready generator per event, built from the run's seed.
//!
//! [`event_rng`] seeds a [`Pcg64`] from [`RunContext::event_seed`], which depends only on the
//! base seed, the run, the phase name and the event id: the numbers an event draws are the same
//! whatever worker runs it, however the run is split into chunks, and whichever events come
//! before it. (The default Pointcloud phase draws its centroid jitter this way.) [`run_rng`] gives
//! one generator for the whole (run, phase), for draws that are not per event; a phase that is
//! split into chunks should not use it for per-event draws.

use rand::SeedableRng;
use spyral_core::RunContext;

pub use rand::{self, Rng};
pub use rand_pcg::{self, Pcg64};

/// The generator of `event` in this (run, phase): `Pcg64` seeded with
/// [`RunContext::event_seed`].
pub fn event_rng(ctx: &RunContext<'_>, event: u64) -> Pcg64 {
    Pcg64::seed_from_u64(ctx.event_seed(event))
}

/// One generator for this (run, phase), seeded with [`RunContext::seed`].
pub fn run_rng(ctx: &RunContext<'_>) -> Pcg64 {
    Pcg64::seed_from_u64(ctx.seed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spyral_core::context::NullSink;
    use spyral_core::{Chunk, EventRange, Workspace};
    use std::path::Path;

    #[test]
    fn an_event_draws_the_same_numbers_whole_or_in_a_chunk() {
        let ws = Workspace::new(Path::new("/w"), Path::new("/t"), "Gate");
        let whole = RunContext::new(3, 42, &ws, &NullSink);
        let chunk = RunContext::new(3, 42, &ws, &NullSink).with_chunk(Chunk {
            index: 1,
            count: 2,
            events: EventRange::new(10, 19),
        });
        let draw = |ctx: &RunContext<'_>, e| event_rng(ctx, e).random::<u64>();
        assert_eq!(draw(&whole, 12), draw(&chunk, 12));
        assert_ne!(draw(&whole, 12), draw(&whole, 13));
        let other_seed = RunContext::new(3, 43, &ws, &NullSink);
        assert_ne!(draw(&whole, 12), draw(&other_seed, 12));
    }
}
