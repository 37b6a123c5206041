use super::*;

fn registered() -> TargetHealth {
    TargetHealth {
        kind: "probe",
        job: "api".into(),
        probe: Some("api-health".into()),
        log: None,
        url: "http://127.0.0.1:1/health".into(),
        health: "unknown",
        last_error: String::new(),
        last_run: None,
        last_duration_seconds: 0.0,
        samples: None,
    }
}

#[test]
fn a_run_updates_its_target_in_place_and_an_unknown_one_is_added() {
    let view = TargetsView::default();
    view.register("probe/api-health", registered());
    let at = Utc::now();
    let run = |up, error| Run {
        up,
        error,
        at,
        duration_seconds: 0.25,
        samples: None,
    };
    view.record_run("probe/api-health", run(false, "connection refused"), || {
        panic!("a registered target is updated, not rebuilt")
    });
    let h = &view.list()[0];
    assert_eq!(
        (h.health, h.last_error.as_str()),
        ("down", "connection refused")
    );
    assert_eq!((h.job.as_str(), h.last_run), ("api", Some(at)));
    view.record_run("probe/api-health", run(true, ""), || unreachable!());
    assert_eq!(view.list()[0].health, "up");
    assert_eq!(view.list()[0].last_error, "", "the old error is gone");
    view.record_run("probe/new", run(true, ""), registered);
    assert_eq!(view.list().len(), 2);
    assert!(!view.all_ran(), "the fallback entry has not run");
}

#[test]
fn list_comes_out_in_key_order() {
    let view = TargetsView::default();
    for key in ["scrape/web/b", "probe/z", "probe/a", "scrape/web/a"] {
        let mut h = registered();
        h.url = key.to_string();
        view.register(key, h);
    }
    let urls: Vec<String> = view.list().into_iter().map(|h| h.url).collect();
    assert_eq!(urls, ["probe/a", "probe/z", "scrape/web/a", "scrape/web/b"]);
}

#[test]
fn the_generation_moves_with_health_reason_and_membership_not_with_timing() {
    let view = TargetsView::default();
    view.register("probe/api-health", registered());
    let run = |up, error, secs| Run {
        up,
        error,
        at: Utc::now(),
        duration_seconds: secs,
        samples: None,
    };
    view.record_run("probe/api-health", run(true, "", 0.1), || unreachable!());
    let (up, body) = view.health_json();
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"[{"kind":"probe","job":"api","probe":"api-health","url":"http://127.0.0.1:1/health","health":"up","lastError":""}]"#
    );
    // Another successful run: a new time and duration, the same state.
    view.record_run("probe/api-health", run(true, "", 0.3), || unreachable!());
    assert_eq!(view.generation(), up);
    assert_eq!(view.health_json(), (up, body.clone()));

    view.record_run(
        "probe/api-health",
        run(false, "status 500", 0.1),
        || unreachable!(),
    );
    let down = view.generation();
    assert_ne!(down, up, "up → down");
    assert!(String::from_utf8_lossy(&view.health_json().1).contains(r#""lastError":"status 500""#));
    view.record_run(
        "probe/api-health",
        run(false, "timeout after 5s", 0.1),
        || unreachable!(),
    );
    let reason = view.generation();
    assert_ne!(reason, down, "a new reason");

    view.register("probe/api-health", registered());
    assert_eq!(view.generation(), reason, "registering a known target");
    view.register("probe/other", registered());
    let added = view.generation();
    assert_ne!(added, reason, "a new target");
    view.retain(&["probe/other".to_string(), "probe/api-health".to_string()]);
    assert_eq!(view.generation(), added, "nothing removed");
    view.retain(&["probe/other".to_string()]);
    assert_ne!(view.generation(), added, "a target removed");
    assert_eq!(view.health_json().0, view.generation());
}

#[test]
fn a_new_view_does_not_reuse_the_generations_of_an_earlier_one() {
    let first = TargetsView::default();
    for _ in 0..3 {
        first.register(&format!("probe/{}", first.generation()), registered());
    }
    let second = TargetsView::default();
    assert!(second.generation() > first.generation());
}
