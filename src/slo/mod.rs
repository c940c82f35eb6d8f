//! SLO math and models, pure (no I/O): Reliably objectives and indicators as the seed
//! guide writes them, their validation (every problem, each naming its field), label
//! selection, the objective results and verdicts the reference defines
//! (`../shared/reference/slo.md`), and an objective's status over a window. The store,
//! the server and the commands build on this; nothing here touches a file, a socket or
//! the clock.

pub mod documents;
pub mod eval;
pub mod model;
pub mod report;
pub mod status;
pub mod window;

pub use documents::parse_objectives;
pub use model::{
    is_met, parse_indicator, parse_objective, selects, Indicator, Labels, Objective,
    ObjectiveResult, Sli, SloProblem,
};
pub use report::{go_duration, ReportEntry};
pub use status::{status, Sample, SloStatus, Verdict};
pub use window::parse_window;
