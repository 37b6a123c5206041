use std::time::Duration;

use super::*;
use crate::config::ConfigDuration;
use crate::store::test_util::temp_store;

fn run(gate: &Arc<QueryGate>, samples: &SampleStore, timeout: Duration) -> Run {
    Run {
        head: Arc::new(Head::new()),
        samples: samples.clone(),
        gate: gate.clone(),
        config: QueryConfig {
            timeout: ConfigDuration(timeout),
            max_concurrent: std::num::NonZeroUsize::new(1).unwrap(),
            ..QueryConfig::default()
        },
    }
}

async fn body(r: Resp) -> (StatusCode, serde_json::Value) {
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_query_past_max_concurrent_waits_for_a_turn() {
    let (_dir, store) = temp_store();
    let gate = Arc::new(QueryGate::default());
    let first = gate.turn(1).await;
    assert_eq!(gate.running(), 1);
    let waiting = tokio::spawn({
        let run = run(&gate, &store.samples, Duration::from_secs(60));
        async move { run.run(|_, _| Ok(42)).await.ok() }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "it waits while the other runs");
    drop(first);
    assert_eq!(waiting.await.unwrap(), Some(Ok(42)));
    assert_eq!(gate.running(), 0, "its turn ended with it");
}

#[tokio::test(start_paused = true)]
async fn a_query_that_waits_past_its_timeout_is_a_503_timeout() {
    let (_dir, store) = temp_store();
    let gate = Arc::new(QueryGate::default());
    let _busy = gate.turn(1).await;
    let r = run(&gate, &store.samples, Duration::from_secs(120))
        .run(|_, _| Ok(()))
        .await;
    let (status, json) = body(r.expect_err("timed out")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["errorType"], "timeout");
    assert_eq!(json["error"], "query timed out in query queue");
}

#[tokio::test]
async fn too_many_samples_is_a_422_execution() {
    let (_dir, store) = temp_store();
    let gate = Arc::new(QueryGate::default());
    let r = run(&gate, &store.samples, Duration::from_secs(60))
        .run(|_, _| Err::<(), _>(EvalError::TooManySamples))
        .await;
    let (status, json) = body(r.expect_err("refused")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errorType"], "execution");
    assert_eq!(
        json["error"],
        "query processing would load too many samples into memory in query execution"
    );
}
