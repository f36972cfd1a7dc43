//! Labels (task detection, class lists, targets) and fastai's batch order for classifiers:
//! `SortedDL` (sortish shuffle for training, longest first for validation).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::shards::{Column, Split};
use tch::Tensor;

use crate::args::TaskArg;
use crate::config::{LabelConfig, Task};

/// Numbers with more than this many distinct values are a regression target under
/// `--task auto`.
pub const AUTO_REGRESSION_MIN_DISTINCT: usize = 10;

fn fields_path(shards: &Path, split: &Split) -> String {
    shards
        .join(format!("{}.fields", split.name))
        .display()
        .to_string()
}

/// The label column of `split`, or an error listing the columns there are.
pub fn label_column<'a>(shards: &Path, split: &'a Split, col: &str) -> Result<&'a Column> {
    split.fields.column(col).ok_or_else(|| {
        let have: Vec<&str> = split.fields.columns.iter().map(|c| c.name.as_str()).collect();
        anyhow::anyhow!(
            "{}: no label column {col:?} (fields: {}); keep it when tokenizing (--keep {col}) or pass --label-col",
            shards.display(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        )
    })
}

fn parse_num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// Decides the task and the classes from the training split's label column.
pub fn resolve_labels(
    shards: &Path,
    train: &Split,
    col: &str,
    task: TaskArg,
    delim: Option<&str>,
) -> Result<LabelConfig> {
    let c = label_column(shards, train, col)?;
    let fp = fields_path(shards, train);
    if let Some(d) = (0..train.docs()).find(|&d| c.get(d).is_none()) {
        bail!(
            "{fp}: document {d} (input row {}) has no value in the label column {col:?}",
            train.fields.rows[d]
        );
    }
    let used: BTreeSet<u32> = c.codes.iter().copied().collect();
    let values: Vec<&str> = used
        .iter()
        .map(|&i| c.levels[i as usize].as_str())
        .collect();
    let task = match (task, delim) {
        (TaskArg::Classification, _) => Task::Classification,
        (TaskArg::MultiLabel, _) => Task::MultiLabel,
        (TaskArg::Regression, _) => Task::Regression,
        (TaskArg::Auto, Some(_)) => Task::MultiLabel,
        (TaskArg::Auto, None) => {
            let nums = values.iter().filter(|v| parse_num(v).is_some()).count();
            if nums > 0 && nums < values.len() {
                let n = values.iter().find(|v| parse_num(v).is_some()).expect("one");
                let t = values.iter().find(|v| parse_num(v).is_none()).expect("one");
                bail!(
                    "{fp}: the label column {col:?} mixes numbers ({n:?}) and text ({t:?}); pass --task classification to treat every value as a class name"
                );
            }
            if nums == values.len() && values.len() > AUTO_REGRESSION_MIN_DISTINCT {
                Task::Regression
            } else {
                Task::Classification
            }
        }
    };
    let label_delim = if task == Task::MultiLabel {
        Some(delim.unwrap_or(";").to_string())
    } else {
        None
    };
    let classes: Vec<String> = match task {
        Task::Regression => {
            for v in &values {
                match parse_num(v) {
                    None => bail!(
                        "{fp}: the label column {col:?} has the non-numeric value {v:?}, so it cannot be a regression target (mixed types?)"
                    ),
                    Some(x) if !x.is_finite() => {
                        let d = (0..train.docs()).find(|&d| c.get(d) == Some(v)).expect("used");
                        bail!("{fp}: document {d} (input row {}) has the regression target {v:?}; targets must be finite numbers", train.fields.rows[d]);
                    }
                    _ => {}
                }
            }
            vec![]
        }
        Task::Classification => values
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        Task::MultiLabel => {
            let d = label_delim.as_deref().expect("set");
            values
                .iter()
                .flat_map(|v| split_labels(v, d))
                .map(str::to_string)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
    };
    if task != Task::Regression && classes.len() < 2 && task == Task::Classification {
        bail!("{fp}: the label column {col:?} has only {} distinct value(s) in the training split; a classifier needs at least 2", classes.len());
    }
    if task == Task::MultiLabel && classes.is_empty() {
        bail!("{fp}: the label column {col:?} has no labels");
    }
    Ok(LabelConfig {
        label_col: col.to_string(),
        task,
        classes,
        label_delim,
    })
}

pub fn split_labels<'a>(v: &'a str, delim: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    v.split(delim).map(str::trim).filter(|s| !s.is_empty())
}

/// Targets of one split, checked against the training labels.
#[derive(Debug, Clone)]
pub enum Targets {
    Class(Vec<i64>),
    /// docs × classes multi-hot, row-major.
    Multi(Vec<f32>, usize),
    Reg(Vec<f32>),
}

impl Targets {
    /// The targets of documents `ix` as a tensor (int64 classes; float otherwise).
    pub fn batch(&self, ix: &[usize]) -> Tensor {
        match self {
            Targets::Class(v) => Tensor::from_slice(&ix.iter().map(|&i| v[i]).collect::<Vec<_>>()),
            Targets::Reg(v) => {
                Tensor::from_slice(&ix.iter().map(|&i| v[i]).collect::<Vec<_>>()).view([-1, 1])
            }
            Targets::Multi(v, k) => {
                let mut out = Vec::with_capacity(ix.len() * k);
                for &i in ix {
                    out.extend_from_slice(&v[i * k..(i + 1) * k]);
                }
                Tensor::from_slice(&out).view([ix.len() as i64, *k as i64])
            }
        }
    }
}

/// Parses one label value; `Ok(None)` never happens for present values.
pub fn target_of(
    labels: &LabelConfig,
    index: &HashMap<&str, usize>,
    v: &str,
) -> std::result::Result<Target, String> {
    match labels.task {
        Task::Classification => index
            .get(v)
            .map(|&i| Target::Class(i as i64))
            .ok_or_else(|| {
                format!(
                    "label {v:?} was not seen in training (classes: {})",
                    labels.classes.join(", ")
                )
            }),
        Task::MultiLabel => {
            let mut hot = vec![0f32; labels.classes.len()];
            for l in split_labels(v, labels.label_delim.as_deref().unwrap_or(";")) {
                match index.get(l) {
                    Some(&i) => hot[i] = 1.0,
                    None => {
                        return Err(format!(
                            "label {l:?} was not seen in training (labels: {})",
                            labels.classes.join(", ")
                        ))
                    }
                }
            }
            Ok(Target::Multi(hot))
        }
        Task::Regression => match parse_num(v) {
            Some(x) if x.is_finite() => Ok(Target::Reg(x as f32)),
            Some(_) => Err(format!("regression target {v:?} is not a finite number")),
            None => Err(format!(
                "regression target {v:?} is not a number (mixed types in the label column?)"
            )),
        },
    }
}

pub enum Target {
    Class(i64),
    Multi(Vec<f32>),
    Reg(f32),
}

pub fn class_index(labels: &LabelConfig) -> HashMap<&str, usize> {
    labels
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect()
}

/// Every document's target (`what`: "training" / "validation" for messages).
pub fn targets(shards: &Path, split: &Split, labels: &LabelConfig) -> Result<Targets> {
    let c = label_column(shards, split, &labels.label_col)?;
    let fp = fields_path(shards, split);
    let index = class_index(labels);
    let k = labels.classes.len();
    let mut t = match labels.task {
        Task::Classification => Targets::Class(Vec::with_capacity(split.docs())),
        Task::MultiLabel => Targets::Multi(Vec::with_capacity(split.docs() * k), k),
        Task::Regression => Targets::Reg(Vec::with_capacity(split.docs())),
    };
    for d in 0..split.docs() {
        let row = split.fields.rows[d];
        let Some(v) = c.get(d) else {
            bail!(
                "{fp}: document {d} (input row {row}) has no value in the label column {:?}",
                labels.label_col
            );
        };
        let x = target_of(labels, &index, v)
            .map_err(|e| anyhow::anyhow!("{fp}: document {d} (input row {row}): {e}"))?;
        match (&mut t, x) {
            (Targets::Class(v), Target::Class(x)) => v.push(x),
            (Targets::Multi(v, _), Target::Multi(x)) => v.extend(x),
            (Targets::Reg(v), Target::Reg(x)) => v.push(x),
            _ => unreachable!("task decides both"),
        }
    }
    Ok(t)
}

/// Document lengths as the model sees them (an empty document counts as one token).
pub fn lengths(split: &Split) -> Vec<usize> {
    (0..split.docs())
        .map(|d| split.doc(d).len().max(1))
        .collect()
}

/// Token ids of document `d` (an empty document becomes `[fill]`).
pub fn doc_ids(split: &Split, d: usize, fill: i64) -> Vec<i64> {
    let mut v = Vec::new();
    split.doc(d).extend_i64(&mut v);
    if v.is_empty() {
        v.push(fill);
    }
    v
}

/// Seed of the batch order of epoch `epoch` (global epoch count over all phases).
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    lm_train::data::shuffle_seed(seed, epoch)
}

/// fastai's `SortedDL.shuffle_fn` with `drop_last=True` (the training loader): a random
/// permutation with the longest document moved to the front, chunks of 50 batches sorted by
/// length (longest first) and cut into batches, the batches between the first and the last
/// shuffled; then the incomplete last batch dropped.
pub fn train_batches(lens: &[usize], bs: usize, seed: u64) -> Vec<Vec<usize>> {
    let n = lens.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    if n == 0 {
        return vec![];
    }
    // np.argmax: the first maximum
    let idx_max = (0..n).fold(0, |m, i| if lens[i] > lens[m] { i } else { m });
    let pos = idx.iter().position(|&i| i == idx_max).expect("present");
    idx.swap(0, pos);
    let mut sorted = Vec::with_capacity(n);
    for chunk in idx.chunks(bs * 50) {
        let mut c = chunk.to_vec();
        c.sort_by(|a, b| lens[*b].cmp(&lens[*a])); // stable, as Python's sorted
        sorted.extend(c);
    }
    let mut batches: Vec<Vec<usize>> = sorted.chunks(bs).map(<[usize]>::to_vec).collect();
    if batches.len() > 2 {
        let last = batches.len() - 1;
        batches[1..last].shuffle(&mut rng);
    }
    let _: u32 = rng.gen(); // keep the stream layout stable if this grows
    if batches.last().is_some_and(|b| b.len() < bs) {
        batches.pop();
    }
    batches
}

/// `SortedDL` without shuffle (validation, prediction): longest first, all documents.
pub fn sorted_batches(lens: &[usize], bs: usize) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lens.len()).collect();
    idx.sort_by(|a, b| lens[*b].cmp(&lens[*a]));
    idx.chunks(bs.max(1)).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_batches_are_sortish_and_drop_last() {
        let lens: Vec<usize> = (0..103).map(|i| (i * 37) % 101 + 1).collect();
        let b = train_batches(&lens, 10, 1);
        assert_eq!(b.len(), 10);
        assert!(b.iter().all(|x| x.len() == 10));
        let max = *lens.iter().max().unwrap();
        assert_eq!(lens[b[0][0]], max, "the longest document comes first");
        for x in &b {
            assert!(
                x.windows(2).all(|w| lens[w[0]] >= lens[w[1]]),
                "longest first within a batch"
            );
        }
        let mut all: Vec<usize> = b.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100);
        assert_eq!(b, train_batches(&lens, 10, 1));
        assert_ne!(b, train_batches(&lens, 10, 2));
    }

    #[test]
    fn sorted_batches_keep_everything() {
        let lens = vec![3, 9, 1, 9, 4];
        assert_eq!(
            sorted_batches(&lens, 2),
            vec![vec![1, 3], vec![4, 0], vec![2]]
        );
    }
}
