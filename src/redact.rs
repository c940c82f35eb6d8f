//! Secret masking: no secret value ever leaves faultline (journal, console, files,
//! spans, log sinks), in any form it can take on the way out.
//!
//! Every resolved secret value is replaced by [`MASK`] wherever it appears inside a
//! string, raw or encoded as a client or a server would: percent-encoded (whole or in
//! part, upper- or lower-case hex: each URL component encodes its own set), form-encoded
//! (`+` for a space), JSON-escaped at any depth (`\"`, `\u00e9`, as an echoing server
//! writes it; `\\\"` when that JSON is quoted in JSON again, as an error message quoting
//! a response body is), or base64-encoded inside a longer value (HTTP basic auth:
//! `base64("user:" + secret)`). One pattern per secret accepts every form of every
//! character, so mixed forms (`p@ss%20word`, `p%40ss+word`) are found too.
//!
//! A secret cut short is masked too: messages quote values in excerpts
//! (`tolerance::brief` keeps 120 characters and appends `...`), and the cut may fall
//! inside a secret, which the whole-secret pattern no longer finds. At least
//! [`MIN_CUT`] leading characters of a secret (in any form) followed by an ellipsis
//! (`...` or `…`) become `***...`. Only before an ellipsis: a string that merely ends
//! like the start of a secret is left alone.
//!
//! Values shorter than [`MIN_SUBSTRING`] characters are masked only where a whole
//! string equals them: masking every "ab" inside every output would make journals
//! unreadable, and such short values are not secrets worth the name.

use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// What a secret becomes.
pub const MASK: &str = "***";

/// Shortest secret masked inside longer strings.
pub const MIN_SUBSTRING: usize = 3;

/// Fewest leading characters of a secret masked where an excerpt cuts it short.
pub const MIN_CUT: usize = 4;

/// Most leading characters of a secret the cut rule follows: excerpts are at most 120
/// characters (`tolerance::brief`), and the nesting the rule needs grows with it.
const MAX_CUT: usize = 200;

/// Fewest base64 characters masked: shorter runs would mask parts of unrelated
/// base64 data far more often than they hide a secret.
const MIN_BASE64: usize = 4;

/// Masks a fixed set of secret values. Its `Debug` shows how many, never which.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Whole strings equal to one of these are masked (every secret, even short).
    exact: Vec<String>,
    /// The compiled patterns (none without a secret long enough), shared by clones.
    patterns: Option<std::sync::Arc<Patterns>>,
}

/// What [`Redactor`] matches inside strings.
struct Patterns {
    /// Every form of every secret of at least [`MIN_SUBSTRING`] characters.
    whole: Regex,
    /// The first [`MIN_CUT`] or more characters of a secret longer than that, in any
    /// form, followed by an ellipsis (group `cut`): a secret an excerpt cut short.
    cut: Option<Regex>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.exact.len())
    }
}

impl PartialEq for Redactor {
    fn eq(&self, other: &Redactor) -> bool {
        self.exact == other.exact
    }
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = values.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut alternatives: Vec<String> = Vec::new();
        let mut cuts: Vec<String> = Vec::new();
        for s in secrets
            .iter()
            .filter(|s| s.chars().count() >= MIN_SUBSTRING)
        {
            alternatives.push(s.chars().map(char_forms).collect());
            alternatives.extend(base64_forms(s.as_bytes()));
            cuts.extend(cut_form(s));
        }
        // Longest first: the leftmost match then takes the whole of a longer secret.
        alternatives.sort_by_key(|a| std::cmp::Reverse(a.len()));
        let pattern = (!alternatives.is_empty()).then(|| {
            let all = alternatives.join("|");
            regex::RegexBuilder::new(&all)
                .size_limit(64 << 20)
                .build()
                // Only a pathological secret (megabytes) could exceed the size limit:
                // fall back to its raw form rather than masking nothing.
                .unwrap_or_else(|_| {
                    let raw: Vec<String> = secrets.iter().map(|s| regex::escape(s)).collect();
                    Regex::new(&raw.join("|")).unwrap_or_else(|_| Regex::new("$^").expect("valid"))
                })
        });
        // A cut secret: one alternative per secret, its optional tail nested (linear
        // in the secret's length), then the ellipsis. A secret too long for the
        // regex limits only loses this rule, never the whole-secret one.
        let cut = (!cuts.is_empty())
            .then(|| {
                regex::RegexBuilder::new(&format!(r"(?:{})(?P<cut>\.\.\.|…)", cuts.join("|")))
                    .size_limit(64 << 20)
                    .nest_limit(4 * MAX_CUT as u32)
                    .build()
                    .ok()
            })
            .flatten();
        Redactor {
            exact: secrets,
            patterns: pattern.map(|whole| std::sync::Arc::new(Patterns { whole, cut })),
        }
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Mask secrets inside a string.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.exact.is_empty() {
            return Cow::Borrowed(s);
        }
        if self.exact.iter().any(|x| x == s) {
            return Cow::Owned(MASK.to_string());
        }
        let Some(p) = &self.patterns else {
            return Cow::Borrowed(s);
        };
        let whole = p.whole.replace_all(s, MASK);
        match &p.cut {
            Some(c) if c.is_match(&whole) => {
                Cow::Owned(c.replace_all(&whole, format!("{MASK}$cut")).into_owned())
            }
            _ => whole,
        }
    }

    /// [`Redactor::value`] of a value that is no longer needed: without secrets it is
    /// returned as is, not copied.
    pub fn into_value(&self, v: Value) -> Value {
        if self.exact.is_empty() {
            v
        } else {
            self.value(&v)
        }
    }

    /// Mask secrets in every string (keys included) of a JSON value.
    pub fn value(&self, v: &Value) -> Value {
        if self.exact.is_empty() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.text(s).into_owned()),
            Value::Number(n) if self.exact.iter().any(|x| *x == n.to_string()) => {
                Value::String(MASK.into())
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| self.value(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.text(k).into_owned(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// A regex matching every form one character of a secret takes on the way out.
fn char_forms(c: char) -> String {
    let mut forms = vec![regex::escape(c.encode_utf8(&mut [0; 4]))];
    // Percent-encoded: its UTF-8 bytes, hex in either case.
    let mut pct = String::new();
    for b in c.encode_utf8(&mut [0; 4]).bytes() {
        let _ = write!(pct, "%(?i:{b:02x})");
    }
    forms.push(pct);
    if c == ' ' {
        forms.push(r"\+".into());
    }
    // JSON-escaped: the short escapes, and \uXXXX (UTF-16, as Python's json.dumps
    // writes every non-ASCII character). Each level of JSON quoted in JSON doubles the
    // backslashes before the escape (`\"`, `\\\"`), so any run of them is accepted.
    match c {
        '"' => forms.push(r#"\\+""#.into()),
        '\\' => forms.push(r"(?:\\\\)+".into()),
        '/' => forms.push(r"\\+/".into()),
        '\n' => forms.push(r"\\+n".into()),
        '\r' => forms.push(r"\\+r".into()),
        '\t' => forms.push(r"\\+t".into()),
        '\u{8}' => forms.push(r"\\+b".into()),
        '\u{c}' => forms.push(r"\\+f".into()),
        _ => {}
    }
    let mut units = [0u16; 2];
    let mut escaped = String::new();
    for u in c.encode_utf16(&mut units) {
        let _ = write!(escaped, r"\\+u(?i:{u:04x})");
    }
    forms.push(escaped);
    // In HTML (an echoing server's error page).
    match c {
        '&' => forms.push("&amp;".into()),
        '<' => forms.push("&lt;".into()),
        '>' => forms.push("&gt;".into()),
        '"' => forms.push("&quot;".into()),
        '\'' => forms.push("&#0?39;".into()),
        _ => {}
    }
    format!("(?:{})", forms.join("|"))
}

/// A secret's first [`MIN_CUT`] characters (each in any form), then the rest of it as
/// nested optional groups (up to [`MAX_CUT`] characters): every prefix at least that
/// long, in a pattern linear in its length. `None` for secrets no longer than
/// [`MIN_CUT`] (nothing to cut).
fn cut_form(secret: &str) -> Option<String> {
    let forms: Vec<String> = secret.chars().take(MAX_CUT + 1).map(char_forms).collect();
    if forms.len() <= MIN_CUT {
        return None;
    }
    let tail = forms[MIN_CUT..forms.len() - 1]
        .iter()
        .rev()
        .fold(String::new(), |inner, f| format!("(?:{f}{inner})?"));
    Some(format!("{}{tail}", forms[..MIN_CUT].concat()))
}

/// The base64 characters that encode only the secret's own bits, for each of the three
/// alignments it can have inside a longer encoded value (`user:secret`), in the
/// standard and the URL-safe alphabets.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(secret);
        // Character i encodes bits [6i, 6i + 6) of the data.
        let first = (8 * offset).div_ceil(6);
        let end = (8 * data.len()) / 6;
        if end < first + MIN_BASE64 {
            continue;
        }
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&data);
            let core = regex::escape(&encoded[first..end]);
            if !out.contains(&core) {
                out.push(core);
            }
        }
    }
    out
}

/// Replace every literal value of an experiment's `secrets` block by [`MASK`]
/// (environment references stay: they name a variable, not a value).
pub fn mask_secret_block(experiment: &mut Value) {
    let Some(scopes) = experiment.get_mut("secrets").and_then(Value::as_object_mut) else {
        return;
    };
    for scope in scopes.values_mut() {
        let Some(entries) = scope.as_object_mut() else {
            continue;
        };
        for v in entries.values_mut() {
            let is_ref = v.as_object().is_some_and(|o| o.contains_key("type"));
            if is_ref {
                if let Some(d) = v.get_mut("default") {
                    *d = Value::String(MASK.into());
                }
            } else {
                *v = Value::String(MASK.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_inside_strings_keys_and_numbers() {
        let r = Redactor::new(["s3cr3t".to_string(), "12345".to_string(), "ab".to_string()]);
        assert_eq!(r.text("Bearer s3cr3t!"), "Bearer ***!");
        assert_eq!(
            r.value(&json!({"s3cr3t": [12345, "ab", "abc"]})),
            json!({"***": ["***", "***", "abc"]})
        );
        assert_eq!(
            r.into_value(json!({"s3cr3t": [12345, "ab", "abc"]})),
            json!({"***": ["***", "***", "abc"]})
        );
        let none = Redactor::new(Vec::<String>::new());
        assert_eq!(
            none.into_value(json!({"k": "s3cr3t"})),
            json!({"k": "s3cr3t"})
        );
    }

    #[test]
    fn url_encoded_forms_are_masked_too() {
        let r = Redactor::new(["canary spaced/1".to_string()]);
        assert_eq!(
            r.text("GET /q?k=canary%20spaced%2F1 failed"),
            "GET /q?k=*** failed"
        );
        assert_eq!(r.text("k=canary+spaced%2F1"), "k=***");
        assert_eq!(r.text("canary spaced/1"), "***");
    }

    #[test]
    fn every_form_a_secret_takes_on_the_way_out_is_masked() {
        use base64::Engine as _;
        let r = Redactor::new(["p@ss word".to_string(), "caf\u{e9}\"q".to_string()]);
        for leaked in [
            "p@ss word",
            "p%40ss%20word",
            "p@ss%20word",
            "p%40ss+word",
            "p%40ss%20word".to_lowercase().as_str(),
            "p@ss+word",
            "caf\u{e9}\"q",
            "caf%C3%A9%22q",
            "caf\\u00e9\\\"q",
            "caf\\u00E9\\\"q",
            "caf\u{e9}&quot;q",
        ] {
            let text = format!("GET http://h/x?k={leaked}&y=1 failed");
            assert_eq!(r.text(&text), "GET http://h/x?k=***&y=1 failed", "{leaked}");
        }
        // Basic auth, whatever comes before the secret.
        for user in ["u", "us", "use", "someone"] {
            let header =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:p@ss word"));
            let masked = r.text(&header).into_owned();
            assert!(masked.contains(MASK), "{user}: {header} -> {masked}");
            // What is left is only the user's part and at most two characters.
            let left = masked.replace(MASK, "");
            assert!(left.len() <= header.len() - 10, "{header} -> {masked}");
        }
        // Nothing else is touched.
        assert_eq!(r.text("p@ss wor"), "p@ss wor");
        assert_eq!(r.text("plain text 100%"), "plain text 100%");
    }

    #[test]
    fn json_quoted_in_json_is_masked_at_any_depth() {
        let r = Redactor::new(["p@ss wo\"rd\\x".to_string()]);
        let once = serde_json::to_string("p@ss wo\"rd\\x").unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        let thrice = serde_json::to_string(&twice).unwrap();
        for text in [once, twice, thrice] {
            assert!(!r.text(&text).contains("rd"), "{text} -> {}", r.text(&text));
        }
    }

    #[test]
    fn a_secret_cut_short_by_an_excerpt_is_masked() {
        let r = Redactor::new(["kanary@42 sec\"ret-7d1e".to_string()]);
        // As `tolerance::brief` cuts a long value: raw, JSON-escaped, percent-encoded.
        for cut in [
            "kanary@42 sec\\\"r...",
            "kanary@42 s...",
            "kana…",
            "kanary%4042%20se...",
        ] {
            let text = format!("expected a match in \"xxxx{cut}");
            assert_eq!(
                r.text(&text),
                "expected a match in \"xxxx***..."
                    .replace("...", if cut.ends_with('…') { "…" } else { "..." }),
                "{cut}"
            );
        }
        // Fewer than MIN_CUT characters, or no ellipsis: not a cut secret.
        assert_eq!(r.text("kan... and kanary@"), "kan... and kanary@");
        // A very long secret: its first MAX_CUT characters, cut, are still found.
        let long: String = (0..5000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let r = Redactor::new([long.clone()]);
        assert_eq!(r.text(&format!("x={}...", &long[..150])), "x=***...");
        assert_eq!(r.text(&format!("x={long}!")), "x=***!");
    }

    #[test]
    fn secret_blocks_lose_their_literals() {
        let mut e = json!({"secrets": {"api": {"token": "x", "other": {"type": "env", "key": "K", "default": "d"}}}});
        mask_secret_block(&mut e);
        assert_eq!(e["secrets"]["api"]["token"], "***");
        assert_eq!(
            e["secrets"]["api"]["other"],
            json!({"type": "env", "key": "K", "default": "***"})
        );
    }
}
