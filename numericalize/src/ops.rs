//! Operations on finished shard sets: `cat`, `pack`, `unpack`, `verify`.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use shared::cli::CommonArgs;
use shared::shards::{ShardSet, ShardSetWriter, Verify};

use crate::args::{CatArgs, PackArgs, UnpackArgs, VerifyArgs};

/// Joins shard sets made with the same vocab (the last step of map-reduce preprocessing).
/// Splits are concatenated in argument order; rows are renumbered to count across inputs.
pub fn run_cat(a: &CatArgs, common: &CommonArgs) -> Result<()> {
    if a.output.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.output.display()
        );
    }
    let sets: Vec<ShardSet> = a.inputs.iter().map(ShardSet::open).collect::<Result<_>>()?;
    let first = &sets[0];
    for s in &sets[1..] {
        s.require_vocab(
            &first.manifest.vocab_hash,
            &format!(
                "cat: {} has another vocab than {}",
                s.dir.display(),
                first.dir.display()
            ),
        )?;
        if s.manifest.fields != first.manifest.fields {
            bail!(
                "{}: fields [{}] differ from {}'s [{}]",
                s.dir.display(),
                s.manifest.fields.join(", "),
                first.dir.display(),
                first.manifest.fields.join(", ")
            );
        }
    }
    let splits: BTreeSet<String> = sets
        .iter()
        .flat_map(|s| s.split_names().map(String::from).collect::<Vec<_>>())
        .collect();
    let mut w = ShardSetWriter::create(
        &a.output,
        a.force,
        first.vocab.clone(),
        first.manifest.fields.clone(),
    )?;
    let mut ids = Vec::new();
    let mut row_base = 0u64;
    let mut fingerprint = blake3::Hasher::new();
    for s in &sets {
        fingerprint.update(s.manifest.input_fingerprint.as_bytes());
        for name in &splits {
            if !s.has_split(name) {
                w.ensure_split(name)?;
                continue;
            }
            let sp = s.split(name)?;
            for d in 0..sp.docs() {
                ids.clear();
                ids.extend(sp.doc(d).iter());
                let vals: Vec<Option<&str>> = sp.fields.columns.iter().map(|c| c.get(d)).collect();
                w.push_doc(name, &ids, row_base + sp.fields.rows[d], &vals)?;
            }
        }
        row_base += s.manifest.docs;
    }
    let settings = serde_json::json!({"cat": a.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                                      "settings": first.manifest.settings});
    let m = w.finish(settings, fingerprint.finalize().to_hex().to_string())?;
    if !common.quiet {
        eprintln!(
            "numericalize: joined {} shard sets: {} docs, {} tokens → {}",
            sets.len(),
            m.docs,
            m.tokens,
            a.output.display()
        );
    }
    Ok(())
}

pub fn run_pack(a: &PackArgs, common: &CommonArgs) -> Result<()> {
    let bytes = shared::archive::pack(&a.input, &a.output, a.force, a.level)?;
    if !common.quiet {
        eprintln!(
            "numericalize: packed {} → {} ({bytes} bytes)",
            a.input.display(),
            a.output.display()
        );
    }
    Ok(())
}

pub fn run_unpack(a: &UnpackArgs, common: &CommonArgs) -> Result<()> {
    let set = shared::archive::unpack(&a.input, &a.output, a.force)?;
    if !common.quiet {
        eprintln!(
            "numericalize: unpacked {} → {} ({} docs, {} tokens, verified)",
            a.input.display(),
            a.output.display(),
            set.manifest.docs,
            set.manifest.tokens
        );
    }
    Ok(())
}

/// Verifies everything and prints a one-line JSON summary of the manifest on stdout.
pub fn run_verify(a: &VerifyArgs, _common: &CommonArgs) -> Result<()> {
    let set = ShardSet::open_with(&a.input, Verify::Full)?;
    let m = &set.manifest;
    let splits: serde_json::Map<String, serde_json::Value> = m
        .splits
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::json!({"docs": v.docs, "tokens": v.tokens}),
            )
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"ok": true, "path": a.input.display().to_string(), "docs": m.docs, "tokens": m.tokens,
                           "vocab_size": m.vocab_size, "vocab_hash": m.vocab_hash, "dtype": m.dtype,
                           "fields": m.fields, "splits": splits})
    );
    Ok(())
}
