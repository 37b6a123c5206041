//! Property tests: the exposition parser never panics, whatever it is fed.
//!
//! (a) arbitrary bytes, (b) real pages from the corpus mutated by byte flips, truncation and
//! splices of two pages. The parser may accept or reject each input; it must return, and an
//! accepted page must hand out samples whose parts are consistent. Bounded case counts keep
//! this under a few seconds in a debug build; the cargo-fuzz target in `fuzz/` explores deeper.

use postflight::scrape::parse::{Format, parse};
use proptest::prelude::*;
use std::sync::OnceLock;

#[path = "common/corpus.rs"]
mod corpus;

/// Corpus pages, or a small built-in page when the shared corpus is absent.
fn pages() -> &'static [Vec<u8>] {
    static PAGES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PAGES.get_or_init(|| {
        let dir = corpus::corpus_dir().unwrap_or_default();
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension()
                            .is_some_and(|x| x == "prom" || x == "openmetrics")
                    })
                    .filter_map(|p| std::fs::read(p).ok())
                    .collect()
            })
            .unwrap_or_default();
        if v.is_empty() {
            eprintln!("corpus absent at {}; using a built-in page", dir.display());
        }
        v.push(
            b"# TYPE a counter\na_total{x=\"1\\\"\\n\"} 1 # {t=\"x\"} 1 1.5\na_created 1.0\n# EOF\n"
                .to_vec(),
        );
        v
    })
}

/// Runs both parsers over `body`, checking what they hand out.
fn feed(body: &[u8]) {
    for format in [Format::Text, Format::OpenMetrics] {
        let mut n = 0usize;
        let res = parse(body, format, |s| {
            n += 1;
            assert!(!s.name.is_empty());
            assert!(s.series.starts_with(s.name));
            for (name, value) in s.labels.iter() {
                assert!(!name.is_empty());
                let _ = value.len();
            }
        });
        if let Ok(stats) = res {
            assert_eq!(stats.samples, n);
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Splice {
        other: usize,
        from: usize,
        to: usize,
        at: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes biased towards the parser's syntax characters, where bugs hide.
    let syntax = prop_oneof![
        Just(b'"'),
        Just(b'\\'),
        Just(b'{'),
        Just(b'}'),
        Just(b','),
        Just(b'='),
        Just(b'#'),
        Just(b' '),
        Just(b'\n'),
        Just(b'\t'),
        Just(0xff),
        any::<u8>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), syntax).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<usize>(), 0usize..400, any::<usize>())
            .prop_map(|(other, from, len, at)| Mutation::Splice { other, from, to: from.wrapping_add(len), at }),
        1 => (any::<usize>(), 0usize..50).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

fn apply(mut page: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    let pages = pages();
    for m in muts {
        let len = page.len().max(1);
        match *m {
            Mutation::Flip { at, byte } => {
                if !page.is_empty() {
                    page[at % len] = byte;
                }
            }
            Mutation::Truncate { at } => page.truncate(at % len),
            Mutation::Splice {
                other,
                from,
                to,
                at,
            } => {
                let o = &pages[other % pages.len()];
                let olen = o.len().max(1);
                let (a, b) = (from % olen, (to % olen).max(from % olen));
                let piece = o.get(a..b).unwrap_or(&[]).to_vec();
                let at = at % (page.len() + 1);
                page.splice(at..at, piece);
            }
            Mutation::Delete { at, len: l } => {
                let at = at % (page.len() + 1);
                let end = (at + l).min(page.len());
                page.drain(at..end);
            }
        }
    }
    page
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        feed(&body);
    }

    #[test]
    fn arbitrary_syntax_soup_never_panics(body in proptest::collection::vec(
        proptest::sample::select(b"a_1.\"\\{},=# \nEOF+-e".to_vec()), 0..256)) {
        feed(&body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_pages_never_panic(
        which in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 1..8),
    ) {
        let pages = pages();
        let page = apply(pages[which % pages.len()].clone(), &muts);
        feed(&page);
    }
}

#[test]
fn unmutated_corpus_pages_parse() {
    for p in pages() {
        // Each page is valid in at least the format it was written in.
        let text = parse(p, Format::Text, |_| {}).is_ok();
        let om = parse(p, Format::OpenMetrics, |_| {}).is_ok();
        assert!(text || om);
    }
}
