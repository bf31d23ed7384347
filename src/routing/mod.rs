//! Routing: the route table, the planner that gates and orders candidates for a send, the
//! strategy that may reorder them, and the dispatcher that tries them with timeouts, retries
//! and fallback.

mod dispatch;
pub mod ledger;
mod planner;
mod strategy;
mod table;

pub use dispatch::{DispatchPolicy, DispatchReport, Dispatched, dispatch};
pub use planner::{PlanRequest, channel_fits, plan};
pub use strategy::{OracleRequest, RouteOracle, RoutePolicy, Strategy};
pub use table::{CountryRoutes, DEFAULT_ROUTES, Route, RouteTable, RouteTableError};
