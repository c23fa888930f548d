//! The cache directory and the one way files are written into it.
//!
//! The cache only saves work: interpreter facts keyed by the interpreter's identity, compiled
//! `site` modules, plans keyed by their content. Every file is written to a temporary name and
//! renamed into place, so a reader never sees half a file, and no file is ever changed in
//! place: a reader that holds one open keeps reading the bytes it started with.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The cache root: `SITEGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/sitegate`, else
/// `~/.cache/sitegate`, made absolute (children started in another working directory must
/// find the same files).
pub fn cache_dir() -> Result<PathBuf> {
    let dir = if let Some(dir) = std::env::var_os("SITEGATE_CACHE_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(dir)
    } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(dir).join("sitegate")
    } else {
        let home =
            std::env::var_os("HOME").context("neither `SITEGATE_CACHE_DIR` nor `HOME` is set")?;
        PathBuf::from(home).join(".cache").join("sitegate")
    };
    Ok(std::path::absolute(dir)?)
}

/// Writes a file atomically (temporary file in the same directory, then rename), creating its
/// directory with owner-only permissions.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .context("a cache file has a parent directory")?;
    create_private_dir(dir)?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in `{}`", dir.display()))?;
    temporary.write_all(bytes)?;
    temporary
        .persist(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// Creates a directory (and its parents) readable by its owner only.
///
/// A directory that exists already must belong to this user and be closed to others: plans
/// and the preloaded library in a directory others can write to could be swapped.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    check_private(dir, &fs::metadata(dir)?)
}

/// Refuses a file or directory that belongs to another user or that others can write to.
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: `geteuid` reads the process's effective user id and has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "`{}` belongs to another user or others can write to it; sitegate keeps its plans \
             only where no one else can change them",
            path.display()
        );
    }
    Ok(())
}

/// Opens a regular file of the cache for reading, when it and its directory belong to this
/// user and no one else can write to them, as [`write_atomically`] leaves them. A symbolic
/// link is refused.
pub fn open_private_file(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .context("a cache file has a parent directory")?;
    check_private(dir, &fs::metadata(dir)?)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        anyhow::bail!("`{}` is not a regular file", path.display());
    }
    check_private(path, &meta)?;
    Ok(file)
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex BLAKE3 of everything a reader yields, read in pieces: a large file is
/// neither held in memory whole nor copied into a fresh allocation.
pub fn blake3_hex_of(reader: impl Read) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(reader)?;
    Ok(hex(hasher.finalize().as_bytes()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
