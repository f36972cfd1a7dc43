//! The token stream: what `tokenize` writes and `numericalize` reads.
//!
//! One document per line, in either of two forms:
//!
//! * **JSON lines**: `{"tokens": ["xxbos", "xxmaj", "hello", "!"], "label": "pos", "is_valid": "False"}`.
//!   `tokens` is an array of strings; every other field is passed through untouched (labels,
//!   split flags, ids, protected attributes). `tokenize` writes `tokens` first, then the kept
//!   columns in the order they were asked for.
//! * **plain text**: tokens separated by spaces (any run of ASCII whitespace), one document per
//!   line. A replacement tokenizer can be a one-line awk or Python script that prints this.
//!
//! Readers tell the two apart by the first non-blank byte (`{` means JSON lines).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Which form a token stream is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    /// Decide from the first non-blank byte: `{` is JSON lines, anything else plain text.
    Auto,
    Jsonl,
    Text,
}

/// One document of a token stream. Tokens borrow from the input line where possible.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenDoc<'a> {
    pub tokens: Vec<Cow<'a, str>>,
    /// Passthrough fields in input order.
    pub fields: Vec<(String, Value)>,
}

struct Tok<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Tok<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tok<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Tok(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Tok(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Tok(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct Toks<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Toks<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Toks<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of token strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(256));
                while let Some(Tok(t)) = seq.next_element()? {
                    v.push(t);
                }
                Ok(Toks(v))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for TokenDoc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TokenDoc<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an object with a "tokens" array"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut tokens = None;
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "tokens" {
                        if tokens.is_some() {
                            return Err(de::Error::duplicate_field("tokens"));
                        }
                        tokens = Some(map.next_value::<Toks>()?.0);
                    } else {
                        fields.push((key.into_owned(), map.next_value::<Value>()?));
                    }
                }
                let tokens = tokens.ok_or_else(|| de::Error::missing_field("tokens"))?;
                Ok(TokenDoc { tokens, fields })
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses one JSON line. The error is serde_json's message with the column.
pub fn parse_json_line(line: &[u8]) -> Result<TokenDoc<'_>, String> {
    match std::str::from_utf8(line) {
        Ok(s) => parse_json_str(s),
        Err(_) => serde_json::from_slice::<TokenDoc>(line).map_err(|e| json_error(&e)),
    }
}

/// Parses one JSON line that is already known to be valid UTF-8.
///
/// The common shape, `{"tokens":["a","b",...]` with no escapes in the tokens, is scanned
/// directly (tokens borrow from the line); anything else goes through serde_json, which also
/// produces the error messages. Both paths give the same result.
pub fn parse_json_str(line: &str) -> Result<TokenDoc<'_>, String> {
    if let Some(doc) = fast_json(line) {
        return Ok(doc);
    }
    serde_json::from_str::<TokenDoc>(line).map_err(|e| json_error(&e))
}

fn fast_json(line: &str) -> Option<TokenDoc<'_>> {
    let rest = line.strip_prefix("{\"tokens\":[")?;
    let b = rest.as_bytes();
    let mut tokens = Vec::with_capacity(b.len() / 6 + 1);
    let mut i = 0;
    if b.first() == Some(&b']') {
        i = 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let start = i + 1;
            let mut end = start;
            let mut escaped = false;
            loop {
                // Tokens are short (a few bytes): a plain scan beats a SIMD search's call overhead.
                end += b[end..].iter().position(|&c| c == b'"' || c == b'\\')?;
                if b[end] == b'"' {
                    break;
                }
                escaped = true;
                end += 2; // skip the escaped character (a quote or backslash among them)
                if end >= b.len() {
                    return None;
                }
            }
            if b[start..end].iter().any(|&c| c < 0x20) {
                return None; // raw control characters: let serde_json report the error
            }
            if escaped {
                // Rare (e.g. "\n\n" whitespace tokens): decode this one string properly.
                tokens.push(Cow::Owned(serde_json::from_str::<String>(&rest[start - 1..end + 1]).ok()?));
            } else {
                // `end` is at an ASCII quote, so both ends are char boundaries.
                tokens.push(Cow::Borrowed(&rest[start..end]));
            }
            i = end + 1;
            match b.get(i)? {
                b',' => i += 1,
                b']' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    let tail = rest[i..].trim_end();
    if tail == "}" {
        return Some(TokenDoc { tokens, fields: Vec::new() });
    }
    let fields_json = tail.strip_prefix(',')?;
    let obj = format!("{{\"tokens\":[],{fields_json}");
    let parsed = serde_json::from_str::<TokenDoc>(&obj).ok()?;
    Some(TokenDoc { tokens, fields: parsed.fields })
}

/// serde_json's message for an error within one line: "… at column N" (the caller names the line).
pub fn json_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let msg = match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => &s,
    };
    format!("{msg} at column {}", e.column())
}

/// Parses one plain-text line: tokens separated by ASCII whitespace.
pub fn parse_text_line(line: &str) -> TokenDoc<'_> {
    TokenDoc { tokens: line.split_ascii_whitespace().map(Cow::Borrowed).collect(), fields: Vec::new() }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}

/// Appends one JSON-lines document: `{"tokens":[...],<fields>}\n`.
pub fn write_json_doc<'t>(out: &mut Vec<u8>, tokens: impl IntoIterator<Item = &'t str>, fields: &[(String, Value)]) {
    out.extend_from_slice(b"{\"tokens\":[");
    for (i, t) in tokens.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, t);
    }
    out.push(b']');
    for (k, v) in fields {
        out.push(b',');
        write_json_str(out, k);
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("writing to a Vec");
    }
    out.extend_from_slice(b"}\n");
}

/// Looks at the first non-blank byte in the reader's buffer without consuming anything.
/// A buffer that is empty or all blank is taken as plain text.
pub fn sniff<R: BufRead>(r: &mut R) -> io::Result<StreamFormat> {
    let buf = r.fill_buf()?;
    Ok(match buf.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => StreamFormat::Jsonl,
        _ => StreamFormat::Text,
    })
}

/// Reads lines (without the `\n` or `\r\n`) into `buf`; returns false at end of input.
/// Lines may be arbitrarily long; the buffer grows as needed.
pub fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let n = r.read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// Checks a line for invalid UTF-8 and NUL bytes; the error says where.
pub fn check_text(line: &[u8]) -> Result<&str, String> {
    let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))?;
    if let Some(p) = memchr_nul(line) {
        return Err(format!("NUL byte at byte {p} of the line (binary input?)"));
    }
    Ok(s)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == 0)
}

/// Writes all of `buf` and clears it.
pub fn flush_buf<W: Write>(w: &mut W, buf: &mut Vec<u8>) -> io::Result<()> {
    w.write_all(buf)?;
    buf.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_roundtrip_keeps_field_order() {
        let mut out = Vec::new();
        let fields = vec![("label".to_string(), Value::from("pos")), ("id".to_string(), Value::from(3))];
        write_json_doc(&mut out, ["xxbos", "a \"q\"", "\n\n"], &fields);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"tokens\":[\"xxbos\",\"a \\\"q\\\"\",\"\\n\\n\"],\"label\":\"pos\",\"id\":3}\n"
        );
        let d = parse_json_line(&out[..out.len() - 1]).unwrap();
        assert_eq!(d.tokens, vec!["xxbos", "a \"q\"", "\n\n"]);
        assert!(matches!(d.tokens[0], Cow::Borrowed(_)));
        assert_eq!(d.fields, fields);
    }

    #[test]
    fn fast_and_serde_paths_agree() {
        for line in [
            r#"{"tokens":["xxbos","a","b"]}"#,
            r#"{"tokens":[]}"#,
            r#"{"tokens":[],"x":1}"#,
            r#"{"tokens":["a\"b","c"],"label":"pos"}"#,
            r#"{"tokens":["é","ü"],"label":"pos","n":null,"v":[1,2]}"#,
            r#"{"tokens":["a"],"z":1,"a":2}  "#,
            r#"{"tokens":["\n\n","x\\","\"q\"","\u00e9",""],"k":"v"}"#,
        ] {
            let fast = parse_json_str(line).unwrap();
            let slow: TokenDoc = serde_json::from_str(line).unwrap();
            assert_eq!(fast, slow, "{line}");
        }
        // a raw tab inside a string is invalid JSON on both paths
        assert!(parse_json_str("{\"tokens\":[\"a\tb\"]}").is_err());
        assert!(parse_json_str(r#"{"tokens":["a"],}"#).is_err());
        assert!(parse_json_str(r#"{"tokens":["a" "b"]}"#).is_err());
        // truncated inside an escape: an error, never a panic
        assert!(parse_json_str("{\"tokens\":[\"a\\").is_err());
        assert!(parse_json_str("{\"tokens\":[\"a\\\"").is_err());
    }

    #[test]
    fn json_line_errors() {
        assert!(parse_json_line(br#"{"label":1}"#).unwrap_err().contains("missing field `tokens`"));
        assert!(parse_json_line(br#"{"tokens":[1]}"#).is_err());
        assert!(parse_json_line(br#"{"tokens":["a"]"#).is_err());
    }

    #[test]
    fn text_lines_split_on_whitespace() {
        assert_eq!(parse_text_line(" a  b\tc ").tokens, vec!["a", "b", "c"]);
        assert!(parse_text_line("").tokens.is_empty());
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&mut &b"  {\"tokens\":[]}"[..]).unwrap(), StreamFormat::Jsonl);
        assert_eq!(sniff(&mut &b"xxbos hi"[..]).unwrap(), StreamFormat::Text);
        assert_eq!(sniff(&mut &b""[..]).unwrap(), StreamFormat::Text);
    }

    #[test]
    fn text_checks() {
        assert!(check_text(b"ok").is_ok());
        assert_eq!(check_text(b"ab\xffc").unwrap_err(), "invalid UTF-8 at byte 2 of the line");
        assert!(check_text(b"a\0b").unwrap_err().contains("NUL byte at byte 1"));
    }
}
