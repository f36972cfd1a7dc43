//! `lm-train import-fastai` and `lm-train export-fastai`: fastai AWD-LSTM language models
//! to and from our checkpoint directories.
//!
//! fastai saves a language model (`SequentialRNN(AWD_LSTM, LinearDecoder)`) with `torch.save`:
//! a bare `state_dict` (`torch.save(model.state_dict())`, the WikiText-103 `lstm_fwd.pth`) or
//! `{'model': state_dict, 'opt': ...}` (`learn.save(..., with_opt=True)`), in torch's zip
//! container or the legacy one (torch < 1.6). Its vocab is a pickled list of strings
//! (`itos_*.pkl`). Both are read by [`shared::torch_file`] and [`shared::pickle`], which never
//! execute pickle code: a file that names any global besides tensors, storages and plain data
//! is refused, naming the global.
//!
//! Import: sizes come from the tensor shapes (`0.encoder.weight` is vocab × emb, layer `l`'s
//! `weight_hh_l0_raw` is 4·out × out), weights tied when `1.decoder.weight` equals the
//! embedding bit for bit. fastai v1 and v2 order the special tokens differently (v1: `xxmaj
//! xxup xxrep xxwrep`, v2: `xxrep xxwrep xxup xxmaj`), so rows are matched by token string:
//! the imported vocab starts with the nine special tokens in v2 order (what `numericalize`
//! builds), then every other token in the file's order; a special token the file lacks gets
//! the mean embedding row and the mean decoder bias, as fastai's `match_embeds` does.
//! fastai v1 files also hold `0.rnns.N.module.weight_hh_l0` (a copy of `weight_hh_l0_raw`);
//! it is dropped, as fastai's `clean_raw_keys` does.
//!
//! Export: the state dict in the order of fastai's `model.state_dict()` (fastai's
//! `load_pretrained` matches keys by position), the tied embedding stored once and referenced
//! as `0.encoder.weight`, `0.encoder_dp.emb.weight` and `1.decoder.weight`, as torch does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use shared::atomic::AtomicFile;
use shared::cli::CommonArgs;
use shared::pickle::{self, Dtype};
use shared::torch_file::{self, Container, RawTensor, StateDict, TensorEntry};
use shared::vocab::{Vocab, SPECIAL_TOKENS};
use tch::{Device, Kind, Tensor};

use crate::args::{ExportFastaiArgs, ImportFastaiArgs};
use crate::checkpoint::{self, Checkpoint};
use crate::config::{CheckpointConfig, ModelConfig};
use crate::model::LanguageModel;
use crate::TOOL;

const EMB: &str = "0.encoder.weight";
const EMB_DP: &str = "0.encoder_dp.emb.weight";
const DEC_W: &str = "1.decoder.weight";
const DEC_B: &str = "1.decoder.bias";

/// Names of layer `l`'s parameters in fastai's `state_dict` order.
fn layer_names(l: i64) -> [String; 4] {
    [
        format!("0.rnns.{l}.weight_hh_l0_raw"),
        format!("0.rnns.{l}.module.weight_ih_l0"),
        format!("0.rnns.{l}.module.bias_ih_l0"),
        format!("0.rnns.{l}.module.bias_hh_l0"),
    ]
}

/// What an import found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    pub container: Container,
    /// `Some("model")` for `learn.save(..., with_opt=True)` files.
    pub nested_in: Option<String>,
    /// Tokens whose row moved (special tokens reordered from fastai v1 to v2 order).
    pub moved: usize,
    /// Special tokens the file's vocab lacks (they start from the mean row).
    pub missing_specials: Vec<String>,
    /// Tensors ignored (fastai v1's `module.weight_hh_l0` copies).
    pub dropped: Vec<String>,
}

/// A fastai model converted to ours, not yet written.
pub struct Imported {
    pub model: LanguageModel,
    pub vocab: Vocab,
    pub config: CheckpointConfig,
    pub report: ImportReport,
}

fn to_f32(name: &str, t: &RawTensor) -> Result<Tensor> {
    let kind = match t.dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        d => bail!("tensor {name} has element type {d:?}, not floating point"),
    };
    let shape: Vec<i64> = t.shape.iter().map(|&n| n as i64).collect();
    Ok(Tensor::f_from_data_size(&t.data, &shape, kind)?.to_kind(Kind::Float))
}

/// Converts a fastai state dict and its `itos` into our model, config and vocab (on the CPU).
/// Errors name the tensor or token at fault; the caller adds the file.
pub fn import_state_dict(sd: &StateDict, itos: &[String], drop_mult: f64) -> Result<Imported> {
    let raw: BTreeMap<&str, &RawTensor> = sd.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let shape = |n: &str| raw.get(n).map(|t| t.shape.clone());
    if !raw.contains_key(EMB) {
        if raw.keys().any(|k| k.starts_with("0.module.")) {
            bail!("a fastai text classifier, not a language model (no {EMB})");
        }
        if raw.contains_key("encoder.weight") {
            bail!("an encoder saved by save_encoder (no decoder); import needs the whole language model (learn.save or torch.save(learn.model.state_dict()))");
        }
        bail!("not a fastai AWD-LSTM language model: no tensor {EMB}");
    }
    let es = shape(EMB).unwrap();
    let [vocab_rows, emb_sz] = es[..] else {
        bail!("tensor {EMB} has shape {es:?}, expected 2 dimensions");
    };
    if raw.keys().any(|k| k.ends_with("_reverse")) {
        bail!("a bidirectional AWD-LSTM is not supported");
    }
    let mut n_layers = 0i64;
    while raw.contains_key(format!("0.rnns.{n_layers}.module.weight_ih_l0").as_str()) {
        n_layers += 1;
    }
    if n_layers == 0 {
        bail!("no LSTM layers (no tensor 0.rnns.0.module.weight_ih_l0)");
    }
    // fastai v1 keeps `module.weight_hh_l0` next to `weight_hh_l0_raw`: drop it
    // (`clean_raw_keys`); a file with only the former uses it as the raw weight.
    let mut dropped = Vec::new();
    let hh = |l: i64| -> Option<String> {
        let raw_name = format!("0.rnns.{l}.weight_hh_l0_raw");
        let module_name = format!("0.rnns.{l}.module.weight_hh_l0");
        if raw.contains_key(raw_name.as_str()) {
            Some(raw_name)
        } else if raw.contains_key(module_name.as_str()) {
            Some(module_name)
        } else {
            None
        }
    };
    let out0 = {
        let name = hh(0).context("no tensor 0.rnns.0.weight_hh_l0_raw")?;
        let s = shape(&name).unwrap();
        if s.len() != 2 {
            bail!("tensor {name} has shape {s:?}, expected 2 dimensions");
        }
        s[1] as i64
    };
    let tie = match raw.get(DEC_W) {
        None => true,
        Some(d) => d.shape == es && d.data == raw[EMB].data && d.dtype == raw[EMB].dtype,
    };
    let out_bias = raw.contains_key(DEC_B);
    let mut cfg = ModelConfig::fastai_lm(vocab_rows as i64, drop_mult);
    cfg.emb_sz = emb_sz as i64;
    cfg.n_layers = n_layers;
    cfg.n_hid = if n_layers > 1 { out0 } else { emb_sz as i64 };
    cfg.tie_weights = tie;
    cfg.out_bias = out_bias;
    cfg.validate()?;
    let arch = format!(
        "an AWD-LSTM with vocab {vocab_rows}, emb {emb_sz}, hidden {}, {n_layers} layers",
        cfg.n_hid
    );

    // every tensor: known, with the shape the architecture needs
    let mut want: Vec<(String, Vec<usize>)> = vec![(EMB.into(), es.clone())];
    for l in 0..n_layers {
        let (n_in, n_out) = (cfg.layer_in(l) as usize, cfg.layer_out(l) as usize);
        let [_, w_ih, b_ih, b_hh] = layer_names(l);
        let hh_name = hh(l).with_context(|| format!("no tensor 0.rnns.{l}.weight_hh_l0_raw"))?;
        if hh_name.contains(".module.") {
            // only the module copy exists: it is the raw weight
        } else if let Some(m) =
            raw.get_key_value(format!("0.rnns.{l}.module.weight_hh_l0").as_str())
        {
            dropped.push(m.0.to_string());
        }
        want.push((hh_name, vec![4 * n_out, n_out]));
        want.push((w_ih, vec![4 * n_out, n_in]));
        want.push((b_ih, vec![4 * n_out]));
        want.push((b_hh, vec![4 * n_out]));
    }
    if let Some(s) = shape(DEC_W) {
        want.push((DEC_W.into(), s));
        if shape(DEC_W) != Some(vec![vocab_rows, emb_sz]) {
            bail!(
                "tensor {DEC_W} has shape {:?}, {arch} needs {:?}",
                shape(DEC_W).unwrap(),
                [vocab_rows, emb_sz]
            );
        }
    }
    if out_bias {
        want.push((DEC_B.into(), vec![vocab_rows]));
    }
    for (name, s) in &want {
        match shape(name) {
            None => bail!("missing tensor {name} ({arch})"),
            Some(have) if &have != s => {
                bail!("tensor {name} has shape {have:?}, {arch} needs {s:?}")
            }
            Some(_) => {}
        }
    }
    for k in raw.keys() {
        let known =
            want.iter().any(|(n, _)| n == k) || *k == EMB_DP || dropped.iter().any(|d| d == k);
        if !known {
            bail!("unexpected tensor {k} (not a fastai AWD-LSTM language model)");
        }
    }
    if let Some(dp) = shape(EMB_DP) {
        if dp != es {
            bail!("tensor {EMB_DP} has shape {dp:?}, expected {es:?} (the embedding's)");
        }
    }

    // vocab: the special tokens first, in fastai v2 order, then the rest in file order
    if itos.len() != vocab_rows {
        bail!(
            "the vocab has {} tokens but the weights have {vocab_rows} rows (is it the vocab of these weights?)",
            itos.len()
        );
    }
    let mut used = vec![false; itos.len()];
    let mut src: Vec<Option<usize>> = Vec::with_capacity(itos.len() + SPECIAL_TOKENS.len());
    let mut new_itos: Vec<String> = Vec::with_capacity(src.capacity());
    let mut missing = Vec::new();
    for sp in SPECIAL_TOKENS {
        match itos.iter().position(|t| t == sp) {
            Some(i) => {
                used[i] = true;
                src.push(Some(i));
            }
            None => {
                missing.push(sp.to_string());
                src.push(None);
            }
        }
        new_itos.push(sp.to_string());
    }
    for (i, t) in itos.iter().enumerate() {
        if !used[i] {
            src.push(Some(i));
            new_itos.push(t.clone());
        }
    }
    let moved = src
        .iter()
        .enumerate()
        .filter(|&(j, s)| *s != Some(j))
        .count();
    let vocab = Vocab::from_itos(new_itos);
    cfg.vocab_size = vocab.len() as i64;
    cfg.pad_token = 1; // xxpad, as fastai's awd_lstm_lm_config
    let remap = |t: Tensor| -> Tensor {
        if moved == 0 {
            return t;
        }
        let mean = t.mean_dim(0, true, Kind::Float);
        let last = t.size()[0];
        let ext = Tensor::cat(&[t, mean], 0);
        let ix: Vec<i64> = src.iter().map(|s| s.map_or(last, |i| i as i64)).collect();
        ext.index_select(0, &Tensor::from_slice(&ix)).contiguous()
    };

    let _g = tch::no_grad_guard();
    let model = LanguageModel::new(&cfg, Device::Cpu);
    let tensor = |name: &str| to_f32(name, raw[name]);
    let mut values: BTreeMap<String, Tensor> = BTreeMap::new();
    values.insert(EMB.into(), remap(tensor(EMB)?));
    for l in 0..n_layers {
        let [hh_name, w_ih, b_ih, b_hh] = layer_names(l);
        let from = hh(l).unwrap();
        values.insert(hh_name, tensor(&from)?);
        for n in [w_ih, b_ih, b_hh] {
            let t = tensor(&n)?;
            values.insert(n, t);
        }
    }
    if !tie {
        values.insert(DEC_W.into(), remap(tensor(DEC_W)?));
    }
    if out_bias {
        let b = tensor(DEC_B)?.unsqueeze(1);
        values.insert(DEC_B.into(), remap(b).squeeze_dim(1));
    }
    for (name, p) in model.named_params() {
        let v = values
            .get(&name)
            .with_context(|| format!("internal: no value for parameter {name}"))?;
        let mut p = p.shallow_clone();
        p.f_copy_(v).with_context(|| format!("loading {name}"))?;
    }
    let config = CheckpointConfig::new(cfg, vocab.hash().to_string(), None);
    Ok(Imported {
        model,
        vocab,
        config,
        report: ImportReport {
            container: sd.container,
            nested_in: sd.nested_in.clone(),
            moved,
            missing_specials: missing,
            dropped,
        },
    })
}

/// Reads a fastai weights file and vocab file and converts them.
pub fn import_files(weights: &Path, vocab: &Path, drop_mult: f64) -> Result<Imported> {
    let wb =
        std::fs::read(weights).with_context(|| format!("{}: cannot read", weights.display()))?;
    let sd = torch_file::read_state_dict(&wb).with_context(|| format!("{}", weights.display()))?;
    drop(wb);
    let vb = std::fs::read(vocab).with_context(|| format!("{}: cannot read", vocab.display()))?;
    let itos = pickle::load_string_list(&vb)
        .with_context(|| format!("{}: not a fastai vocab (itos) pickle", vocab.display()))?;
    if itos.is_empty() {
        bail!("{}: the vocab is empty", vocab.display());
    }
    if let Some((_, t)) = sd.tensors.iter().find(|(n, _)| n == EMB) {
        if t.shape.first() != Some(&itos.len()) {
            bail!(
                "{} has {} tokens but the embedding {EMB} of {} has {} rows: not the vocab of these weights",
                vocab.display(),
                itos.len(),
                weights.display(),
                t.shape.first().copied().unwrap_or(0)
            );
        }
    }
    import_state_dict(&sd, &itos, drop_mult).with_context(|| format!("{}", weights.display()))
}

/// The bytes of a checkpoint's weights as a fastai `state_dict` in torch's zip format.
pub fn export_checkpoint(ck: &Checkpoint, out: &mut impl Write, archive: &str) -> Result<()> {
    let m = &ck.config.model;
    // every tensor present with the shape config.json implies, nothing else
    ck.load_into(&LanguageModel::new(m, Device::Cpu))?;
    let mp = ck.dir.join(checkpoint::MODEL_FILE);
    let get = |name: &str| -> Result<Vec<u8>> {
        let t = ck
            .tensors
            .get(name)
            .with_context(|| format!("{}: missing tensor {name}", mp.display()))?;
        let t = t.to_kind(Kind::Float).contiguous().flatten(0, -1);
        let v = Vec::<f32>::try_from(&t)
            .with_context(|| format!("{}: reading {name}", mp.display()))?;
        Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    };
    let dims = |name: &str| -> Vec<usize> {
        ck.tensors[name]
            .size()
            .iter()
            .map(|&n| n as usize)
            .collect()
    };
    let mut storages: Vec<Vec<u8>> = Vec::new();
    let mut entries: Vec<(String, usize, Vec<usize>)> = Vec::new();
    let mut add =
        |name: &str, storage: Option<usize>, data: Option<Vec<u8>>, shape: Vec<usize>| -> usize {
            let s = storage.unwrap_or_else(|| {
                storages.push(data.expect("data for a new storage"));
                storages.len() - 1
            });
            entries.push((name.to_string(), s, shape));
            s
        };
    let emb = add(EMB, None, Some(get(EMB)?), dims(EMB));
    add(EMB_DP, Some(emb), None, dims(EMB));
    for l in 0..m.n_layers {
        for n in layer_names(l) {
            let d = get(&n)?;
            add(&n, None, Some(d), dims(&n));
        }
    }
    if m.tie_weights {
        add(DEC_W, Some(emb), None, dims(EMB));
    } else {
        add(DEC_W, None, Some(get(DEC_W)?), dims(DEC_W));
    }
    if m.out_bias {
        add(DEC_B, None, Some(get(DEC_B)?), dims(DEC_B));
    }
    let st: Vec<(Dtype, &[u8])> = storages
        .iter()
        .map(|d| (Dtype::F32, d.as_slice()))
        .collect();
    let te: Vec<TensorEntry> = entries
        .iter()
        .map(|(n, s, shape)| TensorEntry {
            name: n,
            storage: *s,
            shape: shape.clone(),
        })
        .collect();
    torch_file::write_state_dict(out, archive, &te, &st)?;
    Ok(())
}

/// The folder name inside the zip: the file stem when it is plain ASCII (as torch names it).
fn archive_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        stem.to_string()
    } else {
        "archive".into()
    }
}

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{TOOL}: {msg}");
    }
}

/// `lm-train import-fastai`.
pub fn run_import(a: ImportFastaiArgs, common: &CommonArgs) -> Result<i32> {
    if a.output.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.output.display()
        );
    }
    let imp = import_files(&a.weights, &a.vocab, a.drop_mult)?;
    checkpoint::save(&a.output, &imp.model, &imp.vocab, &imp.config, None)?;
    let c = &imp.config.model;
    let r = &imp.report;
    note(
        common.quiet,
        format!(
            "imported {} ({} format{}): vocab {}, emb {}, hidden {}, {} layers, {}{}; {} rows moved to fastai v2 special-token order{}{} -> {}",
            a.weights.display(),
            match r.container {
                Container::Zip => "zip",
                Container::Legacy => "legacy",
            },
            if r.nested_in.is_some() { ", learn.save with optimizer state" } else { "" },
            c.vocab_size,
            c.emb_sz,
            c.n_hid,
            c.n_layers,
            if c.tie_weights { "tied decoder" } else { "untied decoder" },
            if c.out_bias { " with bias" } else { " without bias" },
            r.moved,
            if r.missing_specials.is_empty() {
                String::new()
            } else {
                format!("; {} missing from the vocab, added with the mean row", r.missing_specials.join(" "))
            },
            if r.dropped.is_empty() {
                String::new()
            } else {
                format!("; {} fastai v1 copies of weight_hh_l0 dropped", r.dropped.len())
            },
            a.output.display()
        ),
    );
    Ok(0)
}

/// `lm-train export-fastai`.
pub fn run_export(a: ExportFastaiArgs, common: &CommonArgs) -> Result<i32> {
    let ck = Checkpoint::read(&a.ckpt)?;
    // open every output first, so a bad path fails before the work and nothing is half-written
    let mut wf = AtomicFile::create(&a.output, a.force)?;
    let mut vf = match &a.vocab_out {
        Some(p) => Some(AtomicFile::create(p, a.force)?),
        None => None,
    };
    export_checkpoint(&ck, &mut wf, &archive_name(&a.output))
        .with_context(|| format!("{}: write failed", a.output.display()))?;
    if let (Some(f), Some(p)) = (vf.as_mut(), &a.vocab_out) {
        f.write_all(&pickle::dump_string_list(ck.vocab.itos()))
            .with_context(|| format!("{}: write failed", p.display()))?;
    }
    wf.commit()?;
    if let Some(f) = vf {
        f.commit()?;
    }
    let c = &ck.config.model;
    note(
        common.quiet,
        format!(
            "exported {} -> {}{}; in fastai: get_language_model(AWD_LSTM, {}, config=dict(awd_lstm_lm_config, emb_sz={}, n_hid={}, n_layers={}, tie_weights={}, out_bias={})).load_state_dict(torch.load(...))",
            a.ckpt.display(),
            a.output.display(),
            a.vocab_out.as_ref().map(|p| format!(" and {}", p.display())).unwrap_or_default(),
            c.vocab_size,
            c.emb_sz,
            c.n_hid,
            c.n_layers,
            if c.tie_weights { "True" } else { "False" },
            if c.out_bias { "True" } else { "False" },
        ),
    );
    Ok(0)
}
