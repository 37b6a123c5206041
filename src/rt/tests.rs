use super::*;

#[test]
fn blocking_runs_on_every_kind_of_thread() {
    assert_eq!(blocking(|| 1), 1);
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_eq!(current.block_on(async { blocking(|| 2) }), 2);
    let multi = runtime().expect("runtime");
    let on_worker =
        multi.block_on(async { tokio::spawn(async { blocking(|| 3) }).await.expect("task") });
    assert_eq!(on_worker, 3);
}

#[test]
fn schedules_start_on_their_grid_from_the_epoch() {
    let ms = std::time::Duration::from_millis;
    let e = epoch();
    // Before the first point: the first point; after it: the next whole interval.
    assert_eq!(next_on_grid(ms(300), ms(1000), e), e + ms(300));
    assert_eq!(next_on_grid(ms(300), ms(1000), e + ms(300)), e + ms(300));
    assert_eq!(next_on_grid(ms(300), ms(1000), e + ms(301)), e + ms(1300));
    assert_eq!(next_on_grid(ms(300), ms(1000), e + ms(5250)), e + ms(5300));
    assert_eq!(next_on_grid(ms(0), ms(0), e + ms(7)), e + ms(7));
}

#[test]
fn a_blocked_worker_still_runs_other_tasks() {
    // With one worker, a task inside `blocking` must not stop a timer task elsewhere.
    let rt = runtime().expect("runtime");
    rt.block_on(async {
        let (tx, rx) = std::sync::mpsc::channel();
        let ticker = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            tx.send(()).expect("send");
        });
        let blocker = tokio::spawn(async move {
            blocking(|| rx.recv_timeout(std::time::Duration::from_secs(10)))
        });
        assert!(
            blocker.await.expect("task").is_ok(),
            "the timer task ran while the other one blocked"
        );
        ticker.await.expect("task");
    });
}
