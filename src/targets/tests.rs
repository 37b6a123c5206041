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
