//! HTTP/1.1 on a probe's connection: one request, one response, then the connection is dropped.
//!
//! A probe sends a request without a body and reads one response, so it needs a small part of
//! a client: the request head written in one buffer, the response head parsed by `httparse`
//! (the parser hyper itself uses), and the body framed as RFC 9112 §6.3 says (no body for HEAD,
//! 1xx, 204 and 304; `Transfer-Encoding: chunked`; `Content-Length`; otherwise until the server
//! closes). A general client's machinery (a connection task or future beside the request, a
//! request channel, header maps, a read buffer of its own per connection) would cost a large
//! part of a probe's CPU and bring nothing a probe uses.
//!
//! Limits: a response head of at most [`HEAD_LIMIT`] with at most [`MAX_HEADERS`] fields, a
//! body of at most the caller's limit (checked against a declared length before reading, and
//! as it arrives otherwise). Every other failure is a reason in words, prefixed `HTTP:`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head (status line and fields): 64 KiB, as Go's default is 1 MiB and
/// hyper's ~400 KiB; a health endpoint's head is a few hundred bytes.
pub const HEAD_LIMIT: usize = 64 * 1024;

/// Most response header fields read (hyper's default is 100 as well).
pub const MAX_HEADERS: usize = 100;

/// Longest chunk-size line or trailer field in a chunked body.
const LINE_LIMIT: usize = 4096;

/// What a probe learns from a response head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `Location`, when it is visible ASCII (as `http::HeaderValue::to_str` requires).
    pub location: Option<String>,
    /// `Content-Type`, likewise.
    pub content_type: Option<String>,
    framing: Framing,
    /// HTTP/1.1 without `Connection: close`: the server keeps the connection open after this
    /// response (HTTP/1.0's `keep-alive` is not taken up).
    pub persistent: bool,
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit: declared so (then nothing was read), or found so while reading.
    TooLarge { declared: Option<u64> },
    /// The connection failed or the framing was broken: a reason in words.
    Failed(String),
}

impl From<String> for BodyError {
    fn from(reason: String) -> Self {
        BodyError::Failed(reason)
    }
}

/// How the body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

/// A request head: `METHOD target HTTP/1.1`, then the fields, then the blank line.
pub struct RequestHead(Vec<u8>);

impl RequestHead {
    pub fn new(method: &str, target: &str) -> Self {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(method.as_bytes());
        b.push(b' ');
        b.extend_from_slice(target.as_bytes());
        b.extend_from_slice(b" HTTP/1.1\r\n");
        RequestHead(b)
    }

    /// Adds a field. Names and values are validated by the caller.
    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value);
        self.0.extend_from_slice(b"\r\n");
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// Sends `request` and reads the response head. Returns the head and the bytes read past it
/// (the start of the body).
pub async fn send_and_read_head<IO>(io: &mut IO, request: &[u8]) -> Result<(Head, Vec<u8>), String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request)
        .await
        .map_err(|e| format!("HTTP: sending the request: {}", io_reason(&e)))?;
    // A TLS stream holds written data until flushed; a TCP stream's flush does nothing.
    io.flush()
        .await
        .map_err(|e| format!("HTTP: sending the request: {}", io_reason(&e)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if let Some((head, used)) = parse_head(&buf)? {
            if (100..200).contains(&head.status) && head.status != 101 {
                // 100 Continue, 103 Early Hints: interim, the final answer follows.
                buf.drain(..used);
                continue;
            }
            buf.drain(..used);
            return Ok((head, buf));
        }
        if buf.len() >= HEAD_LIMIT {
            return Err(format!(
                "HTTP: response head larger than {} KiB",
                HEAD_LIMIT / 1024
            ));
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.len().max(1024));
        }
        let n = read_some(io, &mut buf).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "HTTP: connection closed before a response".to_string()
            } else {
                "HTTP: connection closed in the middle of the response head".to_string()
            });
        }
    }
}

/// Parses a complete head at the start of `buf`: `None` when more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!(
                "HTTP: more than {MAX_HEADERS} fields in the response head"
            ));
        }
        Err(e) => return Err(format!("HTTP: invalid response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let visible = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .map(|v| v.trim().to_string())
    };
    let mut location = None;
    let mut content_type = None;
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None; // Some(chunked last)
    let mut persistent = resp.version == Some(1);
    for f in resp.headers.iter() {
        if f.name.eq_ignore_ascii_case("location") {
            location = visible(f.value);
        } else if f.name.eq_ignore_ascii_case("content-type") {
            content_type = visible(f.value);
        } else if f.name.eq_ignore_ascii_case("content-length") {
            // Several fields, or a list, must all say the same number (RFC 9110 §8.6).
            for part in f.value.split(|&b| b == b',') {
                let n = std::str::from_utf8(part)
                    .ok()
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| "HTTP: invalid Content-Length".to_string())?;
                if length.is_some_and(|l| l != n) {
                    return Err("HTTP: conflicting Content-Length values".to_string());
                }
                length = Some(n);
            }
        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = f
                .value
                .split(|&b| b == b',')
                .map(|c| c.trim_ascii())
                .rfind(|c| !c.is_empty());
            transfer_encoding = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
        } else if f.name.eq_ignore_ascii_case("connection")
            && f.value
                .split(|&b| b == b',')
                .any(|o| o.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            persistent = false;
        }
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a coding other than chunked
    // last means the body runs to the close.
    let framing = match (transfer_encoding, length) {
        _ if status == 204 || status == 304 || (100..200).contains(&status) => Framing::None,
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    Ok(Some((
        Head {
            status,
            location,
            content_type,
            framing,
            persistent,
        },
        used,
    )))
}

/// Reads the body after `head`, at most `limit` bytes, appending it to `out` when `keep` (else
/// only counting it). `start` holds the bytes already read past the head; a HEAD request
/// (`head_request`) has no body. Returns whether the body ended by its framing with nothing
/// read past it: then, if the head is [`Head::persistent`], the connection can carry the next
/// request.
pub async fn read_body<IO>(
    io: &mut IO,
    head: &Head,
    head_request: bool,
    mut start: Vec<u8>,
    limit: usize,
    keep: bool,
    out: &mut Vec<u8>,
) -> Result<bool, BodyError>
where
    IO: AsyncRead + Unpin,
{
    let mut sink = Sink {
        keep,
        out,
        total: 0,
        limit,
    };
    let framing = if head_request {
        Framing::None
    } else {
        head.framing
    };
    let clean = match framing {
        Framing::None => start.is_empty(),
        Framing::Length(n) => {
            if n > limit as u64 {
                return Err(BodyError::TooLarge { declared: Some(n) });
            }
            let n = n as usize;
            if keep {
                sink.out.reserve_exact(n);
            }
            let mut clean = start.len() <= n;
            start.truncate(n);
            sink.push(&start)?;
            let mut buf = start;
            while sink.total < n {
                buf.clear();
                buf.reserve((n - sink.total).min(64 * 1024));
                if read_some(io, &mut buf).await? == 0 {
                    return Err(BodyError::Failed(format!(
                        "HTTP: connection closed after {} of {n} body bytes",
                        sink.total
                    )));
                }
                let take = buf.len().min(n - sink.total);
                clean &= take == buf.len();
                sink.push(&buf[..take])?;
            }
            clean
        }
        Framing::Close => {
            sink.push(&start)?;
            let mut buf = start;
            loop {
                buf.clear();
                buf.reserve(16 * 1024);
                match read_some(io, &mut buf).await {
                    Ok(0) => break,
                    Ok(_) => sink.push(&buf)?,
                    // A TLS server that closes without close_notify: the close still ends
                    // the body (as curl and Go take it).
                    Err(e) if e.ends_with(EOF_WITHOUT_CLOSE_NOTIFY) => break,
                    Err(e) => return Err(BodyError::Failed(e)),
                }
            }
            false
        }
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            chunks.feed(&start, &mut sink)?;
            let mut buf = start;
            while !chunks.done() {
                buf.clear();
                buf.reserve(16 * 1024);
                if read_some(io, &mut buf).await? == 0 {
                    return Err(BodyError::Failed(
                        "HTTP: connection closed in the middle of a chunked body".into(),
                    ));
                }
                chunks.feed(&buf, &mut sink)?;
            }
            !chunks.extra
        }
    };
    Ok(clean)
}

/// Counts body bytes against the limit and keeps them when asked.
struct Sink<'a> {
    keep: bool,
    out: &'a mut Vec<u8>,
    total: usize,
    limit: usize,
}

impl Sink<'_> {
    fn push(&mut self, data: &[u8]) -> Result<(), BodyError> {
        self.total += data.len();
        if self.total > self.limit {
            // Stop here: the caller drops the connection unread.
            return Err(BodyError::TooLarge { declared: None });
        }
        if self.keep {
            self.out.extend_from_slice(data);
        }
        Ok(())
    }
}

/// The chunked transfer coding (RFC 9112 §7.1), decoded as bytes arrive: chunk extensions
/// and trailer fields are read and ignored.
#[derive(Default, Debug)]
struct Chunked {
    state: ChunkState,
    /// Hex digits of the size line, or the length of the current trailer line.
    size: u64,
    digits: u32,
    line: usize,
    /// Bytes came after the last chunk's trailer.
    extra: bool,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the size's hex digits.
    #[default]
    Size,
    /// After the digits: extensions until the line ends.
    SizeRest,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd {
        cr: bool,
    },
    /// Trailer fields after the last chunk, until an empty line.
    Trailer,
    Done,
}

impl Chunked {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    fn feed(&mut self, mut input: &[u8], sink: &mut Sink<'_>) -> Result<(), BodyError> {
        let bad = |what: &str| BodyError::Failed(format!("HTTP: invalid chunked body: {what}"));
        while let Some(&b) = input.first() {
            match self.state {
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        if self.digits == 16 {
                            return Err(bad("chunk size too large"));
                        }
                        self.size = self.size << 4 | u64::from(d);
                        self.digits += 1;
                        input = &input[1..];
                    }
                    None if self.digits == 0 => return Err(bad("no chunk size")),
                    None => {
                        self.state = ChunkState::SizeRest;
                        self.line = 0;
                    }
                },
                ChunkState::SizeRest => {
                    input = &input[1..];
                    if b == b'\n' {
                        let size = std::mem::take(&mut self.size);
                        self.digits = 0;
                        self.line = 0;
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    } else {
                        self.line += 1;
                        if self.line > LINE_LIMIT {
                            return Err(bad("chunk extension too long"));
                        }
                    }
                }
                ChunkState::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    sink.push(&input[..n])?;
                    input = &input[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd { cr: false }
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd { cr } => {
                    input = &input[1..];
                    match b {
                        b'\r' if !cr => self.state = ChunkState::DataEnd { cr: true },
                        b'\n' => self.state = ChunkState::Size,
                        _ => return Err(bad("no line end after a chunk")),
                    }
                }
                ChunkState::Trailer => {
                    input = &input[1..];
                    match b {
                        b'\n' if self.line == 0 => self.state = ChunkState::Done,
                        b'\n' => self.line = 0,
                        // A CR before the LF does not count towards the line.
                        b'\r' if self.line == 0 => {}
                        _ => {
                            self.line += 1;
                            if self.line > LINE_LIMIT {
                                return Err(bad("trailer field too long"));
                            }
                        }
                    }
                }
                // Bytes after the last chunk are not this response's.
                ChunkState::Done => {
                    self.extra = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// How rustls words a close without close_notify (`std::io::ErrorKind::UnexpectedEof`).
const EOF_WITHOUT_CLOSE_NOTIFY: &str = "closed without close_notify";

/// One read into `buf`'s spare capacity; the count read (0 at the end of the stream).
async fn read_some<IO: AsyncRead + Unpin>(io: &mut IO, buf: &mut Vec<u8>) -> Result<usize, String> {
    if buf.capacity() == buf.len() {
        buf.reserve(1024);
    }
    io.read_buf(buf).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("HTTP: connection {EOF_WITHOUT_CLOSE_NOTIFY}")
        } else {
            format!("HTTP: reading the response: {}", io_reason(&e))
        }
    })
}

/// An I/O error in words, without the `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        BrokenPipe => "connection closed by the server".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
