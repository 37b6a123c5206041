//! Go's number formatting, as Prometheus' templates print numbers: `%v` of a float64, `%.4g`
//! in the humanize functions, and the verbs `printf` supports.

/// `NaN`, `+Inf` or `-Inf` as Go and Prometheus spell them; `None` for a finite number.
pub fn non_finite(v: f64) -> Option<&'static str> {
    match v {
        v if v.is_nan() => Some("NaN"),
        f64::INFINITY => Some("+Inf"),
        f64::NEG_INFINITY => Some("-Inf"),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)` with Go's rules for when to use an exponent;
/// `prec = None` is the shortest representation (`%v`).
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = non_finite(v) {
        return s.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Digits and decimal exponent: Rust's `{:e}` gives the shortest round-trip digits, and
    // `{:.Ne}` rounds to N+1 significant digits like Go does.
    let sci = match prec {
        None => format!("{:e}", v),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    // Go decides between %e and %f with precision 6 for the shortest form.
    let eprec: i32 = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            // Go: if eprec > digs.nd && digs.nd >= digs.dp { eprec = digs.nd }
            let nd = digits.len() as i32;
            if p > nd && nd > exp { nd } else { p }
        }
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `%v` of a float64 in Go templates (`{{ $value }}`): shortest representation, exponent from
/// 1e6 up or below 1e-4 (`1e+06`).
pub fn format_value(v: f64) -> String {
    format_g(v, None)
}

/// Go's `%e` with a precision.
fn format_e(v: f64, prec: usize) -> String {
    if !v.is_finite() {
        return format_g(v, None);
    }
    let s = format!("{:.*e}", prec, v);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// A value passed to `printf`.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %f %e %g %x %%`, with flags
/// `-+ 0`, width and precision.
pub fn sprintf(format: &str, args: &[Arg]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = args.iter();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let mut s = match (verb, arg) {
            ('v' | 's', Arg::Str(s)) => match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('q', Arg::Str(s)) => format!("{s:?}"),
            ('v', Arg::Num(n)) => format_value(*n),
            ('g', Arg::Num(n)) => format_g(*n, precision),
            ('f' | 'F', Arg::Num(n)) => {
                if n.is_finite() {
                    format!("{:.*}", precision.unwrap_or(6), n)
                } else {
                    format_value(*n)
                }
            }
            ('e', Arg::Num(n)) => format_e(*n, precision.unwrap_or(6)),
            ('d', Arg::Num(n)) if n.fract() == 0.0 && n.is_finite() => format!("{}", *n as i64),
            ('x', Arg::Num(n)) if n.fract() == 0.0 && n.is_finite() && *n >= 0.0 => {
                format!("{:x}", *n as u64)
            }
            ('x', Arg::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('s', Arg::Num(n)) => format!("%!s(float64={})", format_value(*n)),
            (v, Arg::Num(n)) => format!("%!{v}(float64={})", format_value(*n)),
            (v, Arg::Str(s)) => format!("%!{v}(string={s})"),
        };
        if let Arg::Num(n) = arg
            && !s.starts_with('-')
            && matches!(verb, 'v' | 'g' | 'f' | 'F' | 'e' | 'd')
            && n.is_finite()
        {
            if plus {
                s.insert(0, '+');
            } else if space {
                s.insert(0, ' ');
            }
        }
        let width: usize = width.parse().unwrap_or(0);
        let len = s.chars().count();
        if len < width {
            let pad = width - len;
            if minus {
                s.push_str(&" ".repeat(pad));
            } else if zero && matches!(arg, Arg::Num(_)) {
                let sign = s.starts_with(['-', '+', ' ']);
                let at = usize::from(sign);
                s.insert_str(at, &"0".repeat(pad));
            } else {
                s.insert_str(0, &" ".repeat(pad));
            }
        }
        out.push_str(&s);
    }
    if next.next().is_some() {
        out.push_str("%!(EXTRA)");
    }
    out
}

#[cfg(test)]
mod tests;
