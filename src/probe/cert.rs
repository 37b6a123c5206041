//! Certificate expiry (`notAfter`) read straight from the DER bytes of an X.509 certificate.
//!
//! A probe only needs one field of the peer's certificates, so rather than a full X.509 parser
//! this walks the few DER elements in front of it:
//! `Certificate → tbsCertificate → [0] version?, serialNumber, signature, issuer → validity →
//! notAfter`. Every read is bounds-checked: malformed, truncated or hostile input gives `None`,
//! never a panic (the bytes come from whatever server the probe talked to).

/// DER tags used on the way to `notAfter`.
const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_VERSION: u8 = 0xa0; // [0] EXPLICIT, constructed
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents, and what follows it.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    rest: &'a [u8],
}

/// Reads one element. Only single-byte tags and definite lengths of up to 4 bytes are accepted,
/// which covers every certificate field on the way to `notAfter`.
fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tag: never used by the fields we walk
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length, not allowed in DER; more than 4 bytes of length
        // would describe a certificate larger than anything a TLS handshake carries.
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let (len_bytes, after) = input.split_at(n);
        input = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if input.len() < len {
        return None;
    }
    let (value, rest) = input.split_at(len);
    Some(Tlv { tag, value, rest })
}

/// Reads one element and checks its tag.
fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    read_tlv(input).filter(|t| t.tag == tag)
}

/// The `notAfter` of a DER-encoded certificate, in seconds since the Unix epoch.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let cert = expect(der, TAG_SEQUENCE)?;
    let tbs = expect(cert.value, TAG_SEQUENCE)?;
    let mut rest = tbs.value;
    // version is optional (absent means v1).
    if let Some(v) = read_tlv(rest).filter(|t| t.tag == TAG_VERSION) {
        rest = v.rest;
    }
    rest = expect(rest, TAG_INTEGER)?.rest; // serialNumber
    rest = expect(rest, TAG_SEQUENCE)?.rest; // signature AlgorithmIdentifier
    rest = expect(rest, TAG_SEQUENCE)?.rest; // issuer Name
    let validity = expect(rest, TAG_SEQUENCE)?;
    let not_before = read_tlv(validity.value)?;
    let not_after = read_tlv(not_before.rest)?;
    parse_time(not_after.tag, not_after.value)
}

/// Parses an X.509 `Time`: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049, RFC 5280 §4.1.2.5.1) or
/// GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn parse_time(tag: u8, v: &[u8]) -> Option<i64> {
    // Slicing through `get` throughout: the lengths are checked here, but a panic on a
    // server's bytes would be a crash of the daemon, so no indexing that could panic.
    let (year, rest) = match tag {
        TAG_UTC_TIME if v.len() == 13 => {
            let yy = digits(v.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, v.get(2..)?)
        }
        TAG_GENERALIZED_TIME if v.len() == 15 => (digits(v.get(..4)?)?, v.get(4..)?),
        _ => return None,
    };
    // rest is MMDDHHMMSSZ
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| rest.get(i..i + 2).and_then(digits);
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, field(0)?, field(2)?)?;
    let t = date.and_hms_opt(field(4)?, field(6)?, field(8)?)?;
    Some(t.and_utc().timestamp())
}

/// An ASCII decimal number; `None` on any non-digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests;
