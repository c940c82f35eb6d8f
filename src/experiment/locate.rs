//! Finding the line and column of a JSON path in the source text, so `validate` can
//! point at the offending value and not only name it.
//!
//! JSON sources are scanned exactly; YAML sources by following the keys down their
//! indentation, which is exact for block-style documents (the usual style) and
//! gives no location rather than a wrong one otherwise.

use super::{Format, Problem};

/// A path segment.
#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Seg>> {
    let rest = path.strip_prefix('$')?;
    let mut out = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                out.push(Seg::Key(rest[start..j].to_string()));
                i = j;
            }
            b'[' => {
                let end = rest[i..].find(']')? + i;
                out.push(Seg::Index(rest[i + 1..end].parse().ok()?));
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Fill in `line`/`column` of each problem that does not have them.
pub fn locate_all(problems: &mut [Problem], text: &str, format: Format) {
    for p in problems.iter_mut().filter(|p| p.line.is_none()) {
        if let Some(segs) = segments(&p.path) {
            let found = match format {
                Format::Json => json_offset(text, &segs).map(|o| line_col(text, o)),
                Format::Yaml => yaml_line_col(text, &segs),
            };
            if let Some((l, c)) = found {
                p.line = Some(l);
                p.column = Some(c);
            }
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A minimal JSON scanner over valid text (the document already parsed).
pub(super) struct Scan<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl Scan<'_> {
    pub(super) fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    /// The string starting at `i` (a `"`), decoded; `i` moves past it.
    pub(super) fn string(&mut self) -> Option<String> {
        let start = self.i;
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return serde_json::from_slice(&self.b[start..self.i]).ok();
                }
                _ => self.i += 1,
            }
        }
        None
    }

    /// Skip one value starting at `i` (after whitespace).
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                while self.i < self.b.len() {
                    match self.b[self.i] {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                return None;
            }
            _ => {
                while self.i < self.b.len()
                    && !matches!(self.b[self.i], b',' | b'}' | b']')
                    && !self.b[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
            }
        }
        Some(())
    }

    /// With `i` at a value, move to the child `seg`; returns the offset of the key
    /// (for objects) or of the element (for arrays).
    fn child(&mut self, seg: &Seg) -> Option<usize> {
        self.ws();
        match (self.b.get(self.i)?, seg) {
            (b'{', Seg::Key(k)) => {
                self.i += 1;
                loop {
                    self.ws();
                    if self.b.get(self.i)? == &b'}' {
                        return None;
                    }
                    let key_at = self.i;
                    let key = self.string()?;
                    self.ws();
                    self.i += 1; // ':'
                    self.ws();
                    if &key == k {
                        return Some(key_at);
                    }
                    self.skip()?;
                    self.ws();
                    if self.b.get(self.i)? == &b',' {
                        self.i += 1;
                    }
                }
            }
            (b'[', Seg::Index(n)) => {
                self.i += 1;
                for _ in 0..*n {
                    self.skip()?;
                    self.ws();
                    if self.b.get(self.i)? != &b',' {
                        return None;
                    }
                    self.i += 1;
                }
                self.ws();
                Some(self.i)
            }
            _ => None,
        }
    }
}

fn json_offset(text: &str, segs: &[Seg]) -> Option<usize> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let mut at = {
        s.ws();
        s.i
    };
    for seg in segs {
        match s.child(seg) {
            Some(o) => at = o,
            // A missing key: point at the object that should hold it.
            None => return Some(at),
        }
    }
    Some(at)
}

fn yaml_line_col(text: &str, segs: &[Seg]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0usize;
    let mut min_indent = 0usize;
    let mut found = None;
    for seg in segs {
        let Seg::Key(k) = seg else {
            // Sequence items: find the n-th "- " at the next indentation.
            let Seg::Index(n) = seg else { unreachable!() };
            let mut count = 0;
            let mut hit = None;
            for (li, line) in lines.iter().enumerate().skip(from) {
                let indent = line.len() - line.trim_start().len();
                if line.trim_start().starts_with("- ") || line.trim() == "-" {
                    if indent < min_indent {
                        break;
                    }
                    if count == *n {
                        hit = Some((li, indent));
                        break;
                    }
                    count += 1;
                }
            }
            let (li, indent) = hit?;
            found = Some((li + 1, indent + 1));
            from = li;
            min_indent = indent;
            continue;
        };
        let mut hit = None;
        for (li, line) in lines.iter().enumerate().skip(from) {
            let t = line.trim_start();
            let t2 = t.strip_prefix("- ").unwrap_or(t);
            let indent = line.len() - t2.len();
            if (t2.starts_with(&format!("{k}:")) || t2.starts_with(&format!("\"{k}\":")))
                && indent >= min_indent
            {
                hit = Some((li, indent));
                break;
            }
        }
        let Some((li, indent)) = hit else {
            return found;
        };
        found = Some((li + 1, indent + 1));
        from = li + 1;
        min_indent = indent + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_json_values() {
        let text = "{\n  \"title\": \"t\",\n  \"method\": [\n    {\"name\": \"a\"},\n    {\"name\": \"b\", \"provider\": {\"type\": \"ftp\"}}\n  ]\n}";
        let mut p = vec![Problem::new("$.method[1].provider.type", "x")];
        locate_all(&mut p, text, Format::Json);
        assert_eq!((p[0].line, p[0].column), (Some(5), Some(32)));
    }

    #[test]
    fn finds_yaml_keys() {
        let text = "title: t\nmethod:\n  - name: a\n  - name: b\n    provider:\n      type: ftp\n";
        let mut p = vec![Problem::new("$.method[1].provider.type", "x")];
        locate_all(&mut p, text, Format::Yaml);
        assert_eq!(p[0].line, Some(6));
    }
}
