//! Token counting: the dictionary used while reading, and the map-reduce steps
//! `numericalize count` (map) and `numericalize merge-counts` (reduce).
//!
//! A counts file keeps tokens in first-seen order, so merging the pieces in corpus order
//! reproduces the tie-breaks of one pass over the whole corpus: the vocab from
//! `count` + `merge-counts` is identical to the vocab built directly.
//!
//! ```text
//! {"format":"ulmfit-counts","version":1,"docs":1000,"tokens":318413,"counts":[["xxbos",1000],["xxmaj",14210],...]}
//! ```

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shared::cli::CommonArgs;
use shared::input::Input;
use shared::metrics::{Event, Metrics};
use shared::tokmap::TokenMap;
use shared::vocab::{Vocab, VOCAB_FILE};

use crate::args::{CountArgs, MergeArgs};
use crate::parse;

pub const COUNTS_FORMAT: &str = "ulmfit-counts";
pub const COUNTS_VERSION: u32 = 1;

/// Token → provisional id (first-seen order) with counts.
#[derive(Debug, Default)]
pub struct Dict {
    map: TokenMap,
    pub itos: Vec<String>,
    pub counts: Vec<u64>,
}

impl Dict {
    #[inline]
    pub fn add(&mut self, tok: &str, n: u64) -> u32 {
        let next = self.itos.len() as u32;
        let id = self.map.get_or_insert(tok, next);
        if id == next {
            self.itos.push(tok.to_string());
            self.counts.push(n);
        } else {
            self.counts[id as usize] += n;
        }
        id
    }

    pub fn len(&self) -> usize {
        self.itos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    pub fn pairs(&self) -> Vec<(String, u64)> {
        self.itos
            .iter()
            .cloned()
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CountsFile {
    pub format: String,
    pub version: u32,
    pub docs: u64,
    pub tokens: u64,
    pub counts: Vec<(String, u64)>,
}

impl CountsFile {
    pub fn load(path: &Path) -> Result<CountsFile> {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let c: CountsFile = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not a counts file (made by `numericalize count`)",
                path.display()
            )
        })?;
        if c.format != COUNTS_FORMAT {
            bail!(
                "{}: format is {:?}, expected {COUNTS_FORMAT:?}",
                path.display(),
                c.format
            );
        }
        if c.version != COUNTS_VERSION {
            bail!(
                "{}: counts format version {} is not supported (this build reads {COUNTS_VERSION})",
                path.display(),
                c.version
            );
        }
        Ok(c)
    }
}

pub fn run_count(a: &CountArgs, common: &CommonArgs) -> Result<()> {
    let start = Instant::now();
    if a.output.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.output.display()
        );
    }
    let mut dict = Dict::default();
    let (mut docs, mut tokens) = (0u64, 0u64);
    for input in Input::open_all(&a.read.inputs)? {
        parse::for_each_chunk(input, a.read.input_format, |name, chunk, format| {
            for d in parse::parse_chunk(name, chunk, format, a.read.lossy)? {
                docs += 1;
                tokens += d.tokens.len() as u64;
                for t in &d.tokens {
                    dict.add(t, 1);
                }
            }
            Ok(())
        })?;
    }
    let file = CountsFile {
        format: COUNTS_FORMAT.into(),
        version: COUNTS_VERSION,
        docs,
        tokens,
        counts: dict.pairs(),
    };
    let mut json = serde_json::to_vec(&file)?;
    json.push(b'\n');
    shared::atomic::write_file(&a.output, &json, a.force)?;
    if !common.quiet {
        eprintln!(
            "numericalize: counted {docs} docs, {tokens} tokens, {} distinct → {}",
            dict.len(),
            a.output.display()
        );
    }
    Metrics::stdout("numericalize").emit(Event::CountSummary {
        output: a.output.display().to_string(),
        docs,
        tokens,
        distinct_tokens: dict.len() as u64,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

pub fn run_merge(a: &MergeArgs, common: &CommonArgs) -> Result<()> {
    let out = if a.output.is_dir() {
        a.output.join(VOCAB_FILE)
    } else {
        a.output.clone()
    };
    if out.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            out.display()
        );
    }
    let mut dict = Dict::default();
    for p in &a.inputs {
        let c = CountsFile::load(p)?;
        for (t, n) in &c.counts {
            dict.add(t, *n);
        }
    }
    let vocab = Vocab::build(&dict.pairs(), a.max_vocab, a.min_freq);
    shared::atomic::write_file(&out, &vocab.to_json(), a.force)?;
    if !common.quiet {
        eprintln!(
            "numericalize: merged {} count files, {} distinct tokens → vocab of {} ({}) in {}",
            a.inputs.len(),
            dict.len(),
            vocab.len(),
            vocab.hash(),
            out.display()
        );
    }
    Metrics::stdout("numericalize").emit(Event::VocabSummary {
        output: out.display().to_string(),
        inputs: a.inputs.len() as u64,
        distinct_tokens: dict.len() as u64,
        vocab_size: vocab.len() as u64,
        vocab_hash: vocab.hash().into(),
    })
}
