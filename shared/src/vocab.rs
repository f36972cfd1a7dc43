//! The vocabulary: id → token (`itos`) with counts, and its hash.
//!
//! Built exactly as fastai v2's `make_vocab` does it:
//!
//! ```python
//! vocab = [o for o,c in count.most_common(max_vocab) if c >= min_freq]
//! for o in reversed(special_toks):          # special tokens first, in this order
//!     if o in vocab: vocab.remove(o)
//!     vocab.insert(0, o)
//! vocab = vocab[:max_vocab]
//! return vocab + ['xxfake' for i in range(0, 8-len(vocab)%8)]
//! ```
//!
//! Ties in count keep first-occurrence order, as Python's `Counter.most_common` does (a
//! stable sort of an insertion-ordered dict), so the result is deterministic and equal to
//! fastai's for the same token stream. Note the padding: `8 - len % 8` adds 8 `xxfake` when the
//! length is already a multiple of 8, exactly like fastai.
//!
//! On disk, `vocab.json`:
//! `{"format":"ulmfit-vocab","version":1,"hash":"…","itos":[…],"counts":[…]}`.
//! The hash ([`Vocab::hash`]) is 16 hex digits of BLAKE3 over the tokens (length-prefixed),
//! so two vocabs with the same tokens in the same order have the same hash whatever their
//! counts. Shard sets and checkpoints record it; a mismatch means ids mean different tokens.

use std::path::{Path, PathBuf};

use ahash::AHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};

pub const UNK: &str = "xxunk";
pub const PAD: &str = "xxpad";
pub const BOS: &str = "xxbos";
pub const EOS: &str = "xxeos";
pub const FLD: &str = "xxfld";
pub const TK_REP: &str = "xxrep";
pub const TK_WREP: &str = "xxwrep";
pub const TK_UP: &str = "xxup";
pub const TK_MAJ: &str = "xxmaj";
pub const FAKE: &str = "xxfake";

/// fastai v2's `defaults.text_spec_tok`, in order: ids 0..9 of every vocab built here.
pub const SPECIAL_TOKENS: [&str; 9] = [UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ];

pub const VOCAB_FORMAT: &str = "ulmfit-vocab";
pub const VOCAB_VERSION: u32 = 1;
pub const VOCAB_FILE: &str = "vocab.json";

/// Default `max_vocab` and `min_freq` of fastai's `Numericalize`.
pub const DEFAULT_MAX_VOCAB: usize = 60_000;
pub const DEFAULT_MIN_FREQ: u64 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VocabFile {
    format: String,
    version: u32,
    hash: String,
    itos: Vec<String>,
    counts: Vec<u64>,
}

/// A vocabulary with a fast token → id map.
#[derive(Debug, Clone)]
pub struct Vocab {
    itos: Vec<String>,
    counts: Vec<u64>,
    stoi: crate::tokmap::FrozenMap,
    hash: String,
}

/// Hash of a token list: 16 hex digits of BLAKE3 over length-prefixed tokens.
pub fn hash_itos<S: AsRef<str>>(itos: &[S]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"ulmfit-vocab-v1");
    for t in itos {
        let t = t.as_ref().as_bytes();
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t);
    }
    h.finalize().to_hex()[..16].to_string()
}

impl Vocab {
    /// A vocab from an id → token list (counts unknown: zero).
    pub fn from_itos(itos: Vec<String>) -> Vocab {
        let counts = vec![0; itos.len()];
        Self::from_parts(itos, counts)
    }

    fn from_parts(itos: Vec<String>, counts: Vec<u64>) -> Vocab {
        // First occurrence wins (several `xxfake` share the id of the first).
        let stoi = crate::tokmap::FrozenMap::new(&itos);
        let hash = hash_itos(&itos);
        Vocab {
            itos,
            counts,
            stoi,
            hash,
        }
    }

    /// fastai's `make_vocab` over `(token, count)` pairs given in first-occurrence order.
    pub fn build(counts: &[(String, u64)], max_vocab: usize, min_freq: u64) -> Vocab {
        // most_common: stable sort by count, descending; ties keep insertion order.
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| counts[b].1.cmp(&counts[a].1));
        order.truncate(max_vocab);
        let mut vocab: Vec<usize> = order
            .into_iter()
            .filter(|&i| counts[i].1 >= min_freq)
            .collect();
        vocab.retain(|&i| !SPECIAL_TOKENS.contains(&counts[i].0.as_str()));
        let count_of: AHashMap<&str, u64> = counts.iter().map(|(t, c)| (t.as_str(), *c)).collect();
        let mut itos: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
        let mut cnts: Vec<u64> = SPECIAL_TOKENS
            .iter()
            .map(|s| count_of.get(s).copied().unwrap_or(0))
            .collect();
        for i in vocab {
            itos.push(counts[i].0.clone());
            cnts.push(counts[i].1);
        }
        itos.truncate(max_vocab.max(SPECIAL_TOKENS.len()).min(itos.len()));
        cnts.truncate(itos.len());
        let pad = 8 - itos.len() % 8;
        for _ in 0..pad {
            itos.push(FAKE.to_string());
            cnts.push(0);
        }
        Self::from_parts(itos, cnts)
    }

    pub fn len(&self) -> usize {
        self.itos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    pub fn itos(&self) -> &[String] {
        &self.itos
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Id of `token`, if present.
    #[inline]
    pub fn get(&self, token: &str) -> Option<u32> {
        self.stoi.get(token)
    }

    /// [`Vocab::get`] for a token of at most 8 bytes given also as a word
    /// ([`crate::tokmap::word8`]), as [`crate::stream::TokenSink::token_word`] receives it.
    #[inline]
    pub fn get_word(&self, token: &str, word: u64) -> Option<u32> {
        self.stoi.get_word(token, word)
    }

    /// Id of `token`, or `xxunk`'s.
    #[inline]
    pub fn id_or_unk(&self, token: &str) -> u32 {
        self.get(token).unwrap_or_else(|| self.unk_id())
    }

    pub fn unk_id(&self) -> u32 {
        self.stoi.get(UNK).unwrap_or(0)
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.itos.get(id as usize).map(String::as_str)
    }

    /// Serialized `vocab.json` bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let f = VocabFile {
            format: VOCAB_FORMAT.into(),
            version: VOCAB_VERSION,
            hash: self.hash.clone(),
            itos: self.itos.clone(),
            counts: self.counts.clone(),
        };
        let mut v = serde_json::to_vec(&f).expect("vocab serializes");
        v.push(b'\n');
        v
    }

    /// Loads a vocab from a `vocab.json`, or from a directory that holds one (a shard set or
    /// a checkpoint). Verifies the format, version and hash.
    pub fn load(path: impl AsRef<Path>) -> Result<Vocab> {
        let path = path.as_ref();
        let file: PathBuf = if path.is_dir() {
            path.join(VOCAB_FILE)
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| FormatError::io(&file, e))?;
        Self::from_json(&file, &bytes)
    }

    pub fn from_json(file: &Path, bytes: &[u8]) -> Result<Vocab> {
        let v: VocabFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Json {
            path: file.into(),
            msg: e.to_string(),
        })?;
        if v.format != VOCAB_FORMAT {
            return Err(FormatError::invalid(
                file,
                format!("format is {:?}, expected {VOCAB_FORMAT:?}", v.format),
            ));
        }
        if v.version != VOCAB_VERSION {
            return Err(FormatError::Version {
                path: file.into(),
                found: v.version,
                supported: VOCAB_VERSION,
            });
        }
        if v.itos.is_empty() {
            return Err(FormatError::invalid(file, "vocab is empty"));
        }
        if v.counts.len() != v.itos.len() {
            return Err(FormatError::corrupt(
                file,
                format!("{} tokens but {} counts", v.itos.len(), v.counts.len()),
            ));
        }
        let vocab = Self::from_parts(v.itos, v.counts);
        if vocab.hash != v.hash {
            return Err(FormatError::Checksum {
                path: file.into(),
                what: format!(
                    "stored hash {} but the tokens hash to {}",
                    v.hash, vocab.hash
                ),
            });
        }
        Ok(vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    #[test]
    fn specials_first_then_by_count_with_first_seen_ties() {
        let c = counts(&[("b", 5), ("xxbos", 9), ("a", 5), ("c", 7), ("rare", 2)]);
        let v = Vocab::build(&c, 60000, 3);
        assert_eq!(&v.itos()[..9], &SPECIAL_TOKENS.map(String::from));
        assert_eq!(&v.itos()[9..12], &["c", "b", "a"]);
        // 12 tokens padded to 16
        assert_eq!(v.len(), 16);
        assert!(v.itos()[12..].iter().all(|t| t == FAKE));
        assert_eq!(v.get("rare"), None);
        assert_eq!(v.id_or_unk("rare"), 0);
        assert_eq!(v.counts()[2], 9);
    }

    #[test]
    fn padding_adds_eight_when_already_aligned() {
        // 9 specials + 7 tokens = 16 → fastai adds 8 more
        let c: Vec<(String, u64)> = (0..7).map(|i| (format!("t{i}"), 10)).collect();
        let v = Vocab::build(&c, 60000, 1);
        assert_eq!(v.len(), 24);
    }

    #[test]
    fn max_vocab_counts_before_min_freq_filter() {
        // most_common(max_vocab) first, then the filter: as fastai
        let c = counts(&[("a", 10), ("b", 9), ("c", 8)]);
        let v = Vocab::build(&c, 10, 1);
        assert_eq!(&v.itos()[9..10], &["a"]);
        assert_eq!(v.len(), 16);
    }

    #[test]
    fn json_roundtrip_and_hash_check() {
        let v = Vocab::build(&counts(&[("x", 4)]), 100, 1);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vocab.json");
        std::fs::write(&p, v.to_json()).unwrap();
        let back = Vocab::load(d.path()).unwrap();
        assert_eq!(back.itos(), v.itos());
        assert_eq!(back.hash(), v.hash());
        let tampered = String::from_utf8(v.to_json())
            .unwrap()
            .replace("\"x\"", "\"y\"");
        std::fs::write(&p, tampered).unwrap();
        let e = Vocab::load(&p).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
    }
}
