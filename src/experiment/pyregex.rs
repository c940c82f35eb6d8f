//! Regular expressions as Python's `re.search` reads them, for regex tolerances.
//!
//! Chaos Toolkit experiments are written against Python's `re`. Two differences with
//! Rust's `regex` matter in practice: Python's `$` also matches just before a final
//! newline (and process output almost always ends with one: `ok$` must match
//! `"ok\n"`), and Python has lookaround and backreferences. So patterns are compiled
//! with `fancy-regex`, after translating `$` to `(?=\n?\z)` (outside multi-line mode)
//! and `\Z` to `\z`.

/// Compile a Python-style pattern.
pub fn compile(pattern: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(&translate(pattern)).map_err(|e| e.to_string())
}

/// Search anywhere in `text`, as `re.search`.
pub fn search(re: &fancy_regex::Regex, text: &str) -> Result<bool, String> {
    re.is_match(text).map_err(|e| e.to_string())
}

/// True when inline flags turn on multi-line mode, e.g. `(?m)` or `(?im)`.
fn multiline(p: &str) -> bool {
    let mut rest = p;
    while let Some(i) = rest.find("(?") {
        let flags: String = rest[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if flags.contains('m') && rest[i + 2 + flags.len()..].starts_with([')', ':']) {
            return true;
        }
        rest = &rest[i + 2..];
    }
    false
}

fn translate(p: &str) -> String {
    let keep_dollar = multiline(p);
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') if !in_class => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().expect("peeked"));
                }
                continue;
            }
            ']' if in_class && !class_start => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !keep_dollar => out.push_str("(?=\\n?\\z)"),
            c => out.push(c),
        }
        class_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(p: &str, t: &str) -> bool {
        search(&compile(p).unwrap(), t).unwrap()
    }

    #[test]
    fn dollar_matches_before_a_final_newline_like_python() {
        assert!(found("^hello world$", "hello world\n"));
        assert!(found("world$", "hello world"));
        assert!(!found("world$", "hello world\n\n"));
        assert!(!found("hello$", "hello world\n"));
        assert!(found(r"cost \$5", "cost $5"));
        assert!(found("[$]5", "$5"));
        assert!(!found(r"world\Z", "hello world\n"));
    }

    #[test]
    fn multiline_keeps_dollar_per_line() {
        assert!(found("(?m)^a$", "a\nb\n"));
    }

    #[test]
    fn lookaround_and_backreferences_work() {
        assert!(found("ok(?!ay)", "ok then"));
        assert!(!found("ok(?!ay)", "okay"));
        assert!(found(r"(\w)\1", "hello"));
        assert!(found(r"(?P<x>l)(?P=x)", "hello"));
    }

    #[test]
    fn brackets_in_classes_are_not_confused() {
        assert!(found("[]$]", "x$"));
        assert!(found("[^]]$", "ab\n"));
    }
}
