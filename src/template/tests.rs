use super::*;

fn render(src: &str, value: f64) -> String {
    let data = TemplateData {
        labels: BTreeMap::from([("job", "api"), ("instance", "10.0.0.1:80")]),
        external_labels: BTreeMap::from([("env", "prod")]),
        value,
    };
    Template::parse(src).unwrap().render(&data).unwrap()
}

#[test]
fn labels_value_and_external_labels() {
    assert_eq!(
        render(
            "{{ $labels.job }} on {{ .Labels.instance }} = {{ $value }}",
            0.25
        ),
        "api on 10.0.0.1:80 = 0.25"
    );
    assert_eq!(
        render("{{ $externalLabels.env }}/{{ $labels.missing }}|", 1.0),
        "prod/|"
    );
}

#[test]
fn pipelines_and_functions() {
    let cases = [
        (
            "error rate {{ $value | humanizePercentage }} on {{ $labels.job }}",
            0.0123,
            "error rate 1.23% on api",
        ),
        ("{{ humanize $value }}", 1234567.0, "1.235M"),
        ("{{ $value | humanize }}", 0.000123, "123u"),
        ("{{ $value | humanize1024 }}", 1048576.0, "1Mi"),
        ("{{ $value | humanizeDuration }}", 93784.0, "1d 2h 3m 4s"),
        ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
        ("{{ printf \"%.2f\" $value }}", 1.23456, "1.23"),
        ("{{ $value | printf \"%.1f%%\" }}", 99.25, "99.2%"),
        ("{{ $labels.job | toUpper }}", 0.0, "API"),
        ("{{ index $labels \"job\" }}", 0.0, "api"),
        (
            "{{ 1700000000 | humanizeTimestamp }}",
            0.0,
            "2023-11-14 22:13:20 +0000 UTC",
        ),
    ];
    for (template, value, want) in cases {
        assert_eq!(render(template, value), want, "{template}");
    }
}

#[test]
fn trimming_and_comments() {
    assert_eq!(
        render("a  {{- $labels.job -}}  b{{/* note */}}", 0.0),
        "aapib"
    );
}

#[test]
fn unsupported_constructs_are_errors() {
    for bad in [
        "{{ if gt $value 1.0 }}x{{ end }}",
        "{{ query \"up\" }}",
        "{{ $labels.job",
        "{{ (humanize $value) }}",
        "{{ }}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
}
