//! Which policy is in force, and the user's trust in policies found on disk.
//!
//! A policy named with `--policy` is trusted. A `sitegate.toml` (or a `pyproject.toml` with a
//! `[tool.sitegate]` table) found by walking up from the working directory may come from a
//! checkout the user has not reviewed, so it takes effect only once `sitegate trust` recorded
//! its path and SHA-256 in the user's configuration; an untrusted or changed file is ignored
//! with a warning that names the command.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sitegate_policy::model::parse_policy;
use sitegate_policy::{Policy, PolicyError, PolicyFormat};

use crate::cache::{sha256_hex, write_atomically};

/// A policy file found on disk.
#[derive(Clone, Debug)]
pub struct FoundPolicy {
    /// Its path.
    pub path: PathBuf,
    /// How it is read.
    pub format: PolicyFormat,
}

/// Every `sitegate.toml`, or `pyproject.toml` holding `[tool.sitegate]`, from a directory up
/// to the root, nearest first (at most one per directory, `sitegate.toml` first).
pub fn find_policies(start: &Path) -> Vec<FoundPolicy> {
    let mut found = Vec::new();
    let mut dir = Some(start);
    while let Some(current) = dir {
        let own = current.join("sitegate.toml");
        let pyproject = current.join("pyproject.toml");
        if own.is_file() {
            found.push(FoundPolicy {
                path: own,
                format: PolicyFormat::SitegateToml,
            });
        } else if std::fs::read_to_string(&pyproject).is_ok_and(|t| t.contains("[tool.sitegate")) {
            found.push(FoundPolicy {
                path: pyproject,
                format: PolicyFormat::Pyproject,
            });
        }
        dir = current.parent();
    }
    found
}

/// The format a named policy file is read in.
pub fn format_of(path: &Path) -> PolicyFormat {
    if path.file_name().is_some_and(|n| n == "pyproject.toml") {
        PolicyFormat::Pyproject
    } else {
        PolicyFormat::SitegateToml
    }
}

/// A policy that could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The file cannot be read.
    #[error("cannot read policy `{}`", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    /// The file has problems.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

/// Reads a policy file's text and its SHA-256, without checking it.
pub fn read_policy_text(path: &Path) -> Result<(String, String), PolicyLoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| PolicyLoadError::Read(path.to_owned(), e))?;
    let sha256 = sha256_hex(text.as_bytes());
    Ok((text, sha256))
}

/// Checks a policy file's text.
pub fn check_policy(
    text: &str,
    path: &Path,
    format: PolicyFormat,
) -> Result<Policy, PolicyLoadError> {
    Ok(parse_policy(text, path, format)?.unwrap_or_else(Policy::builtin))
}

/// Reads and checks a policy file.
pub fn read_policy(path: &Path, format: PolicyFormat) -> Result<(Policy, String), PolicyLoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| PolicyLoadError::Read(path.to_owned(), e))?;
    let policy = parse_policy(&text, path, format)?.unwrap_or_else(Policy::builtin);
    Ok((policy, sha256_hex(text.as_bytes())))
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustStore {
    #[serde(default)]
    trusted: Vec<TrustedPolicy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedPolicy {
    path: PathBuf,
    sha256: String,
}

/// The user's configuration directory: `SITEGATE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sitegate`,
/// else `~/.config/sitegate`.
fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SITEGATE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("sitegate"));
    }
    let home =
        std::env::var_os("HOME").context("neither `SITEGATE_CONFIG_DIR` nor `HOME` is set")?;
    Ok(PathBuf::from(home).join(".config").join("sitegate"))
}

fn trust_file() -> Result<PathBuf> {
    Ok(config_dir()?.join("trusted.toml"))
}

fn load_trust() -> Result<TrustStore> {
    let file = trust_file()?;
    match std::fs::read_to_string(&file) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("the trust store `{}` is broken", file.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore::default()),
        Err(error) => Err(error).with_context(|| format!("cannot read `{}`", file.display())),
    }
}

/// How far the user trusts a found policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Recorded with this content.
    Trusted,
    /// Recorded, but the file changed since.
    Changed,
    /// Never recorded.
    Unknown,
}

/// Looks a policy file up in the trust store.
pub fn trust_of(path: &Path, sha256: &str) -> Result<Trust> {
    let canonical = std::fs::canonicalize(path)?;
    let store = load_trust()?;
    Ok(match store.trusted.iter().find(|t| t.path == canonical) {
        Some(entry) if entry.sha256 == sha256 => Trust::Trusted,
        Some(_) => Trust::Changed,
        None => Trust::Unknown,
    })
}

/// Records a policy file as trusted with its current content.
pub fn trust(path: &Path, sha256: &str) -> Result<PathBuf> {
    let canonical =
        std::fs::canonicalize(path).with_context(|| format!("cannot find `{}`", path.display()))?;
    let mut store = load_trust()?;
    store.trusted.retain(|t| t.path != canonical);
    store.trusted.push(TrustedPolicy {
        path: canonical.clone(),
        sha256: sha256.to_owned(),
    });
    let file = trust_file()?;
    write_atomically(&file, toml::to_string(&store)?.as_bytes())?;
    Ok(canonical)
}
