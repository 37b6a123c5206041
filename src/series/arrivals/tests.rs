use super::*;
use std::time::Duration;

fn names(a: &Arrivals) -> Vec<String> {
    let mut taken = FastMap::default();
    a.take_into(&mut taken);
    let mut n: Vec<String> = taken.keys().map(|k| k.to_string()).collect();
    n.sort();
    n
}

fn s(v: &[&str]) -> Vec<LabelStr> {
    v.iter().map(|n| LabelStr::from(*n)).collect()
}

#[tokio::test(start_paused = true)]
async fn marks_are_taken_once_and_only_watched_names_are_kept() {
    let a = Arrivals::default();
    a.mark(&s(&["x"]));
    assert!(
        names(&a).is_empty(),
        "nothing is recorded before someone watches"
    );

    a.watch(Some(["x", "ALERTS"]));
    a.mark(&s(&["x", "y"]));
    let first = Instant::now();
    tokio::time::advance(Duration::from_millis(30)).await;
    a.mark(&s(&["x"]));
    let mut taken = FastMap::default();
    a.take_into(&mut taken);
    assert_eq!(
        taken.get("x"),
        Some(&Landed {
            first,
            last: first + Duration::from_millis(30)
        }),
        "a burst of batches is one arrival spanning them"
    );
    assert_eq!(taken.len(), 1, "y is not watched");
    assert!(names(&a).is_empty(), "taken");

    a.watch(None::<[&str; 0]>);
    a.mark(&s(&["y"]));
    assert_eq!(names(&a), ["y"]);
}

#[tokio::test(start_paused = true)]
async fn a_new_name_wakes_the_taker_even_when_it_was_not_waiting_yet() {
    let a = Arrivals::default();
    a.watch(None::<[&str; 0]>);
    a.mark(&s(&["x"]));
    // Marked before the wait began: the wait completes at once.
    tokio::time::timeout(Duration::from_secs(1), a.notified())
        .await
        .expect("woken");
    // Nothing new: no wake-up.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), a.notified())
            .await
            .is_err()
    );
}
