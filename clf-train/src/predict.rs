//! `clf-train predict`: one JSON line per document, in input-row order, with the shard set's
//! passthrough fields, the prediction, the class probabilities and a score for `bias-audit`.

use std::io::{self, Write};

use anyhow::{bail, Result};
use lm_train::runtime;
use lm_train::train::resolve_precision;
use serde_json::Value;
use shared::atomic::AtomicFile;
use shared::cli::{is_stdio, CommonArgs};
use shared::shards::ShardSet;
use tch::{Device, Kind};

use crate::args::PredictArgs;
use crate::checkpoint::ClfCheckpoint;
use crate::config::Task;
use crate::data;
use crate::model::ClfModel;

struct Pred {
    row: u64,
    split: usize,
    doc: usize,
    out: Vec<f32>,
}

pub fn run(a: PredictArgs, common: &CommonArgs) -> Result<i32> {
    let (_, device) = runtime::start(common.threads, &a.device)?;
    let ck = ClfCheckpoint::read(&a.ckpt)?;
    let cfg = &ck.config;
    let set = ShardSet::open(&a.shards)?;
    set.require_vocab(
        &cfg.vocab_hash,
        &format!(
            "the vocab of the classifier checkpoint {}",
            a.ckpt.display()
        ),
    )?;
    let names: Vec<String> = match &a.split {
        Some(s) => {
            set.split(s)?;
            vec![s.clone()]
        }
        None => set.split_names().map(str::to_string).collect(),
    };
    let fields = &set.manifest.fields;
    let mut own = vec!["split", "row", a.pred_col.as_str()];
    if cfg.labels.task != Task::Regression {
        own.push(a.probs_col.as_str());
    }
    if cfg.labels.task != Task::MultiLabel {
        own.push(a.score_col.as_str());
    }
    for (i, o) in own.iter().enumerate() {
        if own[..i].contains(o) {
            bail!("output field {o:?} is named twice (check --pred-col, --probs-col, --score-col)");
        }
        if fields.iter().any(|f| f == o) {
            bail!("{}: the shard set has a field {o:?}, which the output needs too; rename the output with --pred-col / --probs-col / --score-col", a.shards.display());
        }
    }
    if a.bs == 0 {
        bail!("--bs must be at least 1");
    }
    // Labels present in the shards must be ones the model knows.
    let splits: Vec<_> = names
        .iter()
        .map(|n| set.split(n))
        .collect::<Result<_, _>>()?;
    let index = data::class_index(&cfg.labels);
    for sp in &splits {
        if let Some(c) = sp.fields.column(&cfg.labels.label_col) {
            for d in 0..sp.docs() {
                if let Some(v) = c.get(d) {
                    if let Err(e) = data::target_of(&cfg.labels, &index, v) {
                        bail!(
                            "{}: document {d} (input row {}): {e}",
                            a.shards.join(format!("{}.fields", sp.name)).display(),
                            sp.fields.rows[d]
                        );
                    }
                }
            }
        }
    }
    // Open the output before the work, so a bad path fails first.
    let mut file = match &a.output {
        Some(p) if !is_stdio(p) => Some(AtomicFile::create(p, a.force)?),
        _ => None,
    };
    let mut stdout = io::BufWriter::new(io::stdout().lock());

    let precision = resolve_precision(a.precision, device);
    let model = ClfModel::new(cfg, device);
    ck.load_into(&model)?;
    let fill = cfg.encoder.pad_token;
    let _g = tch::no_grad_guard();
    let mut preds = Vec::new();
    for (si, sp) in splits.iter().enumerate() {
        let lens = data::lengths(sp);
        for b in data::sorted_batches(&lens, a.bs) {
            let docs: Vec<Vec<i64>> = b.iter().map(|&d| data::doc_ids(sp, d, fill)).collect();
            let o = model.forward(&docs, false, precision).out;
            let o = match cfg.labels.task {
                Task::Classification => o.softmax(-1, Kind::Float),
                Task::MultiLabel => o.sigmoid(),
                Task::Regression => o,
            }
            .to_device(Device::Cpu)
            .contiguous();
            let k = o.size()[1] as usize;
            let flat = Vec::<f32>::try_from(o.view([-1]).to_kind(Kind::Float))?;
            for (i, &d) in b.iter().enumerate() {
                preds.push(Pred {
                    row: sp.fields.rows[d],
                    split: si,
                    doc: d,
                    out: flat[i * k..(i + 1) * k].to_vec(),
                });
            }
        }
    }
    preds.sort_by_key(|p| (p.row, p.split, p.doc));
    let classes = &cfg.labels.classes;
    let delim = cfg.labels.label_delim.as_deref().unwrap_or(";");
    let mut line = Vec::new();
    for p in &preds {
        let sp = &splits[p.split];
        let mut obj: Vec<(&str, Value)> = Vec::with_capacity(fields.len() + 5);
        for (f, c) in fields.iter().zip(&sp.fields.columns) {
            obj.push((
                f.as_str(),
                c.get(p.doc)
                    .map_or(Value::Null, |v| Value::String(v.into())),
            ));
        }
        obj.push(("split", Value::String(sp.name.clone())));
        obj.push(("row", Value::from(p.row)));
        match cfg.labels.task {
            Task::Classification => {
                let best = (0..p.out.len()).fold(0, |m, i| if p.out[i] > p.out[m] { i } else { m });
                obj.push((&a.pred_col, Value::String(classes[best].clone())));
                obj.push((&a.probs_col, probs(classes, &p.out)));
                let score = if p.out.len() == 2 {
                    p.out[1]
                } else {
                    p.out[best]
                };
                obj.push((&a.score_col, num(score)));
            }
            Task::MultiLabel => {
                let on: Vec<&str> = (0..p.out.len())
                    .filter(|&i| p.out[i] as f64 >= a.thresh)
                    .map(|i| classes[i].as_str())
                    .collect();
                obj.push((&a.pred_col, Value::String(on.join(delim))));
                obj.push((&a.probs_col, probs(classes, &p.out)));
            }
            Task::Regression => {
                obj.push((&a.pred_col, num(p.out[0])));
                obj.push((&a.score_col, num(p.out[0])));
            }
        }
        line.clear();
        line.push(b'{');
        for (i, (k, v)) in obj.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            serde_json::to_writer(&mut line, k)?;
            line.push(b':');
            serde_json::to_writer(&mut line, v)?;
        }
        line.extend_from_slice(b"}\n");
        match file.as_mut() {
            Some(f) => f.write_all(&line)?,
            None => stdout.write_all(&line)?,
        }
    }
    match file {
        Some(f) => f.commit()?,
        None => stdout.flush()?,
    }
    Ok(0)
}

fn num(x: f32) -> Value {
    // shortest f32 text, not the f64 expansion of an f32
    serde_json::from_str(&serde_json::to_string(&x).expect("finite")).unwrap_or(Value::Null)
}

fn probs(classes: &[String], p: &[f32]) -> Value {
    Value::Object(
        classes
            .iter()
            .cloned()
            .zip(p.iter().map(|&x| num(x)))
            .collect(),
    )
}
