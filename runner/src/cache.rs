//! The cache directory and the one way files are written into it.
//!
//! The cache only saves work: interpreter facts keyed by the interpreter's identity, compiled
//! `site` modules, plans keyed by their content. Every file is written to a temporary name and
//! renamed into place, so a reader never sees half a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The cache root: `SITEGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/sitegate`, else
/// `~/.cache/sitegate`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SITEGATE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("sitegate"));
    }
    let home =
        std::env::var_os("HOME").context("neither `SITEGATE_CACHE_DIR` nor `HOME` is set")?;
    Ok(PathBuf::from(home).join(".cache").join("sitegate"))
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
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
