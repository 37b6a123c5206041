use std::time::Duration;

use super::*;

fn deployment(evaluations: u64, second_state: &str) -> serde_json::Value {
    serde_json::json!({
        "startedAt": "2024-05-01T12:00:00.000Z",
        "watchUntil": "2024-05-01T12:30:00.000Z",
        "verdict": "watching",
        "evaluations": evaluations,
        "checks": [
            {"name": "error-rate", "state": "pass", "value": 0.001, "reason": "within bounds"},
            {"name": "latency", "state": second_state, "value": null,
             "reason": "the expression returned no series"},
        ],
    })
}

#[test]
fn the_terminal_progress_line_is_rewritten_in_place() {
    let line = progress_line(&deployment(4, "nodata"), Duration::from_millis(90_400));
    assert_eq!(
        line,
        "\r[1m30s/30m] #4 error-rate pass 0.001  latency nodata -\x1b[K"
    );
    assert!(!line.contains('\n'), "one line, updated in place");
}

#[test]
fn off_a_terminal_each_evaluation_is_one_line_with_the_reasons_of_checks_not_passing() {
    let line = evaluation_line(&deployment(3, "nodata"), Duration::from_secs(12));
    assert_eq!(
        line,
        "#3 [12s/30m] error-rate pass 0.001  latency nodata - · latency: the expression returned no series"
    );
    assert!(!line.contains(['\n', '\r']));
    let all_pass = evaluation_line(&deployment(5, "pass"), Duration::from_secs(60));
    assert!(!all_pass.contains(" · "), "{all_pass}");
}
