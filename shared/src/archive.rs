//! Shard sets packed into one zstd-compressed tar file, for caching and transfer.
//!
//! `pack` writes the set's files in a fixed order with zeroed metadata, so the same shard set
//! always packs to the same bytes. `unpack` accepts only plain files with simple names (no
//! paths, links or devices), writes them into a directory that is published atomically, and
//! then opens the result with full verification. Trainers can be given the archive directly:
//! [`unpack_cached`] unpacks it once into the per-user cache, keyed by the archive's BLAKE3.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::atomic::{AtomicDir, AtomicFile};
use crate::shards::{ShardSet, Verify};

/// Packs the shard set at `dir` into `out` (`.tar.zst`), atomically.
pub fn pack(dir: &Path, out: &Path, force: bool, level: i32) -> Result<u64> {
    // Verify first: never pack a damaged set.
    ShardSet::open_dir(dir, Verify::Full)?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let file = AtomicFile::create(out, force)?;
    let enc = zstd::Encoder::new(file, level).context("starting zstd")?;
    let mut tar = tar::Builder::new(enc);
    tar.mode(tar::HeaderMode::Deterministic);
    for n in &names {
        let p = dir.join(n);
        let mut f = File::open(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        tar.append_file(n, &mut f)
            .with_context(|| format!("{}: packing failed", p.display()))?;
    }
    let enc = tar.into_inner().context("finishing tar")?;
    let file = enc
        .finish()
        .with_context(|| format!("{}: write failed", out.display()))?;
    file.commit()?;
    Ok(std::fs::metadata(out)?.len())
}

fn simple_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Unpacks `archive` into a new directory `out` (atomically) and verifies it.
pub fn unpack(archive: &Path, out: &Path, force: bool) -> Result<ShardSet> {
    let f = File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
    let dec = zstd::Decoder::new(BufReader::new(f))
        .with_context(|| format!("{}: not a zstd archive", archive.display()))?;
    let dir = AtomicDir::create(out, force)?;
    let mut tar = tar::Archive::new(dec);
    let entries = tar
        .entries()
        .with_context(|| format!("{}: not a tar.zst shard archive", archive.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{}: corrupt archive", archive.display()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!(
                "{}: archive holds something other than plain files",
                archive.display()
            );
        }
        let name = entry
            .path()
            .with_context(|| format!("{}: bad entry name", archive.display()))?;
        let name = name.to_string_lossy().into_owned();
        if !simple_name(&name) {
            bail!(
                "{}: archive entry {name:?} is not a plain file name",
                archive.display()
            );
        }
        let dest = dir.path().join(&name);
        let mut w =
            File::create(&dest).with_context(|| format!("{}: cannot create", dest.display()))?;
        std::io::copy(&mut entry, &mut w)
            .with_context(|| format!("{}: corrupt archive (entry {name})", archive.display()))?;
    }
    ShardSet::open_dir(dir.path(), Verify::Full).with_context(|| {
        format!(
            "{}: the archive does not hold a valid shard set",
            archive.display()
        )
    })?;
    let target = dir.target().to_path_buf();
    dir.commit()?;
    Ok(ShardSet::open_dir(&target, Verify::Quick)?)
}

/// The per-user cache directory of this workspace (`$XDG_CACHE_HOME/ulmfit-rs` or
/// `~/.cache/ulmfit-rs`).
pub fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("ULMFIT_CACHE") {
        return PathBuf::from(x);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ulmfit-rs")
}

/// Unpacks `archive` once into the cache and returns the directory.
pub fn unpack_cached(archive: &Path) -> Result<PathBuf> {
    let mut h = blake3::Hasher::new();
    let mut f =
        File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read failed", archive.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let key = h.finalize().to_hex()[..32].to_string();
    let root = cache_dir().join("shards");
    std::fs::create_dir_all(&root)
        .with_context(|| format!("{}: cannot create cache", root.display()))?;
    let dir = root.join(key);
    if !dir.is_dir() {
        unpack(archive, &dir, false)?;
    }
    Ok(dir)
}
