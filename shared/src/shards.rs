//! Shard sets: numericalized corpora that trainers memory-map without copying.
//!
//! A shard set is a directory published atomically by `numericalize`:
//!
//! ```text
//! SHARDS/
//!   manifest.json        format, version, vocab hash, dtype, splits, counts, checksums, settings
//!   vocab.json           the vocab (see [`crate::vocab`])
//!   train.tokens         header + token ids (u16 when the vocab has ≤ 65,536 entries, else u32)
//!   train.offsets        header + u64 document start offsets (docs + 1 of them; the last = tokens)
//!   train.fields         header + bincode of the passthrough fields (columnar, read once)
//!   valid.tokens ...     the same for every other split
//! ```
//!
//! Every binary file starts with a fixed 64-byte little-endian header:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `ULMFSHRD` |
//! | 8..12 | format version (u32, currently 1) |
//! | 12..16 | kind (u32: 1 tokens, 2 offsets, 3 fields) |
//! | 16..20 | element size in bytes (u32: 2 or 4 for tokens, 8 for offsets, 1 for fields) |
//! | 20..24 | reserved, zero |
//! | 24..32 | element count (u64) |
//! | 32..48 | vocab hash, 16 ASCII hex digits |
//! | 48..56 | payload length in bytes (u64) = count × element size |
//! | 56..64 | first 8 bytes of BLAKE3 over bytes 0..56 |
//!
//! The payload follows at byte 64 (so u16/u32/u64 arrays are aligned in the page-aligned map).
//! The manifest records each file's size and the BLAKE3 of its payload.
//!
//! Readers ([`ShardSet::open`]) check the manifest's format and version, the vocab file's hash
//! against the manifest, every header (magic, version, kind, element size, vocab hash, header
//! checksum), every size, the offsets' monotonicity and, with [`Verify::Full`] (the default),
//! the payload checksums and that every id is below the vocab size. Any failure is a
//! [`FormatError`] naming the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicDir;
use crate::error::{FormatError, Result};
use crate::vocab::{Vocab, VOCAB_FILE};

pub const MAGIC: &[u8; 8] = b"ULMFSHRD";
pub const SHARD_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT: &str = "ulmfit-shards";

/// What a binary shard file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Tokens = 1,
    Offsets = 2,
    Fields = 3,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Tokens => "tokens",
            Kind::Offsets => "offsets",
            Kind::Fields => "fields",
        }
    }
}

/// Token id width on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// u16 when every id of a vocab of `vocab_size` fits.
    pub fn for_vocab(vocab_size: usize) -> Dtype {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }
    pub fn size(self) -> u32 {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }
}

/// How much a reader checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Headers, sizes, offsets: cost independent of corpus size (plus one pass over offsets).
    Quick,
    /// Also payload checksums and id ranges: one read of everything.
    #[default]
    Full,
}

/// A file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub bytes: u64,
    /// BLAKE3 (hex) of the payload, i.e. the file after its 64-byte header.
    pub blake3: String,
}

/// A split's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub docs: u64,
    pub tokens: u64,
    pub tokens_file: FileInfo,
    pub offsets_file: FileInfo,
    pub fields_file: FileInfo,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub vocab_hash: String,
    pub vocab_size: u64,
    pub dtype: Dtype,
    pub docs: u64,
    pub tokens: u64,
    pub splits: BTreeMap<String, SplitInfo>,
    /// Names of the passthrough fields, in input order.
    pub fields: Vec<String>,
    /// The settings that produced this set (max_vocab, min_freq, split rule, seed, vocab source).
    pub settings: serde_json::Value,
    /// BLAKE3 of the input bytes, so a cache can tell whether its inputs changed.
    pub input_fingerprint: String,
    pub created_by: String,
}

// ---------------------------------------------------------------------------------------------
// Header

fn encode_header(kind: Kind, elem: u32, count: u64, vocab_hash: &str) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&SHARD_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    h[16..20].copy_from_slice(&elem.to_le_bytes());
    h[24..32].copy_from_slice(&count.to_le_bytes());
    let vh = vocab_hash.as_bytes();
    let n = vh.len().min(16);
    h[32..32 + n].copy_from_slice(&vh[..n]);
    h[48..56].copy_from_slice(&(count * elem as u64).to_le_bytes());
    let check = blake3::hash(&h[..56]);
    h[56..64].copy_from_slice(&check.as_bytes()[..8]);
    h
}

struct Header {
    elem: u32,
    count: u64,
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

fn decode_header(path: &Path, bytes: &[u8], kind: Kind, vocab_hash: &str) -> Result<Header> {
    if bytes.len() < HEADER_LEN {
        if bytes.len() >= 8 && &bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic {
                path: path.into(),
                expected: "shard",
            });
        }
        return Err(FormatError::corrupt(
            path,
            format!("{} bytes, shorter than the 64-byte header", bytes.len()),
        ));
    }
    let h = &bytes[..HEADER_LEN];
    if &h[..8] != MAGIC {
        return Err(FormatError::BadMagic {
            path: path.into(),
            expected: "shard",
        });
    }
    let version = u32_at(h, 8);
    if version != SHARD_VERSION {
        return Err(FormatError::Version {
            path: path.into(),
            found: version,
            supported: SHARD_VERSION,
        });
    }
    if h[56..64] != blake3::hash(&h[..56]).as_bytes()[..8] {
        return Err(FormatError::corrupt(path, "header checksum mismatch"));
    }
    let k = u32_at(h, 12);
    if k != kind as u32 {
        return Err(FormatError::corrupt(
            path,
            format!(
                "header says kind {k}, expected {} ({})",
                kind as u32,
                kind.ext()
            ),
        ));
    }
    let elem = u32_at(h, 16);
    let count = u64_at(h, 24);
    let payload = u64_at(h, 48);
    let stored_hash = String::from_utf8_lossy(&h[32..48])
        .trim_end_matches('\0')
        .to_string();
    if stored_hash != vocab_hash {
        return Err(FormatError::VocabMismatch {
            path: path.into(),
            found: stored_hash,
            expected: vocab_hash.into(),
            context: "header vs manifest".into(),
        });
    }
    if count.checked_mul(elem as u64) != Some(payload) {
        return Err(FormatError::corrupt(
            path,
            "header payload length disagrees with its count",
        ));
    }
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if actual != payload {
        return Err(FormatError::corrupt(
            path,
            format!(
                "payload is {actual} bytes but the header says {payload} (truncated or extended)"
            ),
        ));
    }
    Ok(Header { elem, count })
}

// ---------------------------------------------------------------------------------------------
// Fields

/// One passthrough column, dictionary-encoded: `codes[doc]` indexes `levels`
/// ([`Column::MISSING`] when the document had no value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub levels: Vec<String>,
    pub codes: Vec<u32>,
}

impl Column {
    pub const MISSING: u32 = u32::MAX;

    /// The value of document `doc`, if any.
    pub fn get(&self, doc: usize) -> Option<&str> {
        match self.codes.get(doc) {
            Some(&c) if c != Self::MISSING => Some(self.levels[c as usize].as_str()),
            _ => None,
        }
    }

    /// Parses every value as f64 (missing → None). `Err` names the first value that is not a number.
    pub fn as_f64(&self) -> std::result::Result<Vec<Option<f64>>, String> {
        let levels: Vec<Option<f64>> = self
            .levels
            .iter()
            .map(|l| l.trim().parse::<f64>().ok())
            .collect();
        if let Some((i, _)) = levels.iter().enumerate().find(|(_, v)| v.is_none()) {
            return Err(format!(
                "column {:?} has the non-numeric value {:?}",
                self.name, self.levels[i]
            ));
        }
        Ok(self
            .codes
            .iter()
            .map(|&c| {
                if c == Self::MISSING {
                    None
                } else {
                    levels[c as usize]
                }
            })
            .collect())
    }
}

/// The passthrough fields of one split, plus each document's row number in the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Fields {
    /// 0-based position of each document in the numericalize input.
    pub rows: Vec<u64>,
    pub columns: Vec<Column>,
}

impl Fields {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Builds a [`Column`] incrementally (dictionary-encoding as it goes).
#[derive(Debug, Default, Clone)]
pub struct ColumnBuilder {
    name: String,
    levels: Vec<String>,
    index: ahash::AHashMap<String, u32>,
    codes: Vec<u32>,
}

impl ColumnBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        ColumnBuilder {
            name: name.into(),
            ..Default::default()
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn len(&self) -> usize {
        self.codes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
    pub fn push(&mut self, v: Option<&str>) {
        let code = match v {
            None => Column::MISSING,
            Some(s) => match self.index.get(s) {
                Some(&c) => c,
                None => {
                    let c = self.levels.len() as u32;
                    self.levels.push(s.to_string());
                    self.index.insert(s.to_string(), c);
                    c
                }
            },
        };
        self.codes.push(code);
    }
    /// Pads with missing values up to `n` documents (a field first seen late).
    pub fn pad_to(&mut self, n: usize) {
        self.codes.resize(n.max(self.codes.len()), Column::MISSING);
    }
    pub fn get(&self, doc: usize) -> Option<&str> {
        match self.codes.get(doc) {
            Some(&c) if c != Column::MISSING => Some(self.levels[c as usize].as_str()),
            _ => None,
        }
    }
    pub fn finish(self) -> Column {
        Column {
            name: self.name,
            levels: self.levels,
            codes: self.codes,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

struct PayloadWriter {
    path: PathBuf,
    w: BufWriter<File>,
    hasher: blake3::Hasher,
    count: u64,
    kind: Kind,
    elem: u32,
}

impl PayloadWriter {
    fn create(path: PathBuf, kind: Kind, elem: u32) -> anyhow::Result<Self> {
        let f =
            File::create(&path).with_context(|| format!("{}: cannot create", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&[0u8; HEADER_LEN])
            .with_context(|| format!("{}: write failed", path.display()))?;
        Ok(PayloadWriter {
            path,
            w,
            hasher: blake3::Hasher::new(),
            count: 0,
            kind,
            elem,
        })
    }

    fn write(&mut self, bytes: &[u8], count: u64) -> anyhow::Result<()> {
        self.hasher.update(bytes);
        self.count += count;
        self.w
            .write_all(bytes)
            .with_context(|| format!("{}: write failed", self.path.display()))
    }

    fn finish(self, vocab_hash: &str) -> anyhow::Result<FileInfo> {
        let name = self
            .path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let mut f = self
            .w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("{}: write failed", self.path.display()))?;
        let header = encode_header(self.kind, self.elem, self.count, vocab_hash);
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&header)
            .with_context(|| format!("{}: write failed", self.path.display()))?;
        let bytes = HEADER_LEN as u64 + self.count * self.elem as u64;
        Ok(FileInfo {
            name,
            bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
        })
    }
}

struct SplitWriter {
    tokens: PayloadWriter,
    offsets: PayloadWriter,
    fields_path: PathBuf,
    columns: Vec<ColumnBuilder>,
    rows: Vec<u64>,
    /// Documents written to `tokens`/`offsets` (rows and columns catch up by the end when the
    /// fields are given separately, see [`ShardSetWriter::push_fields`]).
    docs: u64,
    n_tokens: u64,
    buf: Vec<u8>,
}

/// Writes a shard set into a temporary directory and publishes it on [`ShardSetWriter::finish`].
/// Dropping it without finishing leaves nothing behind.
pub struct ShardSetWriter {
    dir: AtomicDir,
    vocab: std::sync::Arc<Vocab>,
    dtype: Dtype,
    field_names: Vec<String>,
    splits: BTreeMap<String, SplitWriter>,
}

fn write_plain(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{}: write failed", path.display()))
}

/// Split names become file names: keep them simple.
pub fn valid_split_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-')
}

impl ShardSetWriter {
    pub fn create(
        target: &Path,
        force: bool,
        vocab: Vocab,
        field_names: Vec<String>,
    ) -> anyhow::Result<Self> {
        Self::create_shared(target, force, std::sync::Arc::new(vocab), field_names)
    }

    /// [`ShardSetWriter::create`] with a vocab the caller goes on using (e.g. on other threads).
    pub fn create_shared(
        target: &Path,
        force: bool,
        vocab: std::sync::Arc<Vocab>,
        field_names: Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = AtomicDir::create(target, force)?;
        // Plain writes inside the temporary directory: AtomicDir::commit syncs every file
        // before it publishes the directory.
        write_plain(&dir.path().join(VOCAB_FILE), &vocab.to_json())?;
        let dtype = Dtype::for_vocab(vocab.len());
        Ok(ShardSetWriter {
            dir,
            vocab,
            dtype,
            field_names,
            splits: BTreeMap::new(),
        })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn split_writer(&mut self, split: &str) -> anyhow::Result<&mut SplitWriter> {
        if !self.splits.contains_key(split) {
            anyhow::ensure!(
                valid_split_name(split),
                "split name {split:?} must be letters, digits, '_' or '-'"
            );
            let base = self.dir.path();
            let mut offsets =
                PayloadWriter::create(base.join(format!("{split}.offsets")), Kind::Offsets, 8)?;
            offsets.write(&0u64.to_le_bytes(), 1)?;
            let sw = SplitWriter {
                tokens: PayloadWriter::create(
                    base.join(format!("{split}.tokens")),
                    Kind::Tokens,
                    self.dtype.size(),
                )?,
                offsets,
                fields_path: base.join(format!("{split}.fields")),
                columns: self.field_names.iter().map(ColumnBuilder::new).collect(),
                rows: Vec::new(),
                docs: 0,
                n_tokens: 0,
                buf: Vec::with_capacity(1 << 16),
            };
            self.splits.insert(split.to_string(), sw);
        }
        Ok(self.splits.get_mut(split).expect("just inserted"))
    }

    /// Appends one document (ids must be < vocab size) with its input row and field values
    /// (one per field name, in order).
    pub fn push_doc(
        &mut self,
        split: &str,
        ids: &[u32],
        row: u64,
        fields: &[Option<&str>],
    ) -> anyhow::Result<()> {
        debug_assert_eq!(fields.len(), self.field_names.len());
        let dtype = self.dtype;
        let sw = self.split_writer(split)?;
        sw.buf.clear();
        match dtype {
            Dtype::U16 => sw
                .buf
                .extend(ids.iter().flat_map(|&i| (i as u16).to_le_bytes())),
            Dtype::U32 => sw.buf.extend(ids.iter().flat_map(|&i| i.to_le_bytes())),
        }
        let buf = std::mem::take(&mut sw.buf);
        sw.tokens.write(&buf, ids.len() as u64)?;
        sw.buf = buf;
        sw.n_tokens += ids.len() as u64;
        let end = sw.n_tokens;
        sw.offsets.write(&end.to_le_bytes(), 1)?;
        sw.docs += 1;
        sw.rows.push(row);
        for (c, v) in sw.columns.iter_mut().zip(fields) {
            c.push(*v);
        }
        Ok(())
    }

    /// Token id width of this set's files: what [`ShardSetWriter::push_encoded`] takes.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Appends documents whose ids are already encoded little-endian in [`ShardSetWriter::dtype`],
    /// back to back in `tokens`; `lens` holds each document's token count and `rows` its input
    /// row. Their field values follow later, in the same order, with
    /// [`ShardSetWriter::push_fields`] (for writers that learn the field names only at the end).
    /// Ids must be below the vocab size.
    pub fn push_encoded(
        &mut self,
        split: &str,
        tokens: &[u8],
        lens: &[u32],
        rows: impl IntoIterator<Item = u64>,
    ) -> anyhow::Result<()> {
        let elem = self.dtype.size() as usize;
        let sw = self.split_writer(split)?;
        let n: u64 = lens.iter().map(|&l| l as u64).sum();
        anyhow::ensure!(
            tokens.len() as u64 == n * elem as u64,
            "push_encoded: {} bytes for {n} tokens",
            tokens.len()
        );
        sw.tokens.write(tokens, n)?;
        sw.buf.clear();
        for &l in lens {
            sw.n_tokens += l as u64;
            sw.buf.extend_from_slice(&sw.n_tokens.to_le_bytes());
        }
        let buf = std::mem::take(&mut sw.buf);
        sw.offsets.write(&buf, lens.len() as u64)?;
        sw.buf = buf;
        sw.docs += lens.len() as u64;
        let before = sw.rows.len();
        sw.rows.extend(rows);
        anyhow::ensure!(
            sw.rows.len() - before == lens.len(),
            "push_encoded: rows and lens differ in number"
        );
        Ok(())
    }

    /// Declares the passthrough field names after documents were added with
    /// [`ShardSetWriter::push_encoded`], before any [`ShardSetWriter::push_fields`].
    pub fn set_field_names(&mut self, names: Vec<String>) -> anyhow::Result<()> {
        for (name, sw) in &mut self.splits {
            anyhow::ensure!(
                sw.columns.iter().all(|c| c.is_empty()),
                "set_field_names: split {name} already has field values"
            );
            sw.columns = names.iter().map(ColumnBuilder::new).collect();
        }
        self.field_names = names;
        Ok(())
    }

    /// The field values (one per field name) of the next document of `split` whose tokens were
    /// given with [`ShardSetWriter::push_encoded`].
    pub fn push_fields(&mut self, split: &str, fields: &[Option<&str>]) -> anyhow::Result<()> {
        debug_assert_eq!(fields.len(), self.field_names.len());
        let sw = self.split_writer(split)?;
        for (c, v) in sw.columns.iter_mut().zip(fields) {
            c.push(*v);
        }
        Ok(())
    }

    /// Makes sure `split` exists even if it gets no documents.
    pub fn ensure_split(&mut self, split: &str) -> anyhow::Result<()> {
        self.split_writer(split).map(|_| ())
    }

    /// Writes the manifest, syncs and publishes the directory.
    pub fn finish(
        self,
        settings: serde_json::Value,
        input_fingerprint: String,
    ) -> anyhow::Result<Manifest> {
        self.seal(settings, input_fingerprint)?.publish()
    }

    /// Writes every file and the manifest, without publishing: the caller can still fail
    /// (e.g. writing its metrics) and leave no output, then [`SealedShards::publish`]es.
    pub fn seal(
        self,
        settings: serde_json::Value,
        input_fingerprint: String,
    ) -> anyhow::Result<SealedShards> {
        let vh = self.vocab.hash().to_string();
        let mut splits = BTreeMap::new();
        let (mut docs, mut tokens) = (0, 0);
        for (name, sw) in self.splits {
            let n_docs = sw.docs;
            anyhow::ensure!(
                sw.rows.len() as u64 == n_docs
                    && sw.columns.iter().all(|c| c.len() as u64 == n_docs),
                "split {name}: field values for {} of its {n_docs} documents",
                sw.columns
                    .iter()
                    .map(|c| c.len())
                    .min()
                    .unwrap_or(sw.rows.len())
            );
            let tokens_file = sw.tokens.finish(&vh)?;
            let offsets_file = sw.offsets.finish(&vh)?;
            let fields = Fields {
                rows: sw.rows,
                columns: sw.columns.into_iter().map(ColumnBuilder::finish).collect(),
            };
            let payload = bincode::serialize(&fields).context("encoding fields")?;
            let mut fw = PayloadWriter::create(sw.fields_path, Kind::Fields, 1)?;
            fw.write(&payload, payload.len() as u64)?;
            let fields_file = fw.finish(&vh)?;
            docs += n_docs;
            tokens += sw.n_tokens;
            splits.insert(
                name,
                SplitInfo {
                    docs: n_docs,
                    tokens: sw.n_tokens,
                    tokens_file,
                    offsets_file,
                    fields_file,
                },
            );
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: SHARD_VERSION,
            vocab_hash: vh,
            vocab_size: self.vocab.len() as u64,
            dtype: self.dtype,
            docs,
            tokens,
            splits,
            fields: self.field_names,
            settings,
            input_fingerprint,
            created_by: concat!("ulmfit-rs ", env!("CARGO_PKG_VERSION")).into(),
        };
        let mut json = serde_json::to_vec_pretty(&manifest)?;
        json.push(b'\n');
        write_plain(&self.dir.path().join(MANIFEST_FILE), &json)?;
        Ok(SealedShards {
            manifest,
            dir: self.dir,
        })
    }
}

/// A complete shard set in its temporary directory ([`ShardSetWriter::seal`]): dropped, it is
/// removed; [`SealedShards::publish`] renames it into place.
pub struct SealedShards {
    pub manifest: Manifest,
    dir: AtomicDir,
}

impl SealedShards {
    pub fn publish(self) -> anyhow::Result<Manifest> {
        self.dir.commit()?;
        Ok(self.manifest)
    }
}

// ---------------------------------------------------------------------------------------------
// Reader

/// Token ids of a whole split or one document, in their on-disk width.
#[derive(Debug, Clone, Copy)]
pub enum TokenSlice<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl<'a> TokenSlice<'a> {
    pub fn len(&self) -> usize {
        match self {
            TokenSlice::U16(s) => s.len(),
            TokenSlice::U32(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            TokenSlice::U16(s) => s[i] as u32,
            TokenSlice::U32(s) => s[i],
        }
    }
    pub fn slice(&self, start: usize, end: usize) -> TokenSlice<'a> {
        match self {
            TokenSlice::U16(s) => TokenSlice::U16(&s[start..end]),
            TokenSlice::U32(s) => TokenSlice::U32(&s[start..end]),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        let s = *self;
        (0..s.len()).map(move |i| s.get(i))
    }
    /// Appends the ids as i64 (the dtype torch embeddings take).
    pub fn extend_i64(&self, out: &mut Vec<i64>) {
        match self {
            TokenSlice::U16(s) => out.extend(s.iter().map(|&x| x as i64)),
            TokenSlice::U32(s) => out.extend(s.iter().map(|&x| x as i64)),
        }
    }
    pub fn max(&self) -> Option<u32> {
        match self {
            TokenSlice::U16(s) => s.iter().max().map(|&x| x as u32),
            TokenSlice::U32(s) => s.iter().max().copied(),
        }
    }
}

fn map_file(path: &Path) -> Result<Mmap> {
    let f = File::open(path).map_err(|e| FormatError::io(path, e))?;
    #[allow(unsafe_code)]
    // SAFETY: shard files are immutable once published: numericalize writes them into a
    // temporary directory and renames it into place, and nothing in this workspace modifies a
    // published file. A process that truncated one while we read could still cause SIGBUS
    // (the reason uutils' tac stopped mapping files); shards are not such files.
    let m = unsafe { Mmap::map(&f) }.map_err(|e| FormatError::io(path, e))?;
    Ok(m)
}

/// One split of a shard set, memory-mapped.
pub struct Split {
    pub name: String,
    dtype: Dtype,
    tokens: Mmap,
    offsets: Mmap,
    pub fields: Fields,
}

impl Split {
    /// All token ids of the split, documents concatenated in order.
    pub fn tokens(&self) -> TokenSlice<'_> {
        let p = &self.tokens[HEADER_LEN..];
        match self.dtype {
            Dtype::U16 => TokenSlice::U16(bytemuck::cast_slice(p)),
            Dtype::U32 => TokenSlice::U32(bytemuck::cast_slice(p)),
        }
    }

    /// Document start offsets into [`Split::tokens`]; `docs() + 1` entries.
    pub fn offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.offsets[HEADER_LEN..])
    }

    pub fn docs(&self) -> usize {
        self.offsets().len() - 1
    }

    pub fn n_tokens(&self) -> usize {
        self.tokens().len()
    }

    /// Token ids of document `d`.
    pub fn doc(&self, d: usize) -> TokenSlice<'_> {
        let o = self.offsets();
        self.tokens().slice(o[d] as usize, o[d + 1] as usize)
    }
}

/// An opened, verified shard set.
#[derive(Debug)]
pub struct ShardSet {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub vocab: Vocab,
    verify: Verify,
}

impl std::fmt::Debug for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Split({}, {} docs, {} tokens)",
            self.name,
            self.docs(),
            self.n_tokens()
        )
    }
}

impl ShardSet {
    /// Opens and fully verifies a shard set directory, or a `.tar.zst` archive of one (unpacked
    /// once into the per-user cache; see [`crate::archive`]).
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<ShardSet> {
        Self::open_with(path, Verify::Full)
    }

    pub fn open_with(path: impl AsRef<Path>, verify: Verify) -> anyhow::Result<ShardSet> {
        let path = path.as_ref();
        if path.is_file() {
            let dir = crate::archive::unpack_cached(path)?;
            return Ok(Self::open_dir(&dir, verify)?);
        }
        Ok(Self::open_dir(path, verify)?)
    }

    /// Opens a shard set directory.
    pub fn open_dir(dir: &Path, verify: Verify) -> Result<ShardSet> {
        if !dir.is_dir() {
            return Err(FormatError::invalid(dir, "no such shard set directory"));
        }
        let mpath = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&mpath).map_err(|e| FormatError::io(&mpath, e))?;
        // Check format and version before the full schema, so an old or foreign file says so.
        let raw: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| FormatError::Json {
                path: mpath.clone(),
                msg: e.to_string(),
            })?;
        if raw.get("format").and_then(|v| v.as_str()) != Some(MANIFEST_FORMAT) {
            return Err(FormatError::invalid(
                &mpath,
                format!("not a shard-set manifest (format is not {MANIFEST_FORMAT:?})"),
            ));
        }
        let version = raw.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if version != SHARD_VERSION {
            return Err(FormatError::Version {
                path: mpath,
                found: version,
                supported: SHARD_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_value(raw).map_err(|e| FormatError::Json {
            path: mpath.clone(),
            msg: e.to_string(),
        })?;
        let vocab = Vocab::load(dir.join(VOCAB_FILE))?;
        if vocab.hash() != manifest.vocab_hash {
            return Err(FormatError::VocabMismatch {
                path: dir.join(VOCAB_FILE),
                found: vocab.hash().into(),
                expected: manifest.vocab_hash.clone(),
                context: "vocab.json vs manifest.json".into(),
            });
        }
        if vocab.len() as u64 != manifest.vocab_size
            || Dtype::for_vocab(vocab.len()) != manifest.dtype
        {
            return Err(FormatError::corrupt(
                &mpath,
                "vocab size or dtype disagrees with vocab.json",
            ));
        }
        let (d, t) = manifest
            .splits
            .values()
            .fold((0, 0), |(d, t), s| (d + s.docs, t + s.tokens));
        if d != manifest.docs || t != manifest.tokens {
            return Err(FormatError::corrupt(
                &mpath,
                "split counts do not add up to the totals",
            ));
        }
        let set = ShardSet {
            dir: dir.to_path_buf(),
            manifest,
            vocab,
            verify,
        };
        // Check every split now, so a damaged set fails at open, not hours into training.
        for name in set.manifest.splits.keys() {
            set.split(name)?;
        }
        Ok(set)
    }

    pub fn split_names(&self) -> impl Iterator<Item = &str> {
        self.manifest.splits.keys().map(String::as_str)
    }

    pub fn has_split(&self, name: &str) -> bool {
        self.manifest.splits.contains_key(name)
    }

    /// Maps and checks one split.
    pub fn split(&self, name: &str) -> Result<Split> {
        let info = self.manifest.splits.get(name).ok_or_else(|| {
            let have: Vec<&str> = self.split_names().collect();
            FormatError::invalid(
                &self.dir,
                format!("no split {name:?} (splits: {})", have.join(", ")),
            )
        })?;
        let vh = &self.manifest.vocab_hash;
        let check_file = |fi: &FileInfo, kind: Kind| -> Result<(PathBuf, Mmap, Header)> {
            let expected_name = format!("{name}.{}", kind.ext());
            let p = self.dir.join(&fi.name);
            if fi.name != expected_name {
                return Err(FormatError::corrupt(
                    self.dir.join(MANIFEST_FILE),
                    format!("split {name} lists file {:?}", fi.name),
                ));
            }
            let m = map_file(&p)?;
            if m.len() as u64 != fi.bytes {
                return Err(FormatError::corrupt(
                    &p,
                    format!(
                        "{} bytes but the manifest says {} (truncated or replaced)",
                        m.len(),
                        fi.bytes
                    ),
                ));
            }
            let h = decode_header(&p, &m, kind, vh)?;
            if self.verify == Verify::Full {
                let sum = blake3::hash(&m[HEADER_LEN..]).to_hex().to_string();
                if sum != fi.blake3 {
                    return Err(FormatError::Checksum {
                        path: p,
                        what: "payload BLAKE3 differs from the manifest".into(),
                    });
                }
            }
            Ok((p, m, h))
        };
        let (tp, tokens, th) = check_file(&info.tokens_file, Kind::Tokens)?;
        if th.elem != self.manifest.dtype.size() || th.count != info.tokens {
            return Err(FormatError::corrupt(
                &tp,
                "token count or width disagrees with the manifest",
            ));
        }
        let (op, offsets, oh) = check_file(&info.offsets_file, Kind::Offsets)?;
        if oh.elem != 8 || oh.count != info.docs + 1 {
            return Err(FormatError::corrupt(
                &op,
                "document count disagrees with the manifest",
            ));
        }
        let (fp, fmap, _) = check_file(&info.fields_file, Kind::Fields)?;
        let fields: Fields = bincode::deserialize(&fmap[HEADER_LEN..])
            .map_err(|e| FormatError::corrupt(&fp, format!("fields do not decode: {e}")))?;
        if fields.rows.len() as u64 != info.docs
            || fields.columns.len() != self.manifest.fields.len()
            || fields
                .columns
                .iter()
                .any(|c| c.codes.len() as u64 != info.docs)
        {
            return Err(FormatError::corrupt(
                &fp,
                "field columns disagree with the manifest",
            ));
        }
        // Every code names one of its column's levels (or is MISSING): Column::get indexes
        // the levels with it.
        for c in &fields.columns {
            let n = c.levels.len() as u64;
            if let Some(&bad) = c
                .codes
                .iter()
                .find(|&&k| k != Column::MISSING && k as u64 >= n)
            {
                return Err(FormatError::corrupt(
                    &fp,
                    format!(
                        "field column {:?} has the code {bad}, beyond its {n} values",
                        c.name
                    ),
                ));
            }
        }
        let split = Split {
            name: name.to_string(),
            dtype: self.manifest.dtype,
            tokens,
            offsets,
            fields,
        };
        let o = split.offsets();
        if o[0] != 0
            || *o.last().expect("docs+1 offsets") != info.tokens
            || o.windows(2).any(|w| w[0] > w[1])
        {
            return Err(FormatError::corrupt(
                &op,
                "offsets are not increasing from 0 to the token count",
            ));
        }
        if self.verify == Verify::Full {
            if let Some(m) = split.tokens().max() {
                if m as u64 >= self.manifest.vocab_size {
                    return Err(FormatError::corrupt(
                        &tp,
                        format!(
                            "token id {m} is outside the vocab of {}",
                            self.manifest.vocab_size
                        ),
                    ));
                }
            }
        }
        Ok(split)
    }

    /// Fails with a clear message unless this set was numericalized with `vocab_hash`.
    pub fn require_vocab(&self, vocab_hash: &str, what: &str) -> Result<()> {
        if self.manifest.vocab_hash != vocab_hash {
            return Err(FormatError::VocabMismatch {
                path: self.dir.clone(),
                found: self.manifest.vocab_hash.clone(),
                expected: vocab_hash.into(),
                context: format!(
                    "{what}; re-run `numericalize --vocab <that vocab>` to make shards with it"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_vocab(n: usize) -> Vocab {
        let counts: Vec<(String, u64)> = (0..n).map(|i| (format!("w{i}"), 100)).collect();
        Vocab::build(&counts, usize::MAX, 1)
    }

    fn write_set(dir: &Path, vocab: Vocab) -> Manifest {
        let mut w = ShardSetWriter::create(dir, false, vocab, vec!["label".into()]).unwrap();
        w.push_doc("train", &[2, 9, 10], 0, &[Some("pos")]).unwrap();
        w.push_doc("valid", &[2, 11], 1, &[Some("neg")]).unwrap();
        w.push_doc("train", &[2, 12, 13, 14], 2, &[None]).unwrap();
        w.push_doc("train", &[], 3, &[Some("pos")]).unwrap();
        w.finish(serde_json::json!({"k": 1}), "fp".into()).unwrap()
    }

    #[test]
    fn roundtrip_u16() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        let m = write_set(&out, tiny_vocab(10));
        assert_eq!(m.dtype, Dtype::U16);
        assert_eq!((m.docs, m.tokens), (4, 9));
        let set = ShardSet::open(&out).unwrap();
        let tr = set.split("train").unwrap();
        assert_eq!(tr.docs(), 3);
        assert_eq!(tr.doc(1).iter().collect::<Vec<_>>(), vec![2, 12, 13, 14]);
        assert!(tr.doc(2).is_empty());
        assert_eq!(tr.fields.rows, vec![0, 2, 3]);
        let lab = tr.fields.column("label").unwrap();
        assert_eq!(
            (lab.get(0), lab.get(1), lab.get(2)),
            (Some("pos"), None, Some("pos"))
        );
        let va = set.split("valid").unwrap();
        assert_eq!(va.tokens().iter().collect::<Vec<_>>(), vec![2, 11]);
        assert!(set
            .split("test")
            .unwrap_err()
            .to_string()
            .contains("no split \"test\" (splits: train, valid)"));
    }

    #[test]
    fn roundtrip_u32() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        let m = write_set(&out, tiny_vocab(70_000));
        assert_eq!(m.dtype, Dtype::U32);
        let set = ShardSet::open(&out).unwrap();
        assert_eq!(
            set.split("train")
                .unwrap()
                .doc(0)
                .iter()
                .collect::<Vec<_>>(),
            vec![2, 9, 10]
        );
    }

    /// The same set as [`write_set`], written with push_encoded and late field names.
    fn write_set_encoded(dir: &Path, vocab: Vocab) -> Manifest {
        let mut w = ShardSetWriter::create(dir, false, vocab, Vec::new()).unwrap();
        let enc = |ids: &[u32], d: Dtype| -> Vec<u8> {
            match d {
                Dtype::U16 => ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
                Dtype::U32 => ids.iter().flat_map(|&i| i.to_le_bytes()).collect(),
            }
        };
        let d = w.dtype();
        w.push_encoded("train", &enc(&[2, 9, 10], d), &[3], [0])
            .unwrap();
        w.push_encoded("valid", &enc(&[2, 11], d), &[2], [1])
            .unwrap();
        w.push_encoded("train", &enc(&[2, 12, 13, 14], d), &[4, 0], [2, 3])
            .unwrap();
        assert!(
            w.push_encoded("train", &enc(&[2], d), &[2], [4]).is_err(),
            "lens must match the bytes"
        );
        w.set_field_names(vec!["label".into()]).unwrap();
        w.push_fields("train", &[Some("pos")]).unwrap();
        w.push_fields("valid", &[Some("neg")]).unwrap();
        w.push_fields("train", &[None]).unwrap();
        w.push_fields("train", &[Some("pos")]).unwrap();
        w.finish(serde_json::json!({"k": 1}), "fp".into()).unwrap()
    }

    #[test]
    fn encoded_writes_give_the_same_files() {
        for n in [10, 70_000] {
            let d = tempfile::tempdir().unwrap();
            let (a, b) = (d.path().join("a"), d.path().join("b"));
            let ma = write_set(&a, tiny_vocab(n));
            let mb = write_set_encoded(&b, tiny_vocab(n));
            assert_eq!(ma, mb);
            for f in [
                "manifest.json",
                "vocab.json",
                "train.tokens",
                "train.offsets",
                "train.fields",
                "valid.tokens",
                "valid.offsets",
                "valid.fields",
            ] {
                assert_eq!(
                    std::fs::read(a.join(f)).unwrap(),
                    std::fs::read(b.join(f)).unwrap(),
                    "{f} with {n} tokens"
                );
            }
        }
    }

    #[test]
    fn missing_field_values_fail_finish() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        let mut w = ShardSetWriter::create(&out, false, tiny_vocab(10), Vec::new()).unwrap();
        w.push_encoded("train", &[2, 0, 9, 0], &[2], [0]).unwrap();
        w.set_field_names(vec!["label".into()]).unwrap();
        let e = w
            .finish(serde_json::json!({}), "fp".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("field values for 0 of its 1 documents"), "{e}");
        assert!(!out.exists());
    }

    fn corrupt_and_open(f: impl FnOnce(&Path)) -> String {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        write_set(&out, tiny_vocab(10));
        f(&out);
        ShardSet::open(&out).unwrap_err().to_string()
    }

    #[test]
    fn truncated_file_is_reported() {
        let e = corrupt_and_open(|p| {
            let f = p.join("train.tokens");
            let b = std::fs::read(&f).unwrap();
            std::fs::write(&f, &b[..b.len() - 2]).unwrap();
        });
        assert!(e.contains("train.tokens") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn flipped_header_byte_is_reported() {
        let e = corrupt_and_open(|p| {
            let f = p.join("valid.offsets");
            let mut b = std::fs::read(&f).unwrap();
            b[25] ^= 1;
            std::fs::write(&f, &b).unwrap();
        });
        assert!(
            e.contains("valid.offsets") && e.contains("header checksum"),
            "{e}"
        );
    }

    #[test]
    fn flipped_payload_byte_is_reported() {
        let e = corrupt_and_open(|p| {
            let f = p.join("train.tokens");
            let mut b = std::fs::read(&f).unwrap();
            b[HEADER_LEN] ^= 1;
            std::fs::write(&f, &b).unwrap();
        });
        assert!(
            e.contains("train.tokens") && e.contains("checksum mismatch"),
            "{e}"
        );
    }

    #[test]
    fn future_version_is_reported() {
        let e = corrupt_and_open(|p| {
            let f = p.join(MANIFEST_FILE);
            let s = std::fs::read_to_string(&f)
                .unwrap()
                .replace("\"version\": 1", "\"version\": 9");
            std::fs::write(&f, s).unwrap();
        });
        assert!(e.contains("format version 9 is not supported"), "{e}");
    }

    #[test]
    fn other_vocab_is_reported() {
        let e = corrupt_and_open(|p| {
            std::fs::write(p.join(VOCAB_FILE), tiny_vocab(11).to_json()).unwrap();
        });
        assert!(
            e.contains("vocab hash") && e.contains("vocab.json vs manifest.json"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_reported() {
        let e = corrupt_and_open(|p| std::fs::remove_file(p.join("train.fields")).unwrap());
        assert!(e.contains("train.fields"), "{e}");
    }

    /// Rewrites `split`'s fields file with `f` applied to its decoded fields, with a valid
    /// header and manifest entry: only the reader's own checks can catch the damage.
    fn rewrite_fields(dir: &Path, split: &str, f: impl FnOnce(&mut Fields)) {
        let name = format!("{split}.fields");
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let mut fields: Fields = bincode::deserialize(&bytes[HEADER_LEN..]).unwrap();
        f(&mut fields);
        let payload = bincode::serialize(&fields).unwrap();
        let vh = std::str::from_utf8(&bytes[32..48]).unwrap();
        let mut out = encode_header(Kind::Fields, 1, payload.len() as u64, vh).to_vec();
        out.extend_from_slice(&payload);
        std::fs::write(dir.join(&name), &out).unwrap();
        let mpath = dir.join(MANIFEST_FILE);
        let mut m: Manifest = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
        let fi = &mut m.splits.get_mut(split).unwrap().fields_file;
        fi.bytes = out.len() as u64;
        fi.blake3 = blake3::hash(&payload).to_hex().to_string();
        std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    /// Found by the shard_reader fuzz target: a field code beyond the column's levels (with
    /// consistent checksums) opened fine and then panicked in Column::get.
    #[test]
    fn field_code_outside_the_levels_is_reported() {
        let e = corrupt_and_open(|p| rewrite_fields(p, "train", |f| f.columns[0].codes[1] = 7));
        assert!(
            e.contains("train.fields") && e.contains("has the code 7, beyond its 1 values"),
            "{e}"
        );
        // MISSING stays valid
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        write_set(&out, tiny_vocab(10));
        rewrite_fields(&out, "train", |f| f.columns[0].codes[0] = Column::MISSING);
        let set = ShardSet::open(&out).unwrap();
        assert_eq!(set.split("train").unwrap().fields.columns[0].get(0), None);
    }

    #[test]
    fn not_a_shard_file() {
        let e = corrupt_and_open(|p| {
            std::fs::write(
                p.join("train.tokens"),
                b"hello world, not a shard at all but long enough to hold a header....",
            )
            .unwrap()
        });
        assert!(e.contains("train.tokens"), "{e}");
    }
}
