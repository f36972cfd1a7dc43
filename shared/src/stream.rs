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

/// Receives the tokens of one line from [`visit_json_str`] / [`visit_text_line`].
pub trait TokenSink {
    /// The next token of the line.
    fn token(&mut self, t: &str);
    /// The next token of the line, which has at most 8 bytes, with those bytes as a
    /// little-endian u64, zero-padded ([`crate::tokmap::word8`]): what a [`crate::tokmap::FrozenMap`]
    /// looks up without packing the token again.
    #[inline]
    fn token_word(&mut self, t: &str, word: u64) {
        let _ = word;
        self.token(t)
    }
    /// Forget the tokens received since the line started: they are about to be given again
    /// (the fast scanner met a shape it leaves to serde_json). Rare.
    fn restart(&mut self);
}

/// Parses one JSON line that is known to be valid UTF-8 and hands each token to `sink`, in
/// order, without collecting them; returns the passthrough fields. Same tokens, fields and
/// errors as [`parse_json_str`] (on an error, `sink` may have received some tokens).
pub fn visit_json_str<S: TokenSink>(
    line: &str,
    sink: &mut S,
) -> Result<Vec<(String, Value)>, String> {
    if let Some(rest) = line.strip_prefix("{\"tokens\":[") {
        let visit = |t: Cow<'_, str>, word: Option<u64>| match word {
            Some(w) => sink.token_word(&t, w),
            None => sink.token(&t),
        };
        if let Some(i) = scan_tokens(rest, visit) {
            if let Some(fields) = fast_fields(&rest[i..]) {
                return Ok(fields);
            }
        }
        sink.restart();
    }
    let doc = serde_json::from_str::<TokenDoc>(line).map_err(|e| json_error(&e))?;
    for t in &doc.tokens {
        sink.token(t);
    }
    Ok(doc.fields)
}

/// Hands the tokens of one plain-text line (separated by ASCII whitespace) to `sink`.
pub fn visit_text_line<S: TokenSink>(line: &str, sink: &mut S) {
    for t in line.split_ascii_whitespace() {
        sink.token(t);
    }
}

/// Bytes that end the plain part of a JSON string: a quote, a backslash, control characters.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of every byte of `x` that is zero (exact: no false positives).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    !(((x & LO7).wrapping_add(LO7)) | x | LO7)
}

/// The high bit of every byte of `w` that ends the plain part of a JSON string (see
/// [`STRING_STOP`]): eight bytes at a time, in plain integer arithmetic (SWAR).
#[inline]
fn stop_bytes(w: u64) -> u64 {
    const QUOTE: u64 = 0x2222_2222_2222_2222;
    const BACKSLASH: u64 = 0x5c5c_5c5c_5c5c_5c5c;
    const HIGH3: u64 = 0xe0e0_e0e0_e0e0_e0e0;
    zero_bytes(w ^ QUOTE) | zero_bytes(w ^ BACKSLASH) | zero_bytes(w & HIGH3)
}

#[inline]
fn load_u64(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Scans `"tok","tok",...]` (what follows `{"tokens":[`), calling `f` on each token in order,
/// with the token's bytes as a zero-padded little-endian u64 when it has at most 8 of them and
/// the scanner already holds them. Returns the index just after the `]`, or None for any shape
/// it leaves to serde_json (which then also produces the error message). Tokens without
/// escapes borrow from the line.
#[inline]
fn scan_tokens<'a>(rest: &'a str, mut f: impl FnMut(Cow<'a, str>, Option<u64>)) -> Option<usize> {
    let b = rest.as_bytes();
    if b.first() == Some(&b']') {
        return Some(1);
    }
    let mut i = 0;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        // Fast path: the token's end among the next 16 bytes, found eight at a time.
        if start + 16 <= b.len() {
            let w0 = load_u64(b, start);
            let m0 = stop_bytes(w0);
            let found = if m0 != 0 {
                let n = (m0.trailing_zeros() >> 3) as usize;
                Some((start + n, Some(w0 & ((1u64 << (8 * n)) - 1))))
            } else {
                let m1 = stop_bytes(load_u64(b, start + 8));
                // None: 16 bytes or longer, left to the byte loop below.
                (m1 != 0).then(|| {
                    let n = 8 + (m1.trailing_zeros() >> 3) as usize;
                    (start + n, (n == 8).then_some(w0))
                })
            };
            if let Some((end, word)) = found.filter(|&(end, _)| b[end] == b'"') {
                // `end` is at an ASCII quote, so both ends are char boundaries.
                f(Cow::Borrowed(&rest[start..end]), word);
                i = end + 1;
                match b.get(i)? {
                    b',' => i += 1,
                    b']' => return Some(i + 1),
                    _ => return None,
                }
                continue;
            }
        }
        let mut end = start;
        let mut escaped = false;
        // Tokens are short (a few bytes): a table-driven byte loop beats a SIMD search's call
        // overhead, and checks for raw control characters in the same pass.
        loop {
            let c = *b.get(end)?;
            if !STRING_STOP[c as usize] {
                end += 1;
            } else if c == b'"' {
                break;
            } else if c == b'\\' {
                escaped = true;
                end += 2; // skip the escaped character (a quote or backslash among them)
            } else {
                return None; // raw control characters: let serde_json report the error
            }
        }
        if escaped {
            // Rare (e.g. "\n\n" whitespace tokens): decode this one string properly.
            f(
                Cow::Owned(serde_json::from_str::<String>(&rest[start - 1..end + 1]).ok()?),
                None,
            );
        } else {
            f(Cow::Borrowed(&rest[start..end]), None);
        }
        i = end + 1;
        match b.get(i)? {
            b',' => i += 1,
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The passthrough fields after the tokens array: `}` or `,"k":v,...}` (trailing whitespace
/// allowed). None when serde_json should look at the whole line.
fn fast_fields(after: &str) -> Option<Vec<(String, Value)>> {
    let tail = after.trim_end();
    if tail == "}" {
        return Some(Vec::new());
    }
    if let Some(fields) = plain_fields(tail) {
        return Some(fields);
    }
    let fields_json = tail.strip_prefix(',')?;
    let obj = format!("{{\"tokens\":[],{fields_json}");
    Some(serde_json::from_str::<TokenDoc>(&obj).ok()?.fields)
}

/// The common shape of passthrough fields, `,"k":"v",...}` with only string values and
/// no escapes or blanks, read directly; None for anything else (serde_json then reads it).
fn plain_fields(tail: &str) -> Option<Vec<(String, Value)>> {
    let b = tail.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        match b.get(i)? {
            b'}' if i + 1 == b.len() => return Some(fields),
            b',' => i += 1,
            _ => return None,
        }
        let (k, next) = plain_string(tail, i)?;
        if k == "tokens" || b.get(next) != Some(&b':') {
            return None; // a second "tokens" is serde_json's error to report
        }
        let (v, next) = plain_string(tail, next + 1)?;
        fields.push((k.to_string(), Value::String(v.to_string())));
        i = next;
    }
}

/// A JSON string without escapes or control characters starting at byte `i` (the quote):
/// its contents and the index after its closing quote.
fn plain_string(s: &str, i: usize) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let mut end = start;
    loop {
        let c = *b.get(end)?;
        if c == b'"' {
            break;
        }
        if STRING_STOP[c as usize] {
            return None;
        }
        end += 1;
    }
    // Both ends are at ASCII quotes: char boundaries.
    Some((&s[start..end], end + 1))
}

fn fast_json(line: &str) -> Option<TokenDoc<'_>> {
    let rest = line.strip_prefix("{\"tokens\":[")?;
    let mut tokens = Vec::with_capacity(rest.len() / 6 + 1);
    let i = scan_tokens(rest, |t, _| tokens.push(t))?;
    let fields = fast_fields(&rest[i..])?;
    Some(TokenDoc { tokens, fields })
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
    TokenDoc {
        tokens: line.split_ascii_whitespace().map(Cow::Borrowed).collect(),
        fields: Vec::new(),
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}

/// Appends one JSON-lines document: `{"tokens":[...],<fields>}\n`.
pub fn write_json_doc<'t>(
    out: &mut Vec<u8>,
    tokens: impl IntoIterator<Item = &'t str>,
    fields: &[(String, Value)],
) {
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
    let s = std::str::from_utf8(line)
        .map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))?;
    if let Some(p) = memchr_nul(line) {
        return Err(format!("NUL byte at byte {p} of the line (binary input?)"));
    }
    Ok(s)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    memchr::memchr(0, b)
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
        let fields = vec![
            ("label".to_string(), Value::from("pos")),
            ("id".to_string(), Value::from(3)),
        ];
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

    /// Collects what a sink receives, checking every word against the token.
    #[derive(Default)]
    struct Collect {
        tokens: Vec<String>,
        words: usize,
    }

    impl TokenSink for Collect {
        fn token(&mut self, t: &str) {
            self.tokens.push(t.to_string());
        }
        fn token_word(&mut self, t: &str, word: u64) {
            assert!(t.len() <= 8, "{t:?}");
            assert_eq!(word, crate::tokmap::word8(t.as_bytes()), "{t:?}");
            self.words += 1;
            self.token(t);
        }
        fn restart(&mut self) {
            self.tokens.clear();
        }
    }

    type Visited = (Vec<String>, Vec<(String, Value)>, usize);

    fn visit(line: &str) -> Result<Visited, String> {
        let mut c = Collect::default();
        let fields = visit_json_str(line, &mut c)?;
        Ok((c.tokens, fields, c.words))
    }

    /// The visitor (SWAR scanner, words, plain fields) agrees with serde_json on every line:
    /// same tokens and fields, or an error on both.
    #[test]
    fn visitor_agrees_with_serde() {
        let mut lines: Vec<String> = vec![
            r#"{"tokens":[]}"#.into(),
            r#"{"tokens":[""]}"#.into(),
            r#"{"tokens":["",""],"a":"b"}"#.into(),
            r#"{"tokens":["a"b","c"],"label":"pos"}"#.into(),
            r#"{"tokens":["a\","\b","é","日本語テキスト"],"label":"pos","n":null,"v":[1,2]}"#
                .into(),
            r#"{"tokens":["

","x\",""q"","é",""],"k":"v"}"#
                .into(),
            r#"{"tokens":["a"],"label":"with "escape""}"#.into(),
            r#"{"tokens":["a"],"label":"pos","id":3,"w":1.5,"b":true}"#.into(),
            r#"{"tokens":["a"], "label":"pos"}"#.into(),
            r#"{"tokens":["a"],"label":"pos","label":"neg"}"#.into(),
            r#"{"tokens":["a"],"tokens":["b"]}"#.into(),
            r#"{"tokens":["a"],"label":"pos",}"#.into(),
            r#"{"tokens":["a"],"label":"pos"}  "#.into(),
            r#"{"tokens":["a"],"label":"pos"}x"#.into(),
            r#"{"tokens":["a"],"label":pos}"#.into(),
            r#"{"tokens":["a" ,"b"]}"#.into(),
            r#"{"tokens":["a","b"]"#.into(),
            r#"{"label":"x","tokens":["a","b"]}"#.into(),
            "{\"tokens\":[\"tab\there\",\"b\"],\"label\":\"pos\"}".into(),
            r#"{"tokens":["abcdefghijklmno\u0000","b"],"label":"pos"}"#.into(),
            r#"{"tokens":["a\"#.into(),
        ];
        // Every token length from 0 to 40, at every distance from the end of the line, plain
        // and with an escape or a multi-byte character at each position.
        for n in 0..40usize {
            let plain: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let mut variants = vec![plain.clone()];
            for p in 0..n {
                let mut v = plain.clone().into_bytes();
                v[p] = b'"';
                let quoted = String::from_utf8(v).unwrap().replace('"', "\\\"");
                variants.push(quoted);
                let mut w: Vec<char> = plain.chars().collect();
                w[p] = 'é';
                variants.push(w.into_iter().collect());
            }
            for t in variants {
                for tail in [
                    "]}",
                    "],\"l\":\"p\"}",
                    "],\"label\":\"neg\",\"is_valid\":\"False\"}",
                ] {
                    lines.push(format!("{{\"tokens\":[\"{t}\"{tail}"));
                    lines.push(format!("{{\"tokens\":[\"x\",\"{t}\",\"yy\"{tail}"));
                }
            }
        }
        let mut words = 0;
        for line in &lines {
            let slow = serde_json::from_str::<TokenDoc>(line);
            match (visit(line), slow) {
                (Ok((tokens, fields, w)), Ok(doc)) => {
                    assert_eq!(tokens, doc.tokens, "{line}");
                    assert_eq!(fields, doc.fields, "{line}");
                    words += w;
                }
                (Err(e), Err(se)) => assert_eq!(e, json_error(&se), "{line}"),
                (a, b) => panic!(
                    "{line}: visitor {:?} vs serde {:?}",
                    a.map(|x| x.0),
                    b.map(|d| d.tokens)
                ),
            }
            // parse_json_str (the collecting path) agrees too
            match (parse_json_str(line), serde_json::from_str::<TokenDoc>(line)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{line}: {a:?} vs {b:?}"),
            }
        }
        assert!(words > 1000, "the word path was taken {words} times");
    }

    #[test]
    fn swar_stop_bytes_are_exact() {
        for c in 0..=255u8 {
            for pos in 0..8 {
                let mut b = [b'a'; 8];
                b[pos] = c;
                let m = stop_bytes(u64::from_le_bytes(b));
                let want = if STRING_STOP[c as usize] {
                    0x80u64 << (8 * pos)
                } else {
                    0
                };
                assert_eq!(m, want, "byte {c:#x} at {pos}");
            }
        }
        // several at once, and bytes around them untouched
        let m = stop_bytes(u64::from_le_bytes(*b"\"\x00\x1f \\\x7f\xff\""));
        assert_eq!(m, 0x8000_0080_0080_8080);
    }

    #[test]
    fn json_line_errors() {
        assert!(parse_json_line(br#"{"label":1}"#)
            .unwrap_err()
            .contains("missing field `tokens`"));
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
        assert_eq!(
            sniff(&mut &b"  {\"tokens\":[]}"[..]).unwrap(),
            StreamFormat::Jsonl
        );
        assert_eq!(sniff(&mut &b"xxbos hi"[..]).unwrap(), StreamFormat::Text);
        assert_eq!(sniff(&mut &b""[..]).unwrap(), StreamFormat::Text);
    }

    #[test]
    fn text_checks() {
        assert!(check_text(b"ok").is_ok());
        assert_eq!(
            check_text(b"ab\xffc").unwrap_err(),
            "invalid UTF-8 at byte 2 of the line"
        );
        assert!(check_text(b"a\0b")
            .unwrap_err()
            .contains("NUL byte at byte 1"));
    }
}
