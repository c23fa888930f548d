//! Support for sitegate's integration tests: the built binary, the CPython interpreters on
//! this machine, and throw-away virtual environments.
//!
//! Tests never touch an interpreter's own site-packages: every hook they plant lives in a
//! venv or a directory made in a temporary directory. Interpreters that are not present are
//! skipped with a message on stderr.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `sitegate` binary under test: `SITEGATE_BIN`, else the one the same `cargo` build put
/// beside this test binary's directory (`target/<profile>/sitegate`).
pub fn sitegate_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SITEGATE_BIN") {
        return PathBuf::from(bin);
    }
    let test_binary = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("sitegate");
    assert!(
        bin.is_file(),
        "build sitegate first: `cargo build --release` (looked for {})",
        bin.display()
    );
    bin
}

/// One interpreter present on the machine.
#[derive(Clone, Debug)]
pub struct Python {
    /// A short label for messages (`3.11.7`, `debian-3.11`).
    pub label: String,
    /// Its path.
    pub path: PathBuf,
    /// `(major, minor)`.
    pub version: (u32, u32),
}

fn pyenv_root() -> PathBuf {
    std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv")
        })
}

/// Every supported CPython present: pyenv's 3.8 and later, and Debian's own `python3.11`.
pub fn pythons() -> Vec<Python> {
    static FOUND: OnceLock<Vec<Python>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let mut found = Vec::new();
            let versions = pyenv_root().join("versions");
            let mut names: Vec<String> = std::fs::read_dir(&versions)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            names.sort_by_key(|n| {
                n.split('.')
                    .map(|p| p.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>()
            });
            for name in names {
                let parts: Vec<u32> = name.split('.').filter_map(|p| p.parse().ok()).collect();
                if parts.len() < 2 || parts[0] != 3 || parts[1] < 8 {
                    continue;
                }
                let path = versions.join(&name).join("bin/python3");
                if path.is_file() {
                    found.push(Python {
                        label: name.clone(),
                        path,
                        version: (parts[0], parts[1]),
                    });
                }
            }
            let debian = PathBuf::from("/usr/bin/python3.11");
            if debian.is_file() {
                found.push(Python {
                    label: "debian-3.11".into(),
                    path: debian,
                    version: (3, 11),
                });
            } else {
                eprintln!("skipping Debian's python3.11: not present");
            }
            if found.is_empty() {
                eprintln!("no CPython 3.8+ found under {}", versions.display());
            }
            found
        })
        .clone()
}

/// An interpreter older than 3.8 that sitegate must refuse, if one is present.
pub fn unsupported_python() -> Option<PathBuf> {
    ["2.7.18", "3.6.15", "3.7.16"]
        .iter()
        .map(|v| pyenv_root().join("versions").join(v).join("bin/python"))
        .find(|p| p.is_file())
}

/// A cache directory shared by the tests of one run (its entries are content-keyed).
pub fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE
        .get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// A scratch directory with a home, a configuration directory and room for venvs.
pub struct Sandbox {
    /// The temporary directory.
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// Makes one.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with a clean, predictable environment: a temporary `HOME`, the shared cache,
    /// a private trust store, and no `PYTHON*` variables from the caller.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("PYTHON")
                || key_text.starts_with("SITEGATE")
                || key_text == "LD_PRELOAD"
                || key_text == "VIRTUAL_ENV"
            {
                command.env_remove(&key);
            }
        }
        command
            .env("HOME", self.path().join("home"))
            .env("SITEGATE_CACHE_DIR", shared_cache())
            .env("SITEGATE_CONFIG_DIR", self.path().join("config"))
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .stdin(Stdio::null());
        command
    }

    /// `sitegate ARGS...` with the sandbox's environment.
    pub fn sitegate(&self) -> Command {
        self.command(sitegate_binary())
    }

    /// `sitegate [--policy POLICY] exec -- PYTHON`, to which the caller adds the program's
    /// arguments.
    pub fn guarded(&self, policy: Option<&Path>, python: &Path) -> Command {
        let mut command = self.sitegate();
        if let Some(policy) = policy {
            command.arg("--policy").arg(policy);
        }
        command.args(["exec", "--"]).arg(python);
        command
    }

    /// Makes a venv with `python -m venv` (with pip when asked, which brings setuptools' hook
    /// on the versions whose `ensurepip` ships setuptools).
    pub fn venv(&self, python: &Python, name: &str, with_pip: bool) -> Venv {
        let root = self.path().join(name);
        let mut command = self.command(&python.path);
        command.args(["-m", "venv"]);
        if !with_pip {
            command.arg("--without-pip");
        }
        let output = command.arg(&root).output().expect("python -m venv runs");
        assert!(
            output.status.success(),
            "venv for {} failed: {}",
            python.label,
            String::from_utf8_lossy(&output.stderr)
        );
        let python_path = root.join("bin/python");
        let site = Command::new(&python_path)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .expect("venv python runs");
        let site_packages = PathBuf::from(String::from_utf8(site.stdout).unwrap().trim());
        assert!(site_packages.is_dir(), "{}", site_packages.display());
        Venv {
            root,
            python: python_path,
            site_packages,
        }
    }
}

/// A virtual environment made for a test.
pub struct Venv {
    /// Its directory.
    pub root: PathBuf,
    /// Its `bin/python`.
    pub python: PathBuf,
    /// Its site-packages.
    pub site_packages: PathBuf,
}

impl Venv {
    /// Writes a file into site-packages.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.site_packages.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Output as text, for assertions.
pub trait OutputText {
    /// stdout.
    fn stdout_text(&self) -> String;
    /// stderr.
    fn stderr_text(&self) -> String;
}

impl OutputText for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs a command and returns its output, failing the test if it cannot start.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}
