//! SLO math and models, pure (no I/O): Reliably objectives and indicators as the seed
//! guide writes them, their validation (every problem, each naming its field), label
//! selection, and the objective results and verdicts the reference defines
//! (`../shared/reference/slo.md`). The store, the server and the commands of issue 11
//! build on this; nothing here touches a file, a socket or the clock.

pub mod model;
pub mod window;

pub use model::{
    is_met, parse_indicator, parse_objective, selects, Indicator, Labels, Objective,
    ObjectiveResult, SloProblem,
};
pub use window::parse_window;
