//! The shard-set reader on damaged sets: a valid set (written once with ShardSetWriter) has one
//! of its files patched, truncated, extended or replaced by the fuzz input, optionally with the
//! header checksum and the manifest's size and BLAKE3 fixed up so the damage reaches the
//! deeper checks (offsets, fields, id ranges). Opening must return an error or a set whose
//! every document and field can be read; never a panic, an out-of-bounds read or a huge
//! allocation.
//!
//! Input: byte 0 picks the file, byte 1 the flags, the rest is the edit.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::shards::{ShardSet, ShardSetWriter, Verify, HEADER_LEN};
use shared::vocab::Vocab;

const FILES: [&str; 8] = [
    "manifest.json",
    "vocab.json",
    "train.tokens",
    "train.offsets",
    "train.fields",
    "valid.tokens",
    "valid.offsets",
    "valid.fields",
];

/// The files of a small valid set, by name.
fn base() -> &'static Vec<(String, Vec<u8>)> {
    static BASE: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    BASE.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s");
        let counts: Vec<(String, u64)> = (0..20).map(|i| (format!("w{i}"), 100 - i)).collect();
        let vocab = Vocab::build(&counts, usize::MAX, 1);
        let mut w =
            ShardSetWriter::create(&out, false, vocab, vec!["label".into(), "score".into()])
                .unwrap();
        w.push_doc("train", &[2, 9, 10, 11], 0, &[Some("pos"), Some("1.5")])
            .unwrap();
        w.push_doc("valid", &[2, 12], 1, &[Some("neg"), None])
            .unwrap();
        w.push_doc("train", &[2, 13, 14], 2, &[None, Some("x")])
            .unwrap();
        w.push_doc("train", &[], 3, &[Some("pos"), Some("2")])
            .unwrap();
        w.finish(serde_json::json!({"k": 1}), "fp".into()).unwrap();
        FILES
            .iter()
            .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
            .collect()
    })
}

fn edit(file: &mut Vec<u8>, replace: bool, ops: &[u8]) {
    if replace {
        *file = ops.to_vec();
        return;
    }
    for op in ops.chunks_exact(3) {
        let pos = u16::from_le_bytes([op[0], op[1]]) as usize;
        let val = op[2];
        if pos < file.len() {
            file[pos] = val;
        } else if val & 1 == 1 {
            file.truncate(pos % (file.len() + 1));
        } else {
            file.extend(std::iter::repeat(val).take((val as usize) % 17));
        }
    }
}

/// Makes a binary file's header self-consistent again (checksum; optionally count and
/// payload length from the actual size).
fn fix_header(file: &mut [u8], lengths: bool) {
    if file.len() < HEADER_LEN {
        return;
    }
    if lengths {
        let elem = u32::from_le_bytes(file[16..20].try_into().unwrap()).max(1) as u64;
        let payload = (file.len() - HEADER_LEN) as u64;
        file[24..32].copy_from_slice(&(payload / elem).to_le_bytes());
        file[48..56].copy_from_slice(&((payload / elem) * elem).to_le_bytes());
    }
    let check = blake3::hash(&file[..56]);
    file[56..64].copy_from_slice(&check.as_bytes()[..8]);
}

/// Points the manifest's entry for `name` at the file's new size and checksum.
fn fix_manifest(manifest: &mut Vec<u8>, name: &str, file: &[u8]) {
    let Ok(mut m) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return;
    };
    let Some(splits) = m.get_mut("splits").and_then(|s| s.as_object_mut()) else {
        return;
    };
    for split in splits.values_mut() {
        for key in ["tokens_file", "offsets_file", "fields_file"] {
            if let Some(f) = split.get_mut(key).filter(|f| f["name"] == name) {
                f["bytes"] = file.len().into();
                let payload = file.get(HEADER_LEN..).unwrap_or(&[]);
                f["blake3"] = blake3::hash(payload).to_hex().to_string().into();
            }
        }
    }
    *manifest = serde_json::to_vec_pretty(&m).unwrap();
}

/// Reads everything an opened set offers.
fn read_all(set: &ShardSet) {
    for name in set.split_names().map(String::from).collect::<Vec<_>>() {
        let Ok(sp) = set.split(&name) else { continue };
        let mut n = 0;
        for d in 0..sp.docs() {
            let doc = sp.doc(d);
            n += doc.len();
            let _ = doc.iter().max();
            let _ = sp.fields.rows.get(d);
            for c in &sp.fields.columns {
                let _ = c.get(d);
            }
        }
        assert_eq!(n, sp.n_tokens());
        for c in &sp.fields.columns {
            let _ = c.get(sp.docs());
            let _ = c.as_f64();
        }
        let mut v = Vec::new();
        sp.tokens().extend_i64(&mut v);
        if set.manifest.vocab_size > 0 {
            for id in sp.tokens().iter() {
                let _ = set.vocab.token(id);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, flags, ops @ ..] = data else {
        return;
    };
    let mut files = base().clone();
    let k = *which as usize % FILES.len();
    edit(&mut files[k].1, flags & 1 != 0, ops);
    if k >= 2 && flags & 2 != 0 {
        fix_header(&mut files[k].1, flags & 16 != 0);
    }
    if k >= 2 && flags & 4 != 0 {
        let file = files[k].1.clone();
        fix_manifest(&mut files[0].1, FILES[k], &file);
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let verify = if flags & 8 != 0 {
        Verify::Quick
    } else {
        Verify::Full
    };
    if let Ok(set) = ShardSet::open_dir(Path::new(dir), verify) {
        read_all(&set);
    }
});
