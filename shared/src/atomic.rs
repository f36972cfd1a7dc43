//! Outputs that appear whole or not at all.
//!
//! A file or directory is written under a hidden temporary name in its destination directory
//! (`.NAME.tmp.PID.N`), synced, and renamed into place, as cargo-util publishes directories.
//! A process killed at any moment leaves the previous output (or none) under the real name;
//! at most a hidden temporary is left behind, and the next run that writes the same output
//! removes temporaries whose process is gone.
//!
//! Replacing an existing directory (`--force`, and every checkpoint a trainer saves) swaps the
//! new one in with `renameat2(RENAME_EXCHANGE)` on Linux, so some complete output exists at
//! every instant. Elsewhere (or on a file system without it) the old one is moved aside first,
//! so for an instant neither exists; a reader then sees "no output", never half of one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{}: not a valid output name", path.display()))
}

fn temp_sibling(path: &Path, kind: &str) -> Result<PathBuf> {
    let name = file_name(path)?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent_of(path).join(format!(".{name}.{kind}.{}.{n}", std::process::id())))
}

fn pid_alive(pid: u32) -> bool {
    // kill(pid, 0) checks existence without sending anything.
    #[allow(unsafe_code)]
    // SAFETY: kill with signal 0 has no effect on the target; it only reports whether it exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes `.NAME.tmp.PID.N` / `.NAME.old.PID.N` leftovers of killed processes.
fn clean_stale(path: &Path) {
    let Ok(name) = file_name(path) else { return };
    let Ok(entries) = fs::read_dir(parent_of(path)) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        for kind in ["tmp", "old"] {
            let prefix = format!(".{name}.{kind}.");
            if let Some(rest) = fname.strip_prefix(&prefix) {
                if let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) {
                    if !pid_alive(pid) {
                        let p = e.path();
                        let _ = if p.is_dir() {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                    }
                }
            }
        }
    }
}

fn check_target(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{}: already exists (use --force to replace it)",
            path.display()
        );
    }
    let parent = parent_of(path);
    if !parent.is_dir() {
        bail!(
            "{}: the directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Persist the rename itself; not all filesystems allow opening a directory, so best effort.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); fails where the kernel
/// or the file system cannot, and the caller falls back to two renames.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    #[allow(unsafe_code)]
    // SAFETY: both arguments are valid NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// A directory that becomes visible under its real name only on [`AtomicDir::commit`].
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    tmp: PathBuf,
    force: bool,
    done: bool,
}

impl AtomicDir {
    /// Starts a new output directory. Fails if `target` exists and `force` is false.
    pub fn create(target: impl AsRef<Path>, force: bool) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        check_target(&target, force)?;
        if target.exists() && !target.is_dir() {
            bail!(
                "{}: exists and is not a directory; refusing to replace it",
                target.display()
            );
        }
        clean_stale(&target);
        let tmp = temp_sibling(&target, "tmp")?;
        fs::create_dir(&tmp).with_context(|| {
            format!(
                "{}: cannot create a temporary directory in {}",
                target.display(),
                parent_of(&target).display()
            )
        })?;
        Ok(AtomicDir {
            target,
            tmp,
            force,
            done: false,
        })
    }

    /// Where to write the contents before commit.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs every file and renames the directory into place.
    pub fn commit(mut self) -> Result<()> {
        for e in fs::read_dir(&self.tmp).with_context(|| format!("{}", self.tmp.display()))? {
            let p = e?.path();
            if p.is_file() {
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("{}: sync failed", p.display()))?;
            }
        }
        sync_dir(&self.tmp);
        let mut old = None;
        if self.target.is_dir() && self.force && exchange(&self.tmp, &self.target).is_ok() {
            // One atomic step: the old output now sits under the temporary name, so no moment
            // exists without an output (a kill here leaves the new one, and the old one as a
            // stale temporary for the next run to remove).
            self.done = true;
            sync_dir(&parent_of(&self.target));
            let _ = fs::remove_dir_all(&self.tmp);
            return Ok(());
        }
        if self.target.exists() {
            if !self.force {
                bail!(
                    "{}: appeared while we were writing; not replaced",
                    self.target.display()
                );
            }
            let aside = temp_sibling(&self.target, "old")?;
            fs::rename(&self.target, &aside).with_context(|| {
                format!(
                    "{}: cannot move the old output aside",
                    self.target.display()
                )
            })?;
            old = Some(aside);
        }
        fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("{}: cannot publish", self.target.display()))?;
        self.done = true;
        sync_dir(&parent_of(&self.target));
        if let Some(old) = old {
            let _ = if old.is_dir() {
                fs::remove_dir_all(&old)
            } else {
                fs::remove_file(&old)
            };
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A file that becomes visible under its real name only on [`AtomicFile::commit`].
///
/// A target that exists and is not a regular file (`/dev/null`, a FIFO, `/dev/stdout`) is
/// written directly: renaming a temporary over a device would replace the device.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
    done: bool,
    direct: bool,
}

fn is_special(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| !m.is_file() && !m.is_dir())
        .unwrap_or(false)
}

impl AtomicFile {
    pub fn create(target: impl AsRef<Path>, force: bool) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if is_special(&target) {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .with_context(|| format!("{}: cannot open for writing", target.display()))?;
            return Ok(AtomicFile {
                tmp: target.clone(),
                target,
                writer: Some(BufWriter::with_capacity(1 << 20, f)),
                done: false,
                direct: true,
            });
        }
        check_target(&target, force)?;
        if target.is_dir() {
            bail!("{}: is a directory", target.display());
        }
        clean_stale(&target);
        let tmp = temp_sibling(&target, "tmp")?;
        let f = File::create(&tmp).with_context(|| {
            format!(
                "{}: cannot create a temporary file in {}",
                target.display(),
                parent_of(&target).display()
            )
        })?;
        Ok(AtomicFile {
            target,
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, f)),
            done: false,
            direct: false,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.writer.take().expect("writer present until commit");
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("{}: write failed", self.target.display()))?;
        if self.direct {
            self.done = true;
            return Ok(());
        }
        f.sync_all()
            .with_context(|| format!("{}: sync failed", self.target.display()))?;
        drop(f);
        fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("{}: cannot publish", self.target.display()))?;
        self.done = true;
        sync_dir(&parent_of(&self.target));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done && !self.direct {
            self.writer.take();
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Commits several outputs of one run together: every file is flushed and synced first, and
/// only when all of them are written are they renamed into place. A write error (a full disk)
/// then leaves none of the new outputs, rather than some.
pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<()> {
    for f in &mut files {
        let target = f.target.clone();
        let w = f.writer.as_mut().expect("writer present until commit");
        w.flush()
            .with_context(|| format!("{}: write failed", target.display()))?;
        if !f.direct {
            w.get_ref()
                .sync_all()
                .with_context(|| format!("{}: sync failed", target.display()))?;
        }
    }
    for f in files {
        f.commit()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: impl AsRef<Path>, bytes: &[u8], force: bool) -> Result<()> {
    let mut f = AtomicFile::create(path, force)?;
    f.write_all(bytes)
        .with_context(|| format!("{}: write failed", f.target().display()))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_appears_only_on_commit() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out");
        let a = AtomicDir::create(&target, false).unwrap();
        fs::write(a.path().join("x"), b"1").unwrap();
        assert!(!target.exists());
        a.commit().unwrap();
        assert_eq!(fs::read(target.join("x")).unwrap(), b"1");
        // no leftovers
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_dir_leaves_nothing_and_old_output_survives() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), b"o").unwrap();
        assert!(AtomicDir::create(&target, false).is_err());
        {
            let a = AtomicDir::create(&target, true).unwrap();
            fs::write(a.path().join("new"), b"n").unwrap();
        } // dropped without commit
        assert!(target.join("old").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        let a = AtomicDir::create(&target, true).unwrap();
        fs::write(a.path().join("new"), b"n").unwrap();
        a.commit().unwrap();
        assert!(!target.join("old").exists());
        assert!(target.join("new").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn exchange_swaps_two_directories_where_supported() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("x"), b"a").unwrap();
        match exchange(&a, &b) {
            Ok(()) => {
                assert!(b.join("x").exists() && !a.join("x").exists());
            }
            Err(e) => eprintln!("renameat2(RENAME_EXCHANGE) unsupported here ({e}); commit falls back to two renames"),
        }
    }

    #[test]
    fn file_appears_only_on_commit() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("f.txt");
        let mut f = AtomicFile::create(&target, false).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!target.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert!(AtomicFile::create(&target, false).is_err());
    }

    #[test]
    fn a_directory_never_replaces_a_file_or_device() {
        assert!(AtomicDir::create("/dev/null", true)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn devices_are_written_in_place_never_replaced() {
        for force in [false, true] {
            let mut f = AtomicFile::create("/dev/null", force).unwrap();
            f.write_all(b"discarded").unwrap();
            f.commit().unwrap();
            let m = fs::metadata("/dev/null").unwrap();
            assert!(!m.is_file(), "/dev/null must stay a device");
        }
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out");
        // pid 0x7ffffff0 is far above pid_max on Linux, so it cannot be alive
        let stale = d.path().join(format!(".out.tmp.{}.0", 0x7fff_fff0u32));
        fs::create_dir(&stale).unwrap();
        let a = AtomicDir::create(&target, false).unwrap();
        assert!(!stale.exists());
        drop(a);
    }
}
