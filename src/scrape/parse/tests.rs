use super::*;

/// An exemplar copied out: labels, value, timestamp.
type OwnedExemplar = (Vec<(String, String)>, f64, Option<i64>);

/// A sample copied out of the callback, for assertions.
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts: Option<i64>,
    metric_type: MetricType,
    exemplar: Option<OwnedExemplar>,
}

fn collect(body: &str, format: Format) -> Result<Vec<Owned>, ParseError> {
    collect_with(body, format, Options::default())
}

fn collect_with(body: &str, format: Format, options: Options) -> Result<Vec<Owned>, ParseError> {
    let mut out = Vec::new();
    Parser::with_options(options).parse(body.as_bytes(), format, |s| {
        let own = |l: LabelsRef<'_>| {
            l.iter()
                .map(|(n, v)| (n.to_string(), v.into_owned()))
                .collect::<Vec<_>>()
        };
        out.push(Owned {
            name: s.name.to_string(),
            labels: own(s.labels),
            value: s.value,
            ts: s.timestamp_ms,
            metric_type: s.metric_type,
            exemplar: s.exemplar.map(|e| (own(e.labels), e.value, e.timestamp_ms)),
        });
    })?;
    Ok(out)
}

fn err_line(body: &str, format: Format) -> (usize, String) {
    let e = collect(body, format).expect_err("should fail");
    (e.line, e.reason)
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The shared corpus: `$POSTFLIGHT_CORPUS`, or `shared/` beside the checkout, or beside the
/// worktree's parent (same lookup as `tests/common/corpus.rs`).
fn corpus_dir() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("POSTFLIGHT_CORPUS")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([
            root.join("../shared/corpus/exposition"),
            root.join("../../shared/corpus/exposition"),
        ])
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.join("../shared/corpus/exposition"))
}

#[test]
fn every_corpus_page_parses_with_its_sample_count() {
    let dir = corpus_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("corpus not found at {}, skipping", dir.display());
        return;
    };
    let mut seen = 0;
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let format = if name.ends_with(".openmetrics") {
            Format::OpenMetrics
        } else if name.ends_with(".prom") {
            Format::Text
        } else {
            continue;
        };
        let body = std::fs::read(&path).expect("read corpus page");
        // Independent count: every line that is neither a comment nor blank is one sample.
        let expected = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        let mut n = 0;
        let stats = parse(&body, format, |s| {
            assert!(!s.name.is_empty());
            n += 1;
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(n, expected, "{name}");
        assert_eq!(stats.samples, expected, "{name}");
        seen += 1;
    }
    assert!(seen >= 7, "expected the whole corpus, parsed {seen} pages");
}

#[test]
fn openmetrics_corpus_page_details() {
    let Ok(body) = std::fs::read_to_string(corpus_dir().join("webapp.openmetrics")) else {
        return;
    };
    let samples = collect(&body, Format::OpenMetrics).expect("parses");
    let first = &samples[0];
    assert_eq!(first.name, "http_requests_total");
    assert_eq!(first.ts, Some(1_795_300_000_123), "seconds to exact ms");
    assert_eq!(first.metric_type, MetricType::Counter);
    // _created comes through as a series by default, as in Prometheus.
    assert_eq!(samples[1].name, "http_requests_created");
    assert_eq!(samples[1].value, 1_795_200_000.0);
    let ex = samples[2].exemplar.clone().expect("exemplar");
    assert_eq!(
        ex,
        (
            pairs(&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]),
            1.0,
            Some(1_795_299_999_900)
        )
    );
    let temp: Vec<_> = samples.iter().filter(|s| s.name == "temperature").collect();
    assert_eq!(
        temp[0].labels,
        pairs(&[("room", "lab \"A\""), ("path", "C:\\temp\nnext")])
    );
    assert_eq!(temp[0].value, f64::NEG_INFINITY);
    assert_eq!(temp[1].value, f64::INFINITY);
    let q99 = samples
        .iter()
        .find(|s| s.name == "rpc_latency_seconds" && s.labels[0].1 == "0.99")
        .expect("quantile");
    assert!(q99.value.is_nan());
    assert!(!crate::series::is_stale_nan(q99.value));
    let info = samples
        .iter()
        .find(|s| s.name == "build_info")
        .expect("info");
    assert_eq!(info.metric_type, MetricType::Info);
    let gh = samples
        .iter()
        .find(|s| s.name == "queue_depth_gsum")
        .expect("gsum");
    assert_eq!(gh.metric_type, MetricType::GaugeHistogram);

    let skipped = collect_with(
        &body,
        Format::OpenMetrics,
        Options {
            skip_created_series: true,
        },
    )
    .expect("parses");
    assert!(skipped.iter().all(|s| !s.name.ends_with("_created")));
    assert_eq!(skipped.len(), samples.len() - 3);
}

#[test]
fn text_format_basics() {
    let body = "# HELP up Whether up.\n# TYPE up gauge\nup 1\n\n  \t\nup{job=\"a\"} 0 1700000000000\n# a free comment\nfoo_bar:baz{a=\"1\",b=\"2\",} 3.5e2\n";
    let s = collect(body, Format::Text).expect("parses");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].metric_type, MetricType::Gauge);
    assert_eq!(s[1].ts, Some(1_700_000_000_000));
    assert_eq!(s[1].labels, pairs(&[("job", "a")]));
    assert_eq!(s[2].name, "foo_bar:baz");
    assert_eq!(s[2].value, 350.0);
    assert_eq!(s[2].metric_type, MetricType::Unknown);
}

#[test]
fn text_format_is_lenient_about_whitespace_and_commas() {
    let body = "  metric \t{ a = \"1\"  b=\"2\" }\t 7 \t 123 \n";
    let s = collect(body, Format::Text).expect("parses");
    assert_eq!(s[0].labels, pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(s[0].value, 7.0);
    assert_eq!(s[0].ts, Some(123));
    assert_eq!(
        collect("m{} 1\n", Format::Text).expect("empty braces")[0].labels,
        vec![]
    );
}

#[test]
fn escapes_are_resolved_and_unknown_ones_kept() {
    let body = r#"m{a="x\\y",b="say \"hi\"",c="one\ntwo",d="keep \t"} 1
"#;
    let s = collect(body, Format::Text).expect("parses");
    assert_eq!(
        s[0].labels,
        pairs(&[
            ("a", "x\\y"),
            ("b", "say \"hi\""),
            ("c", "one\ntwo"),
            ("d", "keep \\t")
        ])
    );
    // The raw view and the series key keep the text as exposed.
    parse(body.as_bytes(), Format::Text, |s| {
        assert_eq!(s.labels.iter_raw().next(), Some(("a", r"x\\y")));
        assert!(s.series.starts_with("m{a="));
        assert!(s.series.ends_with("\"}"));
    })
    .expect("parses");
}

#[test]
fn special_values() {
    let body = "a NaN\nb +Inf\nc -Inf\nd nan\ne 0.5\nf -1e-3\ng .5\nh 00012\n";
    let s = collect(body, Format::Text).expect("parses");
    assert!(s[0].value.is_nan() && s[3].value.is_nan());
    assert_eq!(s[0].value.to_bits(), f64::NAN.to_bits());
    assert_eq!(s[1].value, f64::INFINITY);
    assert_eq!(s[2].value, f64::NEG_INFINITY);
    assert_eq!(s[4].value, 0.5);
    assert_eq!(s[5].value, -0.001);
    assert_eq!(s[6].value, 0.5);
    assert_eq!(s[7].value, 12.0);
    for bad in ["x 0x1p3\n", "x 1_000\n", "x abc\n", "x 1.2.3\n"] {
        assert!(collect(bad, Format::Text).is_err(), "{bad:?}");
    }
}

#[test]
fn timestamps_text_ms_openmetrics_seconds() {
    let t = collect("m 1 1700000000123\n", Format::Text).expect("parses");
    assert_eq!(t[0].ts, Some(1_700_000_000_123));
    let o = collect(
        "m 1 1700000000.123\nn 1 1700000000\np 1 1.7e9\nq 1 -1.5\n# EOF\n",
        Format::OpenMetrics,
    )
    .expect("parses");
    assert_eq!(o[0].ts, Some(1_700_000_000_123));
    assert_eq!(o[1].ts, Some(1_700_000_000_000));
    assert_eq!(o[2].ts, Some(1_700_000_000_000));
    assert_eq!(o[3].ts, Some(-1500));
    assert!(
        collect("m 1 -5\n", Format::Text).is_err(),
        "no sign in text ts"
    );
    assert!(collect("m 1 99999999999999999999\n", Format::Text).is_err());
    assert!(collect("m 1 NaN\n# EOF\n", Format::OpenMetrics).is_err());
    assert!(collect("m 1 1.5.5\n# EOF\n", Format::OpenMetrics).is_err());
}

#[test]
fn exemplars() {
    let body = "# TYPE c counter\nc_total 1 # {trace_id=\"a\",span=\"b\"} 0.5\nc_total{x=\"1\"} 2 17 # {t=\"z\"} 1 16.25\n# EOF";
    let s = collect(body, Format::OpenMetrics).expect("parses");
    assert_eq!(
        s[0].exemplar,
        Some((pairs(&[("trace_id", "a"), ("span", "b")]), 0.5, None))
    );
    assert_eq!(s[1].ts, Some(17_000));
    assert_eq!(
        s[1].exemplar,
        Some((pairs(&[("t", "z")]), 1.0, Some(16_250)))
    );
    // Exemplars don't exist in the text format.
    assert!(collect("c_total 1 # {a=\"b\"} 1\n", Format::Text).is_err());
    // Broken exemplars fail the page.
    assert!(collect("c 1 # {a=\"b\"}\n# EOF\n", Format::OpenMetrics).is_err());
    assert!(collect("c 1 # {a=\"b\" 1\n# EOF\n", Format::OpenMetrics).is_err());
}

#[test]
fn openmetrics_is_strict() {
    let ok = "# HELP m help\n# TYPE m gauge\n# UNIT m_seconds seconds\nm{a=\"1\",} 1\n# EOF\n";
    assert_eq!(collect(ok, Format::OpenMetrics).expect("parses").len(), 1);
    assert!(
        collect("m 1\n# EOF", Format::OpenMetrics).is_ok(),
        "EOF without newline"
    );
    let cases = [
        ("m 1\n", 2, "data does not end with # EOF"),
        ("m 1\n# EOF\nm 2\n", 3, "unexpected data after # EOF"),
        ("m 1\n\n# EOF\n", 2, "blank line"),
        ("m  1\n# EOF\n", 1, "double space"),
        ("m\t1\n# EOF\n", 1, "tab"),
        ("m{a=\"1\" b=\"2\"} 1\n# EOF\n", 1, "missing comma"),
        ("# random comment\nm 1\n# EOF\n", 1, "free comment"),
        ("# TYPE m untyped\n# EOF\n", 1, "text-format type"),
        ("# UNIT m_bytes seconds\n# EOF\n", 1, "unit not a suffix"),
        ("m 1 \n# EOF\n", 1, "trailing space"),
        ("m{a=\"x\ny\"} 1\n# EOF\n", 1, "newline in value"),
    ];
    for (body, line, what) in cases {
        let (l, reason) = err_line(body, Format::OpenMetrics);
        assert_eq!(l, line, "{what}: {reason}");
    }
}

#[test]
fn openmetrics_timestamp_errors_say_which_timestamp() {
    let cases = [
        ("m 1 x\n# EOF\n", "invalid timestamp \"x\""),
        ("m 1 \n# EOF\n", "expected timestamp"),
        (
            "m 1 # {a=\"1\"} 2 x\n# EOF\n",
            "invalid exemplar timestamp \"x\"",
        ),
        ("m 1 # {a=\"1\"} 2 \n# EOF\n", "expected exemplar timestamp"),
    ];
    for (body, want) in cases {
        let (line, reason) = err_line(body, Format::OpenMetrics);
        assert_eq!(line, 1, "{body:?}: {reason}");
        assert!(reason.contains(want), "{body:?}: {reason}");
    }
}

#[test]
fn errors_carry_line_numbers() {
    let cases: &[(&str, usize)] = &[
        ("a 1\nb 2\nc\n", 3),
        ("a 1\n1abc 2\n", 2),
        ("a 1\nb{1=\"x\"} 2\n", 2),
        ("a 1\nb{x=\"unterminated} 2\n", 2),
        ("a 1\nb{x=\"1\",x=\"2\"} 2\n", 2),
        ("a 1\nb{__name__=\"c\"} 2\n", 2),
        ("# TYPE a nonsense\na 1\n", 1),
        ("# HELP 9a x\n", 1),
        ("a 1\nb 2", 2),
        ("a 1\n\n\nb 2 x\n", 4),
        ("a 1 2 3\n", 1),
        ("a{x=\"1\"} 1{\n", 1),
    ];
    for &(body, line) in cases {
        let (l, reason) = err_line(body, Format::Text);
        assert_eq!(l, line, "{body:?}: {reason}");
    }
}

#[test]
fn non_utf8_is_an_error_with_its_line() {
    let body = b"a 1\nb{x=\"\xff\"} 1\n";
    let e = parse(body, Format::Text, |_| {}).expect_err("non-UTF-8");
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("UTF-8"));
}

#[test]
fn many_labels_duplicate_check_is_bounded() {
    let mut line = String::from("m{");
    for i in 0..200 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    let ok = format!("{line}}} 1\n");
    assert_eq!(
        collect(&ok, Format::Text).expect("parses")[0].labels.len(),
        200
    );
    let dup = format!("{line}l7=\"again\"}} 1\n");
    assert!(collect(&dup, Format::Text).is_err());
}

#[test]
fn le_and_quantile_are_normalised() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.25\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"1e+06\"} 1\n# TYPE s summary\ns{quantile=\"1\"} 2\n# TYPE g gauge\ng{le=\"1\"} 3\n";
    let s = collect(body, Format::Text).expect("parses");
    let val = |i: usize| s[i].labels[0].1.clone();
    assert_eq!(val(0), "1.0");
    assert_eq!(val(1), "0.25");
    assert_eq!(val(2), "+Inf");
    assert_eq!(val(3), "1e+06");
    assert_eq!(val(4), "1.0");
    assert_eq!(val(5), "1", "only histograms' le");
}

#[test]
fn content_type_selects_the_format() {
    assert_eq!(
        format_from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(
        format_from_content_type("text/plain; version=0.0.4"),
        Format::Text
    );
    assert_eq!(format_from_content_type(""), Format::Text);
}

#[test]
fn float_formatting_matches_go() {
    for (f, s) in [
        (1.0, "1.0"),
        (0.005, "0.005"),
        (1e6, "1e+06"),
        (2.5e-7, "2.5e-07"),
        (123456.0, "123456.0"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
    ] {
        // Go's shortest 'g' uses the exponent form for exponents < -4 or >= 6.
        assert_eq!(format_openmetrics_float(f), s, "{f}");
    }
}

fn owned(s: &SampleRef<'_>) -> Owned {
    Owned {
        name: s.name.to_string(),
        labels: s
            .labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.into_owned()))
            .collect(),
        value: s.value,
        ts: s.timestamp_ms,
        metric_type: s.metric_type,
        exemplar: None,
    }
}

#[test]
fn a_body_parsed_in_pieces_gives_what_it_gives_whole() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1 10\nh_bucket{le=\"+Inf\"} 2 10\n\
                h_count 2 10\n# TYPE g gauge\ng 5 10.5\n# EOF\n";
    let whole = collect(body, Format::OpenMetrics).unwrap();
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    // Cut after every line: the family's type (and `le` normalisation) carries over.
    let mut parser = Parser::new();
    let mut state = Resume::default();
    let mut got = Vec::new();
    for line in &lines {
        assert!(!state.saw_eof());
        parser
            .parse_piece(line.as_bytes(), &mut state, |s| got.push(owned(&s)), |_| {})
            .unwrap();
    }
    assert!(state.saw_eof());
    assert_eq!(got, whole);
    assert_eq!(got[0].labels, [("le".to_string(), "1.0".to_string())]);

    // Data after `# EOF` in a later piece, and a piece's error line counted from the piece.
    let err = parser
        .parse_piece(b"g 1 1\n", &mut state, |_| {}, |_| {})
        .unwrap_err();
    assert!(err.reason.contains("after # EOF"), "{err}");
    let mut state = Resume::default();
    let err = parser
        .parse_piece(b"g 1 1\ng{ 1\n", &mut state, |_| {}, |_| {})
        .unwrap_err();
    assert_eq!(err.line, 2);
}

#[test]
fn metadata_lines_are_handed_out_in_both_formats() {
    let mut seen = Vec::new();
    let text = "# HELP a_total Requests \\\\ \"served\".\n# TYPE a_total counter\na_total 1\n\
                # some comment\n";
    Parser::new()
        .parse_with_metadata(
            text.as_bytes(),
            Format::Text,
            |_| {},
            |m| seen.push((m.kind, m.name.to_string(), m.text.to_string())),
        )
        .unwrap();
    let om = "# TYPE t_celsius gauge\n# UNIT t_celsius celsius\n# HELP t_celsius Temp.\n\
              t_celsius 1\n# EOF\n";
    Parser::new()
        .parse_with_metadata(
            om.as_bytes(),
            Format::OpenMetrics,
            |_| {},
            |m| seen.push((m.kind, m.name.to_string(), m.text.to_string())),
        )
        .unwrap();
    let s = |k, n: &str, t: &str| (k, n.to_string(), t.to_string());
    assert_eq!(
        seen,
        [
            s(MetaKind::Help, "a_total", "Requests \\\\ \"served\"."),
            s(MetaKind::Type, "a_total", "counter"),
            s(MetaKind::Type, "t_celsius", "gauge"),
            s(MetaKind::Unit, "t_celsius", "celsius"),
            s(MetaKind::Help, "t_celsius", "Temp."),
        ]
    );
    assert_eq!(unescape_help("Requests \\\\ x\\n"), "Requests \\ x\n");
}
