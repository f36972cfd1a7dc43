//! Detecting a CSV quote left open at the end of the input.
//!
//! The `csv` crate (like Python's `csv` module in its lenient mode) ends a quoted field that
//! runs into the end of the input without complaint, so `a,"b\nc,d\n` silently becomes one
//! record whose last field swallowed the rest of the file. [`QuoteTracker`] follows the same
//! quoting rules as `csv_core` with its default settings (RFC 4180: a field is quoted only when
//! its first byte is `"`, `""` inside quotes is a quote, quotes inside unquoted fields are
//! literal) and says whether the input ended inside quotes. It is fed every byte the CSV reader
//! reads: wrap the reader in it ([`QuoteTracker::new`]), or call [`QuoteTracker::feed`] on a
//! buffer.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a field.
    FieldStart,
    /// Inside an unquoted field (quotes are literal).
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just after a quote inside a quoted field: closed, unless the next byte is `"`.
    QuoteInQuoted,
}

/// Tracks the quote state of a CSV byte stream (see the module docs).
#[derive(Debug)]
pub struct QuoteTracker<R> {
    inner: R,
    delim: u8,
    state: State,
}

impl<R> QuoteTracker<R> {
    /// Wraps `inner`; every byte read through it is tracked.
    pub fn new(inner: R, delim: u8) -> Self {
        QuoteTracker {
            inner,
            delim,
            state: State::FieldStart,
        }
    }

    /// True when the bytes seen so far end inside a quoted field.
    pub fn in_quotes(&self) -> bool {
        self.state == State::Quoted
    }

    /// Tracks `buf`, the next bytes of the stream.
    pub fn feed(&mut self, buf: &[u8]) {
        let d = self.delim;
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::FieldStart => {
                    let b = buf[i];
                    i += 1;
                    self.state = if b == b'"' {
                        State::Quoted
                    } else if b == d || b == b'\n' || b == b'\r' {
                        State::FieldStart
                    } else {
                        State::Unquoted
                    };
                }
                State::Unquoted => match memchr::memchr3(d, b'\n', b'\r', &buf[i..]) {
                    Some(p) => {
                        i += p + 1;
                        self.state = State::FieldStart;
                    }
                    None => i = buf.len(),
                },
                State::Quoted => match memchr::memchr(b'"', &buf[i..]) {
                    Some(p) => {
                        i += p + 1;
                        self.state = State::QuoteInQuoted;
                    }
                    None => i = buf.len(),
                },
                State::QuoteInQuoted => {
                    let b = buf[i];
                    i += 1;
                    self.state = if b == b'"' {
                        State::Quoted
                    } else if b == d || b == b'\n' || b == b'\r' {
                        State::FieldStart
                    } else {
                        State::Unquoted
                    };
                }
            }
        }
    }
}

impl<R: Read> Read for QuoteTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n]);
        Ok(n)
    }
}

/// Tracks a whole buffer: true when it ends inside a quoted field.
pub fn ends_in_quotes(bytes: &[u8], delim: u8) -> bool {
    let mut t = QuoteTracker::new((), delim);
    t.feed(bytes);
    t.in_quotes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_quotes() {
        let closed: &[&[u8]] = &[
            b"a,b\n1,2\n",
            b"a,b\n1,\"x, \"\"y\"\"\nz\"\n",
            b"a,b\n1,5\" screen\n",
            b"a,b\n1,\"\"\n",
            b"a,b\r\n\"q\",r\r\n",
            b"",
        ];
        for c in closed {
            assert!(!ends_in_quotes(c, b','), "{:?}", String::from_utf8_lossy(c));
        }
        let open: &[&[u8]] = &[
            b"a,b\n1,\"open\n2,3\n",
            b"\"",
            b"a,b\n1,\"x\"\"\n",
            b"a\tb\n\"x\ty\n",
        ];
        for c in open {
            assert!(
                ends_in_quotes(c, if c.contains(&b'\t') { b'\t' } else { b',' }),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_answer() {
        let s = b"a,b\n1,\"x,\"\"y\n\"\n2,\"open";
        for cut in 0..s.len() {
            let mut t = QuoteTracker::new((), b',');
            t.feed(&s[..cut]);
            t.feed(&s[cut..]);
            assert!(t.in_quotes(), "cut {cut}");
        }
    }

    #[test]
    fn reads_pass_through() {
        let mut t = QuoteTracker::new(&b"x,\"y"[..], b',');
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"x,\"y");
        assert!(t.in_quotes());
    }
}
