//! The suite must not leave processes behind: a scenario that panics with a node frozen by
//! SIGSTOP still has every node process killed and reaped when its cluster is dropped.

use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;

/// A panicking scenario's frozen node is gone afterwards (no `/proc/<pid>`).
#[test]
fn processes_are_reaped_when_a_scenario_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let scenario = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let s = Scenario::with_seed("deliberate_panic_cleanup", 7);
            let opts = Options {
                voters: 1,
                ..Options::default()
            };
            let mut c = ChaosCluster::start(&opts, &s).await;
            c.stop(1);
            let _ = tx.send(c.node(1).node.pid());
            panic!("deliberate panic with n1 stopped");
        })
    });
    assert!(scenario.join().is_err(), "the scenario was meant to panic");
    let pid = rx.recv().expect("the scenario started").expect("a pid");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "node process {pid} outlived its scenario"
    );
}
