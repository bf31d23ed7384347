//! Routing: the route table, the planner that orders candidates for a send, and the
//! dispatcher that tries them with timeouts, retries and fallback.

mod dispatch;
mod planner;
mod table;

pub use dispatch::{DispatchPolicy, DispatchReport, Dispatched, dispatch};
pub use planner::{PlanRequest, channel_fits, plan};
pub use table::{CountryRoutes, DEFAULT_ROUTES, Route, RouteTable, RouteTableError};
