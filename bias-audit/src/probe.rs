//! `bias-audit probe`: does an encoder encode a protected attribute?
//!
//! Every document of a shard set goes through the encoder of a language model (lm-train) or
//! a classifier (clf-train) — clf-train's own sentence encoder and concat pooling
//! ([`clf_train::model::ClfModel::encode`]: [last token's state, max, mean], 3 × emb
//! features, no dropout). The documents with a value in the protected column are split
//! (seeded, stratified by group) into a training part and a held-out part; a multinomial
//! logistic regression (features standardized on the training part, L2 penalty, full-batch
//! Adam) learns to predict the group, and its held-out accuracy, balanced accuracy and ROC
//! AUC are reported next to the majority-class baseline (always guessing the training part's
//! largest group; AUC 0.5, balanced accuracy 1/groups). Accuracy well above the baseline
//! means the representation carries the attribute, whatever the text was meant to hide.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clf_train::checkpoint::ClfCheckpoint;
use clf_train::config::{ClfConfig, HeadConfig, LabelConfig, Task};
use clf_train::model::ClfModel;
use lm_train::checkpoint::Checkpoint;
use lm_train::config::Precision;
use lm_train::runtime;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use shared::cli::CommonArgs;
use shared::shards::ShardSet;
use shared::vocab::PAD;
use tch::{Device, Kind, Tensor};

use crate::args::ProbeArgs;
use crate::classification::roc_auc;
use crate::TOOL;

/// The `probe` JSON record.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub schema: u32,
    pub tool: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ckpt: String,
    /// `language-model` or `classifier`.
    pub checkpoint: &'static str,
    pub shards: String,
    pub splits: Vec<String>,
    pub protected: String,
    pub groups: Vec<String>,
    /// Documents per group (with a value).
    pub group_docs: Vec<u64>,
    /// Documents without a value in the protected column (left out).
    pub skipped_missing: u64,
    pub features: i64,
    pub pooling: &'static str,
    pub train_docs: u64,
    pub held_out_docs: u64,
    pub held_out_frac: f64,
    pub seed: u64,
    pub l2: f64,
    pub iterations: u64,
    /// `--balanced`: classes weighted n / (k·n_c) in the probe's loss.
    pub balanced: bool,
    pub train_accuracy: f64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    /// Binary: ROC AUC of P(second group); more groups: the mean of one-vs-rest AUCs.
    pub auc: Option<f64>,
    pub majority_group: String,
    /// Held-out accuracy of always guessing `majority_group`.
    pub majority_accuracy: f64,
    /// accuracy − majority_accuracy.
    pub accuracy_gain: f64,
}

/// The encoder of either kind of checkpoint, as a classifier model (its head unused).
fn load_encoder(dir: &Path, set: &ShardSet, device: Device) -> Result<(ClfModel, &'static str)> {
    let cfg_path = dir.join("config.json");
    if !dir.is_dir() {
        bail!("{}: no such checkpoint directory", dir.display());
    }
    let raw: serde_json::Value = std::fs::read(&cfg_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| {
            format!(
                "{}: cannot read config.json (is {} an lm-train or clf-train checkpoint?)",
                cfg_path.display(),
                dir.display()
            )
        })?;
    let format = raw.get("format").and_then(|v| v.as_str()).unwrap_or("");
    if format == clf_train::config::CONFIG_FORMAT {
        let ck = ClfCheckpoint::read(dir)?;
        set.require_vocab(
            &ck.config.vocab_hash,
            &format!("the vocab of the classifier {}", dir.display()),
        )?;
        let model = ClfModel::new(&ck.config, device);
        ck.load_into(&model)?;
        return Ok((model, "classifier"));
    }
    if format != lm_train::config::CONFIG_FORMAT {
        bail!(
            "{}: format {format:?} is neither a language model ({}) nor a classifier ({})",
            cfg_path.display(),
            lm_train::config::CONFIG_FORMAT,
            clf_train::config::CONFIG_FORMAT
        );
    }
    let lm = Checkpoint::read(dir)?;
    set.require_vocab(
        &lm.config.vocab_hash,
        &format!("the vocab of the language model {}", dir.display()),
    )?;
    let pad = set
        .vocab
        .get(PAD)
        .map_or(lm.config.model.pad_token, i64::from);
    let enc = clf_train::train::encoder_config(&lm.config.model, 0.0, pad);
    let cfg = ClfConfig {
        format: clf_train::config::CONFIG_FORMAT.into(),
        version: clf_train::config::CONFIG_VERSION,
        arch: clf_train::config::ARCH.into(),
        head: HeadConfig {
            dims: vec![3 * enc.emb_sz, 2],
            ps: vec![0.0],
            y_range: None,
        },
        encoder: enc,
        labels: LabelConfig {
            label_col: String::new(),
            task: Task::Classification,
            classes: vec![],
            label_delim: None,
        },
        bptt: 72,
        max_len: 1440,
        vocab_hash: lm.config.vocab_hash.clone(),
        encoder_source: dir.display().to_string(),
        training: None,
        created_by: String::new(),
    };
    let model = ClfModel::new(&cfg, device);
    model.load_encoder(&lm)?;
    Ok((model, "language-model"))
}

/// Stratified split: per group, a seeded shuffle, `round(n·frac)` held out (at least one and
/// at most n − 1 when the group has two or more documents). Returns (train, held-out) indices.
pub fn stratified_split(
    groups: &[u32],
    n_groups: usize,
    frac: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for g in 0..n_groups as u32 {
        let mut idx: Vec<usize> = (0..groups.len()).filter(|&i| groups[i] == g).collect();
        idx.shuffle(&mut rng);
        let n = idx.len();
        let k = if n < 2 {
            0
        } else {
            ((n as f64 * frac).round() as usize).clamp(1, n - 1)
        };
        test.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Fits a multinomial logistic regression on rows `x` (n × f, standardized by the caller)
/// with classes `y`: full-batch Adam (lr 0.05, 0 init: deterministic) on the mean
/// cross-entropy (weighted per class with `class_weight`) plus `l2/2·‖W‖²`; returns
/// (weight f × k, bias k).
pub fn fit_logistic(
    x: &Tensor,
    y: &Tensor,
    k: i64,
    l2: f64,
    iters: u64,
    class_weight: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let f = x.size()[1];
    let w = Tensor::zeros([f, k], (Kind::Float, x.device())).set_requires_grad(true);
    let b = Tensor::zeros([k], (Kind::Float, x.device())).set_requires_grad(true);
    let mut opt = lm_train::optim::AdamW::new(
        vec![
            ("w".to_string(), w.shallow_clone(), 0),
            ("b".to_string(), b.shallow_clone(), 0),
        ],
        1,
        0.999,
        1e-8,
        0.0,
    );
    for _ in 0..iters {
        opt.zero_grad();
        let logits = x.matmul(&w) + &b;
        let ce = logits.cross_entropy_loss(y, class_weight, tch::Reduction::Mean, -100, 0.0);
        let loss = ce + w.square().sum(Kind::Float) * (l2 / 2.0);
        loss.backward();
        opt.step(&[0.05], 0.9);
    }
    (w.detach(), b.detach())
}

pub fn run(a: ProbeArgs, common: &CommonArgs) -> Result<i32> {
    let (_, device) = runtime::start(common.threads, &a.device)?;
    if !(a.held_out > 0.0 && a.held_out < 1.0) {
        bail!("--held-out {}: must be a fraction in (0, 1)", a.held_out);
    }
    if !(a.l2.is_finite() && a.l2 >= 0.0) {
        bail!("--l2 {}: must be a number ≥ 0", a.l2);
    }
    if a.bs == 0 || a.iterations == 0 {
        bail!("--bs and --iterations must be at least 1");
    }
    let mut json_file = match &a.json_out {
        Some(p) if !shared::cli::is_stdio(p) => {
            Some(shared::atomic::AtomicFile::create(p, a.force)?)
        }
        _ => None,
    };
    let json_stdout = a.json || a.json_out.as_deref().is_some_and(shared::cli::is_stdio);
    let set = ShardSet::open(&a.shards)?;
    let names: Vec<String> = match &a.split {
        Some(s) => {
            set.split(s)?;
            vec![s.clone()]
        }
        None => set.split_names().map(str::to_string).collect(),
    };
    // The protected values first: bad input fails before the encoder runs.
    if !set.manifest.fields.iter().any(|f| f == &a.protected) {
        let have = &set.manifest.fields;
        bail!(
            "{}: no protected column {:?} (fields: {}); keep it when tokenizing (--keep {})",
            a.shards.display(),
            a.protected,
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            },
            a.protected
        );
    }
    let splits: Vec<_> = names
        .iter()
        .map(|n| set.split(n))
        .collect::<Result<_, _>>()?;
    let mut docs: Vec<(usize, usize, String)> = Vec::new(); // (split, doc, value)
    let mut skipped = 0u64;
    for (si, sp) in splits.iter().enumerate() {
        let c = sp.fields.column(&a.protected);
        for d in 0..sp.docs() {
            match c.and_then(|c| c.get(d)).map(str::trim) {
                Some(v) if !v.is_empty() => docs.push((si, d, v.to_string())),
                _ => skipped += 1,
            }
        }
    }
    let groups: Vec<String> = docs
        .iter()
        .map(|d| d.2.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if groups.len() < 2 {
        bail!(
            "{}: the protected column {:?} has {} in the {} split(s) probed; a probe needs at least two groups",
            a.shards.display(),
            a.protected,
            match groups.first() {
                Some(v) => format!("a single value ({v:?})"),
                None => "no values".to_string(),
            },
            names.join(", ")
        );
    }
    let index: BTreeMap<&str, u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i as u32))
        .collect();
    let mut code: Vec<u32> = docs.iter().map(|d| index[d.2.as_str()]).collect();
    // --max-docs: a stratified, seeded subsample (for speed on large shard sets)
    if let Some(m) = a.max_docs {
        if m < docs.len() {
            if m < 2 * groups.len() {
                bail!("--max-docs {m}: too few for {} groups", groups.len());
            }
            let (_, keep) = stratified_split(
                &code,
                groups.len(),
                m as f64 / docs.len() as f64,
                a.seed ^ 0x5eed,
            );
            docs = keep.iter().map(|&i| docs[i].clone()).collect();
            code = keep.iter().map(|&i| code[i]).collect();
        }
    }
    let mut group_docs = vec![0u64; groups.len()];
    code.iter().for_each(|&g| group_docs[g as usize] += 1);

    // Features: the encoder's concat pooling of every document, longest first per batch.
    let (model, kind) = load_encoder(&a.ckpt, &set, device)?;
    let fill = model.encoder.cfg.pad_token;
    let n_feat = 3 * model.encoder.cfg.emb_sz;
    let mut feats = vec![0f32; docs.len() * n_feat as usize];
    {
        let _g = tch::no_grad_guard();
        let lens: Vec<usize> = docs
            .iter()
            .map(|&(s, d, _)| splits[s].doc(d).len().max(1))
            .collect();
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_by(|x, y| lens[*y].cmp(&lens[*x]));
        for b in order.chunks(a.bs) {
            let ids: Vec<Vec<i64>> = b
                .iter()
                .map(|&i| clf_train::data::doc_ids(&splits[docs[i].0], docs[i].1, fill))
                .collect();
            let (pooled, _) = model.encode(&ids, false, Precision::Fp32);
            let v = Vec::<f32>::try_from(
                pooled
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous()
                    .view([-1]),
            )?;
            let f = n_feat as usize;
            for (j, &i) in b.iter().enumerate() {
                feats[i * f..(i + 1) * f].copy_from_slice(&v[j * f..(j + 1) * f]);
            }
        }
    }
    drop(model);

    // The probe.
    let (tr, te) = stratified_split(&code, groups.len(), a.held_out, a.seed);
    let x_all = Tensor::from_slice(&feats).view([docs.len() as i64, n_feat]);
    let rows = |ix: &[usize]| {
        x_all.index_select(
            0,
            &Tensor::from_slice(&ix.iter().map(|&i| i as i64).collect::<Vec<_>>()),
        )
    };
    let ys =
        |ix: &[usize]| Tensor::from_slice(&ix.iter().map(|&i| code[i] as i64).collect::<Vec<_>>());
    let (x_tr, x_te) = (rows(&tr), rows(&te));
    let mean = x_tr.mean_dim(0, true, Kind::Float);
    let std = x_tr.std_dim(0, false, true).clamp_min(1e-6);
    let (x_tr, x_te) = ((x_tr - &mean) / &std, (x_te - &mean) / &std);
    let y_tr = ys(&tr);
    let k = groups.len() as i64;
    // --balanced: class c weighs n / (k·n_c), so every group counts the same
    let class_weight = a.balanced.then(|| {
        let mut n_c = vec![0f64; k as usize];
        tr.iter().for_each(|&i| n_c[code[i] as usize] += 1.0);
        let n = tr.len() as f64;
        let w: Vec<f32> = n_c
            .iter()
            .map(|&c| (n / (k as f64 * c.max(1.0))) as f32)
            .collect();
        Tensor::from_slice(&w)
    });
    let (w, b) = fit_logistic(&x_tr, &y_tr, k, a.l2, a.iterations, class_weight.as_ref());
    let _g = tch::no_grad_guard();
    let acc = |x: &Tensor, y: &Tensor| {
        (x.matmul(&w) + &b)
            .argmax(-1, false)
            .eq_tensor(y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    };
    let train_accuracy = acc(&x_tr, &y_tr);
    let probs = (x_te.matmul(&w) + &b).softmax(-1, Kind::Float);
    let p = Vec::<f32>::try_from(probs.contiguous().view([-1]))?;
    let pred = Vec::<i64>::try_from(probs.argmax(-1, false))?;
    let yt: Vec<i64> = te.iter().map(|&i| code[i] as i64).collect();
    let ku = k as usize;
    let accuracy = yt.iter().zip(&pred).filter(|(a, b)| a == b).count() as f64 / yt.len() as f64;
    let recalls: Vec<f64> = (0..k)
        .filter_map(|g| {
            let n = yt.iter().filter(|&&y| y == g).count();
            (n > 0).then(|| {
                yt.iter()
                    .zip(&pred)
                    .filter(|(y, p)| **y == g && **p == g)
                    .count() as f64
                    / n as f64
            })
        })
        .collect();
    let balanced_accuracy = recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
    let auc_of = |g: usize| {
        let mut pairs: Vec<(f64, bool)> = yt
            .iter()
            .enumerate()
            .map(|(i, &y)| (p[i * ku + g] as f64, y == g as i64))
            .collect();
        roc_auc(&mut pairs)
    };
    let auc = if k == 2 {
        auc_of(1)
    } else {
        let v: Vec<f64> = (0..ku).map(auc_of).filter(|x| x.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let mut train_counts = vec![0u64; ku];
    tr.iter().for_each(|&i| train_counts[code[i] as usize] += 1);
    let top = (0..ku).fold(0, |m, i| {
        if train_counts[i] > train_counts[m] {
            i
        } else {
            m
        }
    });
    let majority_accuracy =
        yt.iter().filter(|&&y| y == top as i64).count() as f64 / yt.len() as f64;
    let report = ProbeReport {
        schema: shared::metrics::SCHEMA,
        tool: TOOL,
        kind: "probe",
        ckpt: a.ckpt.display().to_string(),
        checkpoint: kind,
        shards: a.shards.display().to_string(),
        splits: names,
        protected: a.protected.clone(),
        groups: groups.clone(),
        group_docs,
        skipped_missing: skipped,
        features: n_feat,
        pooling: "concat [last, max, mean] of the encoder output",
        train_docs: tr.len() as u64,
        held_out_docs: te.len() as u64,
        held_out_frac: a.held_out,
        seed: a.seed,
        l2: a.l2,
        iterations: a.iterations,
        balanced: a.balanced,
        train_accuracy,
        accuracy,
        balanced_accuracy,
        auc: auc.is_finite().then_some(auc),
        majority_group: groups[top].clone(),
        majority_accuracy,
        accuracy_gain: accuracy - majority_accuracy,
    };
    let line = serde_json::to_string(&report)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(mut f) = json_file.take() {
        writeln!(f, "{line}").with_context(|| format!("{}: write failed", f.target().display()))?;
        f.commit()?;
    }
    if json_stdout {
        writeln!(out, "{line}")?;
    } else {
        out.write_all(table(&report).as_bytes())?;
    }
    out.flush()?;
    Ok(shared::cli::EXIT_OK)
}

fn table(r: &ProbeReport) -> String {
    let mut s = String::new();
    let groups: Vec<String> = r
        .groups
        .iter()
        .zip(&r.group_docs)
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    s += &format!(
        "probe: does the encoder of {} ({}) encode {:?}?\n",
        r.ckpt, r.checkpoint, r.protected
    );
    s += &format!("  features        {} ({})\n", r.features, r.pooling);
    s += &format!(
        "  documents       {} from {} [{}] ({} without a value left out)\n",
        r.train_docs + r.held_out_docs,
        r.shards,
        r.splits.join(", "),
        r.skipped_missing
    );
    s += &format!("  groups          {}\n", groups.join(", "));
    s += &format!(
        "  split           {} train / {} held out (stratified, seed {})\n",
        r.train_docs, r.held_out_docs, r.seed
    );
    s +=
        &format!(
        "  probe           logistic regression, L2 {}, {} iterations{}; train accuracy {:.4}\n\n",
        r.l2,
        r.iterations,
        if r.balanced { ", balanced class weights" } else { "" },
        r.train_accuracy
    );
    s += "  held out             probe   baseline\n";
    s += &format!(
        "  accuracy            {:.4}     {:.4}  (always {:?})\n",
        r.accuracy, r.majority_accuracy, r.majority_group
    );
    s += &format!(
        "  balanced accuracy   {:.4}     {:.4}\n",
        r.balanced_accuracy,
        1.0 / r.groups.len() as f64
    );
    s += &format!(
        "  ROC AUC             {}     0.5000\n",
        r.auc.map_or("   n/a".to_string(), |a| format!("{a:.4}"))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_group_shares() {
        let g: Vec<u32> = (0..100).map(|i| if i % 4 == 0 { 1 } else { 0 }).collect();
        let (tr, te) = stratified_split(&g, 2, 0.2, 1);
        assert_eq!(tr.len() + te.len(), 100);
        assert_eq!(te.iter().filter(|&&i| g[i] == 1).count(), 5);
        assert_eq!(te.iter().filter(|&&i| g[i] == 0).count(), 15);
        let mut all = [tr.clone(), te.clone()].concat();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!((tr, te), stratified_split(&g, 2, 0.2, 1));
    }

    #[test]
    fn logistic_probe_separates_separable_data() {
        // two Gaussian blobs in 3-d, one informative axis
        tch::manual_seed(3);
        let x0 = Tensor::randn([50, 3], (Kind::Float, Device::Cpu));
        let x1 = Tensor::randn([50, 3], (Kind::Float, Device::Cpu))
            + Tensor::from_slice(&[4.0f32, 0.0, 0.0]);
        let x = Tensor::cat(&[x0, x1], 0);
        let y = Tensor::cat(
            &[
                Tensor::zeros([50], (Kind::Int64, Device::Cpu)),
                Tensor::ones([50], (Kind::Int64, Device::Cpu)),
            ],
            0,
        );
        let (w, b) = fit_logistic(&x, &y, 2, 1e-3, 200, None);
        let acc = (x.matmul(&w) + b)
            .argmax(-1, false)
            .eq_tensor(&y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(acc > 0.95, "{acc}");
    }

    #[test]
    fn balanced_weights_recover_a_rare_group() {
        // 190 vs 10 rows, overlapping blobs: unweighted, the rare group is mostly missed
        tch::manual_seed(5);
        let x0 = Tensor::randn([190, 2], (Kind::Float, Device::Cpu));
        let x1 =
            Tensor::randn([10, 2], (Kind::Float, Device::Cpu)) + Tensor::from_slice(&[1.5f32, 0.0]);
        let x = Tensor::cat(&[x0, x1], 0);
        let y = Tensor::cat(
            &[
                Tensor::zeros([190], (Kind::Int64, Device::Cpu)),
                Tensor::ones([10], (Kind::Int64, Device::Cpu)),
            ],
            0,
        );
        let recall = |cw: Option<&Tensor>| {
            let (w, b) = fit_logistic(&x, &y, 2, 1e-3, 300, cw);
            let p = (x.matmul(&w) + b).argmax(-1, false).narrow(0, 190, 10);
            p.sum(Kind::Int64).int64_value(&[]) as f64 / 10.0
        };
        let plain = recall(None);
        let balanced = recall(Some(&Tensor::from_slice(&[200.0f32 / 380.0, 200.0 / 20.0])));
        assert!(plain <= 0.3, "{plain}");
        assert!(balanced >= 0.6, "{balanced}");
    }
}
