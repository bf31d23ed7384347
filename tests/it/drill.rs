//! The fraud drill (`switchboard-load drill`) at a reduced scale, against the real binary on its
//! embedded defaults. The drill itself lives in the load crate and is included here as it is.

use std::path::PathBuf;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../load/src/numbers.rs"]
mod numbers;

#[allow(dead_code)]
#[path = "../../load/src/drill.rs"]
mod fraud_drill;

use fraud_drill::{Class, Mode, Options};

fn options(mode: Mode, normal: usize, pumping: usize, duration_secs: u64) -> Options {
    Options {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_switchboard")),
        mode,
        normal,
        concentrated: pumping,
        spread: pumping,
        duration: Duration::from_secs(duration_secs),
        check_delay: Duration::from_secs(1),
        concurrency: 32,
        seed: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_mode_stops_both_kinds_of_pumping_and_lets_real_users_through() {
    let report = fraud_drill::run(&options(Mode::Enforce, 400, 2_000, 30))
        .await
        .unwrap();
    let text = report.render();
    assert!(report.misses().is_empty(), "{text}");
    let conc = report.class(Class::Concentrated);
    let spread = report.class(Class::Spread);
    assert_eq!(conc.sent, 2_000, "{text}");
    assert!(
        conc.dispatched <= fraud_drill::CONCENTRATED_MAX_DISPATCHED,
        "{text}"
    );
    assert!(conc.blocked.contains_key("PREFIX_VELOCITY"), "{text}");
    assert!(
        spread.dispatched <= fraud_drill::SPREAD_MAX_DISPATCHED,
        "{text}"
    );
    let normal = report.class(Class::Normal);
    assert_eq!(normal.sent, 400, "{text}");
    assert!(
        normal.checked >= 270 && normal.approved == normal.checked,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_dispatches_everything_and_reports_what_it_would_refuse() {
    // Every shadow send is dispatched (a code hashed and logged): a smaller pumping scale keeps
    // the debug build quick while leaving hundreds of would-blocks to count.
    let report = fraud_drill::run(&options(Mode::Shadow, 200, 500, 15))
        .await
        .unwrap();
    let text = report.render();
    assert!(report.misses().is_empty(), "{text}");
    for c in Class::ALL {
        let r = report.class(c);
        assert_eq!(r.dispatched, r.sent, "{text}");
        assert!(r.blocked.is_empty(), "{text}");
    }
    let conc = report.class(Class::Concentrated);
    let spread = report.class(Class::Spread);
    assert!(
        conc.would_block_total() >= 500 - fraud_drill::CONCENTRATED_MAX_DISPATCHED,
        "{text}"
    );
    assert!(
        spread.would_block_total() >= 500 - fraud_drill::SPREAD_MAX_DISPATCHED,
        "{text}"
    );
    assert_eq!(report.class(Class::Normal).would_block_total(), 0, "{text}");
}
