//! Interpreter discovery: from what the user named to a pinned CPython and its facts.
//!
//! The user may name a program on `PATH`, give a path, point at a venv's `bin/python`, run a
//! console script whose shebang names a Python, or go through a pyenv shim. This module
//! resolves each to the file to execute and the interpreter that will read the startup hooks,
//! skipping sitegate's own shims and resolving pyenv's shims without running pyenv. It then
//! learns the interpreter's facts (version, prefixes, the directories `site` would scan) by one
//! run with `-I -S`, which executes no startup hook, and caches them keyed by the identity of
//! the interpreter's files.
//!
//! It trusts the interpreter binary the user chose: it runs it once (on a cache miss) to ask.
//! It trusts nothing in the directories it looks at: a file that is not a CPython is refused.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sitegate_policy::{LocaleCodec, PythonVersion};

use crate::cache::{cache_dir, sha256_hex, write_atomically};

/// The guard inserted into `site`.
pub const GUARD_SOURCE: &str = include_str!("../python/guard.py");
/// The introspection program.
const INTROSPECT_SOURCE: &str = include_str!("../python/introspect.py");

/// What the user asked to run, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    /// The file to execute.
    pub program: PathBuf,
    /// The `argv[0]` to give it.
    pub argv0: OsString,
    /// The interpreter that will run start-up hooks (the program itself, or its shebang's).
    pub interpreter: PathBuf,
    /// Arguments that the shebang line passes to the interpreter before the script.
    pub shebang_arguments: Vec<OsString>,
    /// A directory to put in front of `PATH`, as pyenv's shims do.
    pub path_prepend: Option<PathBuf>,
}

/// Resolves a program name or path.
pub fn resolve(program: &OsStr) -> Result<Target> {
    let found = if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        if !path.exists() {
            bail!("`{}` does not exist", path.display());
        }
        path
    } else {
        find_on_path(program, None)?
    };
    let argv0 = if program.as_bytes().contains(&b'/') {
        program.to_owned()
    } else {
        found.clone().into_os_string()
    };
    let mut target = Target {
        program: found.clone(),
        argv0,
        interpreter: found.clone(),
        shebang_arguments: Vec::new(),
        path_prepend: None,
    };

    if let Some(root) = pyenv_shim_root(&found) {
        let name = found.file_name().context("a shim has a file name")?;
        let (real, prepend) = resolve_pyenv(&root, name)?;
        target.program = real.clone();
        target.argv0 = real.clone().into_os_string();
        target.interpreter = real;
        target.path_prepend = prepend;
    }

    match read_head(&target.program)? {
        Head::Elf => {}
        Head::Shebang(line) => {
            let (interpreter, arguments) = parse_shebang(&line)?;
            let interpreter = if interpreter.as_os_str() == "/usr/bin/env"
                || interpreter.as_os_str() == "/bin/env"
            {
                let name = arguments
                    .first()
                    .context("`#!/usr/bin/env` names no program")?
                    .clone();
                let resolved = resolve(&name)?;
                target.shebang_arguments = arguments[1..].to_vec();
                resolved.interpreter
            } else {
                target.shebang_arguments = arguments;
                interpreter
            };
            if read_head(&interpreter)? != Head::Elf {
                bail!(
                    "`{}` runs `{}`, which is not a Python interpreter",
                    target.program.display(),
                    interpreter.display()
                );
            }
            target.interpreter = interpreter;
        }
        Head::Other => bail!(
            "`{}` is neither a Python interpreter nor a script with a `#!` line",
            target.program.display()
        ),
    }
    // Whether the file is a CPython at all is checked by `inspect`, once per identity: reading
    // a large static interpreter on every start would cost more than the whole scan.
    Ok(target)
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Elf,
    Shebang(Vec<u8>),
    Other,
}

fn read_head(path: &Path) -> Result<Head> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let mut head = vec![0u8; 256];
    let mut filled = 0;
    while filled < head.len() {
        let got = file.read(&mut head[filled..])?;
        if got == 0 {
            break;
        }
        filled += got;
    }
    head.truncate(filled);
    if head.starts_with(b"\x7fELF") {
        return Ok(Head::Elf);
    }
    if head.starts_with(b"#!") {
        let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        return Ok(Head::Shebang(head[2..end].to_vec()));
    }
    Ok(Head::Other)
}

/// Splits a `#!` line as Linux does: the interpreter, then at most one argument (the rest).
fn parse_shebang(line: &[u8]) -> Result<(PathBuf, Vec<OsString>)> {
    let trimmed: &[u8] = {
        let start = line
            .iter()
            .position(|b| !b" \t".contains(b))
            .unwrap_or(line.len());
        let end = line
            .iter()
            .rposition(|b| !b" \t\r".contains(b))
            .map_or(start, |e| e + 1);
        &line[start..end.max(start)]
    };
    if trimmed.is_empty() {
        bail!("empty `#!` line");
    }
    let split = trimmed.iter().position(|b| b" \t".contains(b));
    let (interpreter, rest) = match split {
        Some(at) => (&trimmed[..at], trimmed[at..].trim_ascii()),
        None => (trimmed, &b""[..]),
    };
    let mut arguments = Vec::new();
    if !rest.is_empty() {
        if interpreter.ends_with(b"/env") {
            // `env` splits its single argument itself only with `-S`; the usual form names one
            // program.
            arguments.extend(
                rest.split(|b| b" \t".contains(b))
                    .filter(|w| !w.is_empty() && *w != b"-S")
                    .map(|w| OsString::from_vec(w.to_vec())),
            );
        } else {
            arguments.push(OsString::from_vec(rest.to_vec()));
        }
    }
    Ok((
        PathBuf::from(OsString::from_vec(interpreter.to_vec())),
        arguments,
    ))
}

/// Whether a file is sitegate itself (a shim): the same file as the running binary.
fn is_own_shim(path: &Path) -> bool {
    let Ok(own) = std::env::current_exe().and_then(fs::canonicalize) else {
        return false;
    };
    fs::canonicalize(path).is_ok_and(|p| p == own)
}

fn find_on_path(name: &OsStr, skip_dir: Option<&Path>) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if skip_dir.is_some_and(|skip| skip == dir) {
            continue;
        }
        let candidate = dir.join(name);
        let executable =
            fs::metadata(&candidate).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
        if executable && !is_own_shim(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("`{}` is not on `PATH`", name.to_string_lossy())
}

/// A pyenv shim's root: a file in `<root>/shims` that runs `pyenv exec`.
fn pyenv_shim_root(path: &Path) -> Option<PathBuf> {
    let mut text = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut text)
        .ok()?;
    if text.len() >= 4096 {
        return None;
    }
    let text = String::from_utf8(text).ok()?;
    if !text.starts_with("#!") || !text.contains("pyenv\" exec") {
        return None;
    }
    let root = text
        .lines()
        .find_map(|l| l.strip_prefix("export PYENV_ROOT=\"")?.strip_suffix('"'))?;
    Some(PathBuf::from(root))
}

/// Resolves a pyenv shim the way `pyenv exec` does, without running pyenv.
fn resolve_pyenv(root: &Path, name: &OsStr) -> Result<(PathBuf, Option<PathBuf>)> {
    let versions = pyenv_versions_selected(root)?;
    for version in &versions {
        if version == "system" {
            let shims = root.join("shims");
            return Ok((find_on_path(name, Some(&shims))?, None));
        }
        let dir = pyenv_version_dir(root, version);
        if let Some(dir) = dir {
            let bin = dir.join("bin");
            if bin.join(name).is_file() {
                return Ok((bin.join(name), Some(bin)));
            }
        }
    }
    bail!(
        "pyenv selects `{}`, which has no `{}`",
        versions.join(":"),
        name.to_string_lossy()
    )
}

fn pyenv_versions_selected(root: &Path) -> Result<Vec<String>> {
    if let Ok(value) = std::env::var("PYENV_VERSION") {
        if !value.is_empty() {
            return Ok(value.split(':').map(str::to_owned).collect());
        }
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(current) = dir {
        let file = current.join(".python-version");
        if file.is_file() {
            return read_version_file(&file);
        }
        dir = current.parent().map(Path::to_owned);
    }
    let global = root.join("version");
    if global.is_file() {
        return read_version_file(&global);
    }
    Ok(vec!["system".to_owned()])
}

fn read_version_file(file: &Path) -> Result<Vec<String>> {
    let text =
        fs::read_to_string(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    Ok(text
        .split_whitespace()
        // As pyenv does, a version is a name inside `versions/`, never a path: an absolute or
        // relative path in a checkout's `.python-version` would run any binary it names.
        .filter(|w| !w.starts_with('#') && !w.contains("..") && !w.contains('/'))
        .map(str::to_owned)
        .collect())
}

fn pyenv_version_dir(root: &Path, version: &str) -> Option<PathBuf> {
    let versions = root.join("versions");
    let exact = versions.join(version);
    if exact.is_dir() {
        return Some(exact);
    }
    let numbers =
        |name: &str| -> Vec<u64> { name.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    fs::read_dir(&versions)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.starts_with(&format!("{version}."))
                && name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
        .max_by_key(|name| numbers(name))
        .map(|name| versions.join(name))
}

/// Refuses a file that is not a CPython: an ELF that neither exports the C API nor links a
/// `libpython`.
fn check_is_python(path: &Path) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .with_context(|| format!("`{}` is not a readable ELF file", path.display()))?;
    let exports_api = elf.dynsyms.iter().any(|sym| {
        elf.dynstrtab.get_at(sym.st_name) == Some("PyImport_FrozenModules") && sym.st_value != 0
    });
    let links_libpython = elf.libraries.iter().any(|l| l.starts_with("libpython"));
    if !exports_api && !links_libpython {
        bail!("`{}` is not a CPython interpreter", path.display());
    }
    Ok(())
}

/// What sitegate knows about an interpreter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Facts {
    /// `sys.implementation.name`.
    pub implementation: String,
    /// `sys.version_info[:3]`.
    pub version: [u32; 3],
    /// `sys.version`, the full build string (`Py_GetVersion()`), which tells builds apart.
    pub build: String,
    /// `sys.executable`.
    pub executable: PathBuf,
    /// `sys.prefix` after venv detection.
    pub prefix: PathBuf,
    /// `sys.base_prefix`.
    pub base_prefix: PathBuf,
    /// `sys.exec_prefix`.
    pub exec_prefix: PathBuf,
    /// `sys.path` before `site` and without `PYTHONPATH`.
    pub base_path: Vec<PathBuf>,
    /// The directories `site.main()` hands to `addsitedir`, in order; `None` stands for the
    /// user site.
    pub site_calls: Vec<Option<PathBuf>>,
    /// The user site directory.
    pub user_site: PathBuf,
    /// Whether the environment allows the user site at all (a venv without system site
    /// packages does not).
    pub user_site_allowed: bool,
    /// `sys.abiflags`.
    pub abiflags: String,
    /// `sys.platlibdir`.
    pub platlibdir: String,
    /// The locale's own codec (`nl_langinfo(CODESET)`).
    pub locale_encoding: String,
    /// Whether UTF-8 mode is on without options (a C or POSIX locale turns it on).
    pub utf8_mode: bool,
    /// Suffixes of extension modules.
    pub extension_suffixes: Vec<String>,
    /// The `libpython` the interpreter maps, if it is not static.
    pub libpython: Option<PathBuf>,
    /// The `site.py` compiled into the guarded `site`.
    pub site_py: PathBuf,
}

impl Facts {
    /// The version as the policy library spells it.
    pub fn python_version(&self) -> PythonVersion {
        PythonVersion::new(self.version[0], self.version[1], self.version[2])
    }

    /// The codec `site` uses when UTF-8 is not tried or fails, if sitegate can reproduce it.
    /// Up to 3.10 it is the preferred encoding, which UTF-8 mode turns into UTF-8; from 3.11
    /// `encoding="locale"` and `locale.getencoding()` ignore UTF-8 mode.
    pub fn locale_codec(&self, utf8_mode: Option<bool>) -> Result<LocaleCodec> {
        if self.version[1] <= 10 && utf8_mode.unwrap_or(self.utf8_mode) {
            return Ok(LocaleCodec::Utf8);
        }
        LocaleCodec::from_python_name(&self.locale_encoding).with_context(|| {
            format!(
                "the locale encoding `{}` is not one sitegate can reproduce (UTF-8, ASCII, \
                 ISO-8859-1)",
                self.locale_encoding
            )
        })
    }
}

/// An interpreter with its facts and the compiled guarded `site`.
#[derive(Clone, Debug)]
pub struct Interpreter {
    /// The interpreter's path, as it will be run.
    pub path: PathBuf,
    /// What it reported.
    pub facts: Facts,
    /// The marshalled code of the guarded `site` module.
    pub site_code: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CachedFacts {
    facts: Facts,
    libpython_identity: Option<String>,
    site_py_identity: String,
}

/// Environment variables that change what the introspection reports.
///
/// FIXME: `PYTHONHOME` is ignored by the `-I` introspection run but honoured by a start without
/// `-E`, so with it set the predicted prefixes (and site directories) can be wrong.
const FACT_VARIABLES: [&str; 7] = [
    "HOME",
    "PYTHONUSERBASE",
    "LC_ALL",
    "LC_CTYPE",
    "LANG",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
];

fn file_identity(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(format!(
        "{}:{}:{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

fn pyvenv_cfg(interpreter: &Path) -> Option<Vec<u8>> {
    let dir = interpreter.parent()?;
    fs::read(dir.join("pyvenv.cfg"))
        .ok()
        .or_else(|| fs::read(dir.parent()?.join("pyvenv.cfg")).ok())
}

/// Learns (or loads from the cache) the facts of an interpreter.
pub fn inspect(path: &Path) -> Result<Interpreter> {
    let interpreter = learn(path)?;
    refuse_path_file(&interpreter)?;
    Ok(interpreter)
}

/// From 3.11 a `._pth` file beside the interpreter or its `libpython` replaces the path
/// configuration before `site` runs (and usually keeps `site` out): the standard library
/// itself could come from anywhere it names. sitegate cannot verify such a start, so it
/// refuses it rather than guard only half of it.
fn refuse_path_file(interpreter: &Interpreter) -> Result<()> {
    if interpreter.facts.version[1] < 11 {
        return Ok(());
    }
    let mut candidates = vec![interpreter.path.clone()];
    candidates.extend(fs::canonicalize(&interpreter.path).ok());
    candidates.extend(interpreter.facts.libpython.clone());
    for candidate in candidates {
        let mut path_file = candidate.into_os_string();
        path_file.push("._pth");
        let path_file = PathBuf::from(path_file);
        if path_file.is_file() {
            bail!(
                "`{}` replaces the interpreter's path configuration before `site` runs; \
                 sitegate cannot verify such a start",
                path_file.display()
            );
        }
    }
    Ok(())
}

fn learn(path: &Path) -> Result<Interpreter> {
    let absolute = std::path::absolute(path)?;
    let canonical = fs::canonicalize(&absolute)?;
    let mut key = format!(
        "{}\n{}\n{}\n{}\n{}\n",
        env!("CARGO_PKG_VERSION"),
        sha256_hex(GUARD_SOURCE.as_bytes()),
        sha256_hex(INTROSPECT_SOURCE.as_bytes()),
        absolute.display(),
        file_identity(&canonical)?
    );
    key.push_str(&sha256_hex(&pyvenv_cfg(&absolute).unwrap_or_default()));
    for name in FACT_VARIABLES {
        key.push_str(&format!("\n{name}={:?}", std::env::var_os(name)));
    }
    let key = sha256_hex(key.as_bytes());
    let dir = cache_dir()?.join("interpreters");
    let facts_file = dir.join(format!("{key}.json"));
    let site_code = dir.join(format!("{key}.site"));

    if let Ok(text) = fs::read(&facts_file) {
        if let Ok(cached) = serde_json::from_slice::<CachedFacts>(&text) {
            let libpython_same = match &cached.facts.libpython {
                Some(lib) => file_identity(lib).ok() == cached.libpython_identity,
                None => true,
            };
            let site_same = file_identity(&cached.facts.site_py).ok().as_ref()
                == Some(&cached.site_py_identity);
            if libpython_same && site_same && site_code.is_file() {
                tracing::info!(
                    "interpreter facts of `{}` from the cache",
                    absolute.display()
                );
                return Ok(Interpreter {
                    path: absolute,
                    facts: cached.facts,
                    site_code,
                });
            }
        }
    }

    tracing::info!("learning the facts of `{}`", absolute.display());
    check_is_python(&absolute)?;
    check_version(&absolute)?;
    let scratch = tempfile::NamedTempFile::new_in({
        crate::cache::create_private_dir(&dir)?;
        &dir
    })?;
    let mut child = Command::new(&absolute)
        .args(["-I", "-S", "-c", INTROSPECT_SOURCE])
        .arg(scratch.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", absolute.display()))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("the introspection's stdin")?;
        stdin.write_all(GUARD_SOURCE.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "`{}` failed to report its facts: {}",
            absolute.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let facts: Facts = serde_json::from_slice(&output.stdout)
        .context("the interpreter's facts are not readable JSON")?;
    if facts.implementation != "cpython" {
        bail!(
            "`{}` is {}, not CPython",
            absolute.display(),
            facts.implementation
        );
    }
    scratch
        .persist(&site_code)
        .context("cannot store the compiled `site`")?;
    let cached = CachedFacts {
        libpython_identity: facts.libpython.as_deref().map(file_identity).transpose()?,
        site_py_identity: file_identity(&facts.site_py)?,
        facts,
    };
    write_atomically(&facts_file, &serde_json::to_vec(&cached)?)?;
    Ok(Interpreter {
        path: absolute,
        facts: cached.facts,
        site_code,
    })
}

/// Asks for the version with options every Python since 2.7 knows and that run no hook, and
/// refuses versions sitegate does not support.
fn check_version(path: &Path) -> Result<()> {
    let output = Command::new(path)
        .args([
            "-E",
            "-s",
            "-S",
            "-c",
            "import sys; sys.stdout.write('%d.%d.%d' % sys.version_info[:3])",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{}`", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let parts: Vec<u32> = text.split('.').filter_map(|p| p.parse().ok()).collect();
    let [major, minor, micro] = parts[..] else {
        bail!("`{}` did not report a Python version", path.display());
    };
    let version = PythonVersion::new(major, minor, micro);
    if !version.is_supported() {
        bail!(
            "`{}` is Python {version}; sitegate supports CPython 3.8 to 3.{}",
            path.display(),
            PythonVersion::NEWEST_SUPPORTED_MINOR
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        let (interpreter, arguments) = parse_shebang(b"/venv/bin/python").unwrap();
        assert_eq!(interpreter, PathBuf::from("/venv/bin/python"));
        assert!(arguments.is_empty());
        let (_, arguments) = parse_shebang(b" /usr/bin/python3 -E -s\r").unwrap();
        assert_eq!(arguments, vec![OsString::from("-E -s")]);
        let (interpreter, arguments) = parse_shebang(b"/usr/bin/env python3").unwrap();
        assert_eq!(interpreter, PathBuf::from("/usr/bin/env"));
        assert_eq!(arguments, vec![OsString::from("python3")]);
    }
}
