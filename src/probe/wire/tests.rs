use super::*;

fn head(raw: &str) -> Result<Option<(Head, usize)>, String> {
    parse_head(raw.as_bytes())
}

#[test]
fn heads_are_parsed_with_their_framing() {
    let (h, n) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.framing, n), (200, Framing::Length(5), 38));
    // Transfer-Encoding wins over Content-Length; a coding other than chunked last, or
    // neither header, runs to the close; 204 has no body whatever it declares.
    for (raw, framing) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Framing::Chunked,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Framing::Close,
        ),
        ("HTTP/1.0 200 OK\r\n\r\n", Framing::Close),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            Framing::None,
        ),
    ] {
        let (h, _) = head(raw).unwrap().unwrap();
        assert_eq!(h.framing, framing, "{raw:?}");
    }
    let (h, _) = head("HTTP/1.1 302 Found\r\nLocation:  /next \r\nContent-Length: 0\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.location.as_deref()), (302, Some("/next")));
    // Repeated equal lengths are one length; different ones are refused.
    let (h, _) = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.framing, Framing::Length(3));
    assert_eq!(
        head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").unwrap_err(),
        "HTTP: conflicting Content-Length values"
    );
    assert_eq!(
        head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").unwrap_err(),
        "HTTP: invalid Content-Length"
    );
    assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
    assert_eq!(
        head("SSH-2.0-OpenSSH_9.6\r\n\r\n").unwrap_err(),
        "HTTP: invalid response: invalid HTTP version"
    );
    let many = format!(
        "HTTP/1.1 200 OK\r\n{}\r\n",
        "X: y\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(
        parse_head(many.as_bytes()).unwrap_err(),
        "HTTP: more than 100 fields in the response head"
    );
}

#[test]
fn a_connection_persists_only_when_http_1_1_says_so() {
    for (raw, persistent) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false),
        (
            "HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\n\r\n",
            false,
        ),
        ("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", true),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false),
    ] {
        let (h, _) = head(raw).unwrap().unwrap();
        assert_eq!(h.persistent, persistent, "{raw:?}");
    }
}

#[tokio::test]
async fn a_body_is_clean_when_its_framing_ends_it_with_nothing_after() {
    // (response head, bytes already read past it, bytes still on the wire, clean)
    let cases: [(&str, &[u8], &[u8], bool); 8] = [
        ("Content-Length: 5", b"hel", b"lo", true),
        ("Content-Length: 5", b"hello", b"", true),
        ("Content-Length: 5", b"helloHTTP", b"", false),
        ("Content-Length: 5", b"hel", b"loX", false),
        (
            "Transfer-Encoding: chunked",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"",
            true,
        ),
        (
            "Transfer-Encoding: chunked",
            b"5\r\nhello\r\n0\r\n\r\nX",
            b"",
            false,
        ),
        // Until the close: the connection is spent.
        ("X-None: 1", b"hello", b"", false),
        ("Content-Length: 0", b"", b"", true),
    ];
    for (field, start, rest, clean) in cases {
        let raw = format!("HTTP/1.1 200 OK\r\n{field}\r\n\r\n");
        let (h, _) = head(&raw).unwrap().unwrap();
        let mut io = rest;
        let mut out = Vec::new();
        let got = read_body(&mut io, &h, false, start.to_vec(), 1 << 20, true, &mut out)
            .await
            .unwrap();
        assert_eq!(got, clean, "{field} {start:?} {rest:?}");
        assert_eq!(out, b"hello"[..out.len()].to_vec(), "{field}");
    }
}

/// A sink with a 1 MiB limit into `out`.
fn sink(out: &mut Vec<u8>, keep: bool) -> Sink<'_> {
    Sink {
        keep,
        out,
        total: 0,
        limit: 1 << 20,
    }
}

fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    let mut sink = sink(&mut out, true);
    let mut c = Chunked::default();
    for p in parts {
        c.feed(p, &mut sink).map_err(|e| match e {
            BodyError::Failed(r) => r,
            BodyError::TooLarge { .. } => "too large".to_string(),
        })?;
    }
    let done = c.done();
    Ok((out, done))
}

#[test]
fn chunked_bodies_decode_however_they_arrive() {
    let raw: &[u8] =
        b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
    let want = b"helloabcdefghijklmnopqrstuvwxyz".to_vec();
    assert_eq!(decode(&[raw]).unwrap(), (want.clone(), true));
    // Split at every position, and byte by byte.
    for cut in 0..raw.len() {
        assert_eq!(
            decode(&[&raw[..cut], &raw[cut..]]).unwrap(),
            (want.clone(), true),
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = raw.chunks(1).collect();
    assert_eq!(decode(&bytes).unwrap(), (want, true));
    // Bare LF line ends are taken; an unfinished body is not done.
    assert_eq!(decode(&[b"2\nab\n0\n\n"]).unwrap(), (b"ab".to_vec(), true));
    assert_eq!(decode(&[b"5\r\nhel"]).unwrap(), (b"hel".to_vec(), false));
    assert_eq!(decode(&[b"0\r\n"]).unwrap(), (Vec::new(), false));
}

#[test]
fn broken_chunked_bodies_are_errors() {
    assert_eq!(
        decode(&[b"zz\r\n"]).unwrap_err(),
        "HTTP: invalid chunked body: no chunk size"
    );
    assert_eq!(
        decode(&[b"2\r\nabX"]).unwrap_err(),
        "HTTP: invalid chunked body: no line end after a chunk"
    );
    assert_eq!(
        decode(&[b"11111111111111111\r\n"]).unwrap_err(),
        "HTTP: invalid chunked body: chunk size too large"
    );
    let long_ext = format!("1;{}\r\n", "e".repeat(LINE_LIMIT + 1));
    assert!(decode(&[long_ext.as_bytes()]).is_err());
    // Many small chunks still count towards the body limit.
    let mut out = Vec::new();
    let mut sink = sink(&mut out, false);
    let mut c = Chunked::default();
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
    let mut err = None;
    for _ in 0..((1 << 20) / 4096 + 1) {
        if let Err(e) = c.feed(chunk.as_bytes(), &mut sink) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(BodyError::TooLarge { declared: None }));
    assert!(out.is_empty(), "an unkept body is only counted");
}
