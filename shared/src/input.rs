//! Reading inputs: files or standard input, in chunks of whole lines.
//!
//! Tools read line-oriented inputs in chunks of a few MB that end on a line boundary, so
//! chunks can be parsed in parallel while memory stays bounded by a few chunks, however
//! large the input. A line longer than a chunk grows that one chunk; nothing limits a line
//! but memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An opened input: a file, or standard input for `-`.
pub struct Input {
    /// The name used in messages (`<stdin>` for `-`).
    pub name: String,
    pub path: Option<PathBuf>,
    /// Size in bytes when known (regular files).
    pub len: Option<u64>,
    pub reader: Box<dyn Read + Send>,
}

impl Input {
    pub fn open(path: &Path) -> Result<Input> {
        if crate::cli::is_stdio(path) {
            return Ok(Input {
                name: "<stdin>".into(),
                path: None,
                len: None,
                reader: Box::new(io::stdin()),
            });
        }
        let name = path.display().to_string();
        if path.is_dir() {
            anyhow::bail!("{name}: is a directory");
        }
        let f = File::open(path).with_context(|| format!("{name}: cannot open"))?;
        let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        Ok(Input {
            name,
            path: Some(path.to_path_buf()),
            len,
            reader: Box::new(f),
        })
    }

    /// Opens every path (stdin when the list is empty). All are opened before any is read,
    /// so a typo in the last name fails before work is done.
    pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Input>> {
        if paths.is_empty() {
            return Ok(vec![Input::open(Path::new("-"))?]);
        }
        paths.iter().map(|p| Input::open(p)).collect()
    }
}

/// A run of whole lines from one input.
pub struct Chunk {
    pub data: Vec<u8>,
    /// 1-based number of the chunk's first line in its input.
    pub first_line: u64,
}

impl Chunk {
    /// The lines of the chunk, without `\n` / `\r\n`, with their 1-based line numbers.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let data = &self.data[..];
        let mut start = 0;
        let mut n = self.first_line;
        std::iter::from_fn(move || {
            if start >= data.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &data[start..])
                .map(|i| start + i)
                .unwrap_or(data.len());
            let mut line = &data[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            start = end + 1;
            let ln = n;
            n += 1;
            Some((ln, line))
        })
    }
}

/// Splits a reader into [`Chunk`]s of about `target` bytes, ending on line boundaries.
/// Every byte read is also fed to `hasher` (the input fingerprint).
pub struct Chunker<R> {
    r: R,
    carry: Vec<u8>,
    next_line: u64,
    eof: bool,
    target: usize,
    pub hasher: blake3::Hasher,
    pub bytes_read: u64,
    spare: Option<Vec<u8>>,
}

impl<R: Read> Chunker<R> {
    pub fn new(r: R, target: usize) -> Self {
        Chunker {
            r,
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            target,
            hasher: blake3::Hasher::new(),
            bytes_read: 0,
            spare: None,
        }
    }

    /// A chunker whose input starts with `prefix` (bytes already read from `r`, e.g. to sniff
    /// the format), then goes on with `r`. The prefix counts as read and is hashed.
    pub fn with_prefix(prefix: Vec<u8>, r: R, target: usize) -> Self {
        let mut c = Self::new(r, target);
        c.hasher.update(&prefix);
        c.bytes_read = prefix.len() as u64;
        c.carry = prefix;
        c
    }

    /// Reads up to `want` more bytes into `buf` (fewer only at end of input). The new bytes go
    /// into spare capacity, so nothing is zeroed first.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
        let old = buf.len();
        buf.reserve(want);
        // read_to_end retries on Interrupted and stops at the limit or at end of input.
        if let Err(e) = (&mut self.r).take(want as u64).read_to_end(buf) {
            buf.truncate(old);
            return Err(e);
        }
        let n = buf.len() - old;
        self.hasher.update(&buf[old..]);
        self.bytes_read += n as u64;
        if n < want {
            self.eof = true;
        }
        Ok(n)
    }

    /// Gives back a chunk's buffer once its lines are used, so the next chunk reuses its memory
    /// (no fresh pages to fault in for every chunk).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.spare.as_ref().map_or(0, Vec::capacity) {
            self.spare = Some(buf);
        }
    }

    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let mut buf = match self.spare.take() {
            Some(mut b) => {
                b.clear();
                b.extend_from_slice(&self.carry);
                self.carry.clear();
                b
            }
            None => std::mem::take(&mut self.carry),
        };
        while !self.eof && buf.len() < self.target {
            let want = self.target - buf.len() + (1 << 16);
            self.fill(&mut buf, want)?;
        }
        // Cut after the last newline; a line longer than the target is read on to its end,
        // scanning only the newly read bytes.
        let mut scanned = 0;
        let cut = loop {
            if let Some(pos) = memchr::memrchr(b'\n', &buf[scanned..]) {
                break Some(scanned + pos + 1);
            }
            if self.eof {
                break None;
            }
            scanned = buf.len();
            let want = buf.len().max(1 << 16);
            self.fill(&mut buf, want)?;
        };
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(cut) = cut {
            if !self.eof || cut < buf.len() {
                self.carry.clear();
                self.carry.extend_from_slice(&buf[cut..]);
                buf.truncate(cut);
            }
        }
        let chunk = Chunk {
            first_line: self.next_line,
            data: buf,
        };
        self.next_line += count_lines(&chunk.data);
        Ok(Some(chunk))
    }
}

fn count_lines(data: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', data).count() as u64;
    if data.last() == Some(&b'\n') {
        n
    } else {
        n + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(input: &[u8], target: usize) -> Vec<(u64, String)> {
        let mut c = Chunker::new(input, target);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            for (n, l) in ch.lines() {
                out.push((n, String::from_utf8(l.to_vec()).unwrap()));
            }
        }
        out
    }

    #[test]
    fn lines_survive_any_chunk_size() {
        let input = b"a\r\nbb\n\nlong line here\nlast";
        let want: Vec<(u64, String)> = vec![
            (1, "a".into()),
            (2, "bb".into()),
            (3, "".into()),
            (4, "long line here".into()),
            (5, "last".into()),
        ];
        for t in [1, 2, 3, 5, 8, 100] {
            assert_eq!(all_lines(input, t), want, "target {t}");
        }
        assert_eq!(all_lines(b"x\n", 1), vec![(1, "x".into())]);
        assert!(all_lines(b"", 4).is_empty());
    }

    #[test]
    fn hashes_everything_read() {
        let input = b"one\ntwo\nthree";
        let mut c = Chunker::new(&input[..], 2);
        while c.next_chunk().unwrap().is_some() {}
        assert_eq!(c.hasher.finalize(), blake3::hash(input));
        assert_eq!(c.bytes_read, input.len() as u64);
    }
}
