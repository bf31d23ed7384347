//! switchboard-sim: the delivery-economics simulator. It drives the real switchboard engine in
//! process with simulated providers and simulated users, once per routing strategy, and
//! reports what verification costs and how many users get through (README, "Delivery-economics
//! simulator").

pub mod math;
pub mod numbers;
pub mod scenario;
pub mod sim;

pub use scenario::Scenario;
pub use sim::{Outcome, Strategy, Summary};

use std::sync::Arc;

/// Runs every strategy of `scenario`, in the order of [`Strategy::ALL`], each on its own
/// current-thread runtime.
pub fn run_scenario(scenario: &Scenario) -> anyhow::Result<Vec<Outcome>> {
    let scenario = Arc::new(scenario.clone());
    let users = sim::users(&scenario)?;
    Strategy::ALL
        .iter()
        .map(|&strategy| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(sim::run(&scenario, &users, strategy))
        })
        .collect()
}
