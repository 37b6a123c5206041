use super::*;

#[tokio::test(start_paused = true)]
async fn a_silent_loop_is_wedged_and_a_dropped_one_is_not() {
    let live = Liveness::new();
    let a = live.register("scrape", Duration::from_secs(30));
    let b = live.register("rules", Duration::from_secs(30));
    tokio::time::advance(Duration::from_secs(20)).await;
    a.beat();
    assert!(live.wedged().is_empty());
    tokio::time::advance(Duration::from_secs(15)).await;
    assert_eq!(live.wedged(), vec!["rules".to_string()]);
    drop(b);
    assert!(live.wedged().is_empty(), "a loop that ended is not wedged");
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(live.wedged(), vec!["scrape".to_string()]);
}
