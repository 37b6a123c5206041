//! TCP probes (`tcp://host:port`: success when a connection opens) and the connect step every
//! HTTP probe starts with.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Phases, Progress};

/// Probes `tcp://host:port`.
pub(crate) async fn probe(url: &str, progress: &mut Progress) -> Result<(), String> {
    let (host, port) = parse_tcp_url(url)?;
    let t = Instant::now();
    let stream = connect(host, port).await?;
    Phases::add(&mut progress.phases.connect, t.elapsed());
    // Closing at once is all a TCP probe does; the peer sees a connect and a FIN.
    drop(stream);
    Ok(())
}

/// Splits `tcp://host:port[/]` into host (brackets of an IPv6 literal removed) and port.
pub fn parse_tcp_url(url: &str) -> Result<(&str, u16), String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| "invalid URL: expected tcp://host:port".to_string())?;
    let authority = rest.trim_end_matches('/');
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| "invalid URL: tcp:// needs host:port".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid URL: bad port {port:?}"))?;
    let host = strip_brackets(host);
    if host.is_empty() {
        return Err("invalid URL: tcp:// needs host:port".into());
    }
    Ok((host, port))
}

/// `[::1]` → `::1`; anything else unchanged.
pub(crate) fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` and connects to its addresses in turn, returning the first connection that
/// opens. Reasons: `DNS lookup of X failed: ...`, `connection refused`, `connect to A: ...`.
///
/// Addresses are tried one after the other (no Happy Eyeballs): the probe's timeout bounds the
/// whole attempt, so an unreachable first address can use it up. IP literals skip the resolver,
/// which saves a blocking-pool thread per probe.
pub(crate) async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return connect_addr(SocketAddr::new(ip, port)).await;
    }
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?;
    let mut last = None;
    for addr in addrs {
        match connect_addr(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| format!("DNS lookup of {host} failed: no addresses")))
}

async fn connect_addr(addr: SocketAddr) -> Result<TcpStream, String> {
    match TcpStream::connect(addr).await {
        // No TCP_NODELAY: a probe's request goes out in one write on a fresh connection, which
        // Nagle never holds back, so the extra syscall per probe would buy nothing.
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err("connection refused".to_string())
        }
        Err(e) => Err(format!("connect to {addr} failed: {e}")),
    }
}

#[cfg(test)]
mod tests;
