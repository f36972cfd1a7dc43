//! fastai's `LMDataLoader` batch layout over a memory-mapped split.
//!
//! Per epoch the split's documents are shuffled (train; seeded by seed and epoch) and
//! concatenated; the stream is cut into `bs` contiguous rows of `bl = ⌊(tokens − 1)/bs⌋`
//! tokens (the `−1` leaves room for the last target; the tail that does not fill a row is
//! dropped, as fastai does). Batch `j` holds, for every row `i`, the tokens
//! `[i·bl + j·bptt, i·bl + j·bptt + sl]` (input = the first `sl`, target = the last `sl`), so
//! each batch continues the previous one row by row and the hidden state can be carried
//! over. The last batch of an epoch is shorter when `bptt` does not divide `bl`.
//!
//! Nothing is copied up front: each batch's ids are read when it is built, from the mmap or,
//! with [`LmBatches::read_from_file`] (what `lm-train` uses), with positioned reads of the
//! tokens file. Positioned reads keep the process's resident memory independent of the corpus
//! size: pages of a mapping count in RSS once touched, so an epoch over a mapped 10 GB split
//! would show 10 GB of (reclaimable, but reported) RSS by its end.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shared::shards::{Split, TokenSlice, HEADER_LEN};
use tch::{Device, Tensor};

/// One epoch's view of a split in LM batch layout.
pub struct LmBatches<'a> {
    split: &'a Split,
    /// The split's tokens file and its element size, for positioned reads.
    file: Option<(File, usize)>,
    /// Document order of this epoch.
    order: Vec<u32>,
    /// `cum[k]` = start of the `k`-th document of `order` in the concatenation; `cum[n]` = total.
    cum: Vec<u64>,
    pub bs: usize,
    pub bptt: usize,
    /// Tokens per row.
    pub bl: usize,
    pub n_batches: usize,
}

/// Batch geometry for a split of `n_tokens` (checked before training starts).
pub fn geometry(n_tokens: usize, bs: usize, bptt: usize) -> (usize, usize) {
    let bl = n_tokens.saturating_sub(1) / bs.max(1);
    let n_batches = bl.div_ceil(bptt.max(1));
    (bl, n_batches)
}

/// Seed of epoch `epoch`'s document shuffle.
pub fn shuffle_seed(seed: u64, epoch: u64) -> u64 {
    seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<'a> LmBatches<'a> {
    /// `shuffle`: Some(seed) shuffles the documents (training), None keeps their order.
    pub fn new(split: &'a Split, bs: usize, bptt: usize, shuffle: Option<u64>) -> Result<Self> {
        if bs == 0 || bptt == 0 {
            bail!("--bs and --bptt must be at least 1");
        }
        let n = split.n_tokens();
        let (bl, n_batches) = geometry(n, bs, bptt);
        if bl == 0 {
            bail!(
                "split {:?} has {n} tokens, too few for --bs {bs} (need at least bs + 1 = {})",
                split.name,
                bs + 1
            );
        }
        let mut order: Vec<u32> = (0..split.docs() as u32).collect();
        if let Some(seed) = shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        let offs = split.offsets();
        let mut cum = Vec::with_capacity(order.len() + 1);
        let mut acc = 0u64;
        cum.push(0);
        for &d in &order {
            acc += offs[d as usize + 1] - offs[d as usize];
            cum.push(acc);
        }
        Ok(LmBatches {
            split,
            file: None,
            order,
            cum,
            bs,
            bptt,
            bl,
            n_batches,
        })
    }

    /// Reads ids from `tokens_file` (the split's `SPLIT.tokens`, already verified by
    /// `ShardSet::open`) with positioned reads instead of the mapping.
    pub fn read_from_file(mut self, tokens_file: &Path) -> Result<Self> {
        let f = File::open(tokens_file)
            .with_context(|| format!("{}: cannot open", tokens_file.display()))?;
        let elem = match self.split.tokens() {
            TokenSlice::U16(_) => 2,
            TokenSlice::U32(_) => 4,
        };
        self.file = Some((f, elem));
        Ok(self)
    }

    /// Sequence length of batch `j`.
    pub fn seq_len(&self, j: usize) -> usize {
        if j + 1 == self.n_batches {
            self.bl - j * self.bptt
        } else {
            self.bptt
        }
    }

    /// Appends `len` ids of the concatenated stream starting at `start`.
    fn read(&self, start: u64, len: usize, out: &mut Vec<i64>) {
        // first document whose end is beyond `start`
        let mut k = self.cum.partition_point(|&c| c <= start) - 1;
        let mut pos = start;
        let mut left = len as u64;
        while left > 0 {
            let d = self.order[k] as usize;
            let doc = self.split.doc(d);
            let off = (pos - self.cum[k]) as usize;
            let take = ((doc.len() - off) as u64).min(left) as usize;
            match &self.file {
                None => doc.slice(off, off + take).extend_i64(out),
                Some((f, elem)) => {
                    let first = self.split.offsets()[d] as usize + off;
                    let mut buf = vec![0u8; take * elem];
                    f.read_exact_at(&mut buf, (HEADER_LEN + first * elem) as u64)
                        .expect("reading a verified tokens file");
                    if *elem == 2 {
                        out.extend(
                            buf.chunks_exact(2)
                                .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64),
                        );
                    } else {
                        out.extend(
                            buf.chunks_exact(4)
                                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
                        );
                    }
                }
            }
            pos += take as u64;
            left -= take as u64;
            k += 1;
        }
    }

    /// Batch `j` as `(input, target)`, each bs × sl int64 on `device`.
    pub fn batch(&self, j: usize, device: Device) -> (Tensor, Tensor) {
        self.batch_rows(j, 0, self.bs, device)
    }

    /// Rows `r0..r1` of batch `j` (a micro-batch of streams), each (r1 − r0) × sl.
    pub fn batch_rows(&self, j: usize, r0: usize, r1: usize, device: Device) -> (Tensor, Tensor) {
        let sl = self.seq_len(j);
        let n = r1 - r0;
        let mut ids = Vec::with_capacity(n * (sl + 1));
        for i in r0..r1 {
            let start = (i * self.bl + j * self.bptt) as u64;
            self.read(start, sl + 1, &mut ids);
        }
        let t = Tensor::from_slice(&ids).view([n as i64, sl as i64 + 1]);
        let x = t.narrow(1, 0, sl as i64).contiguous().to_device(device);
        let y = t.narrow(1, 1, sl as i64).contiguous().to_device(device);
        (x, y)
    }

    /// Input tokens per epoch.
    pub fn tokens_per_epoch(&self) -> u64 {
        (self.bs * self.bl) as u64
    }
}
