//! Markup built so that only literals can be markup: [`Html::raw`] takes `&'static str`, and
//! every value from the config or the store goes through [`Html::text`], which escapes it for
//! element content and quoted attribute values alike. A probe or group name such as
//! `"><script>` is shown as those characters, never parsed.

use std::fmt::Write as _;

/// A page being written.
#[derive(Default)]
pub struct Html(String);

impl Html {
    /// Markup: only string literals, so no value can end up here.
    pub fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text, escaped: safe in element content and in a double- or single-quoted attribute.
    pub fn text(&mut self, s: &str) -> &mut Self {
        escape_into(&mut self.0, s);
        self
    }

    /// Formatted text, escaped like [`Html::text`].
    pub fn fmt(&mut self, args: std::fmt::Arguments<'_>) -> &mut Self {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = s.write_fmt(args);
        self.text(&s)
    }

    /// The finished page.
    pub fn finish(self) -> String {
        self.0
    }
}

/// Appends `s` with `& < > " '` escaped.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s` escaped (see [`escape_into`]).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}
