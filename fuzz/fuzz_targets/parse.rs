//! Feeds arbitrary bytes to both exposition parsers: they must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postflight::scrape::parse::{Format, parse};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Text, Format::OpenMetrics] {
        let mut n = 0usize;
        if let Ok(stats) = parse(data, format, |s| {
            n += 1;
            assert!(s.series.starts_with(s.name));
            for (name, value) in s.labels.iter() {
                assert!(!name.is_empty());
                let _ = value.len();
            }
        }) {
            assert_eq!(stats.samples, n);
        }
    }
});
