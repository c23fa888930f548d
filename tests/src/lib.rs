//! Support for sitegate's integration tests: the built binary, the CPython interpreters on
//! this machine, the pinned tools the tests install (uv), and throw-away virtual environments.
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
    let bin = profile_dir().join("sitegate");
    assert!(
        bin.is_file(),
        "build sitegate first: `cargo build --release` (looked for {})",
        bin.display()
    );
    bin
}

/// The directory of the cargo profile this test binary was built with: the binary is in
/// `target/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary has a path");
    test_binary
        .ancestors()
        .nth(2)
        .expect("target/<profile>/deps/<binary>")
        .to_owned()
}

/// The requirements file that pins the tools the tests install.
const TOOL_REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/requirements.txt");

/// The venv of the tools the tests install, pinned by version and wheel hash in
/// `tests/tools/requirements.txt`: installed with `pip --require-hashes` into
/// `target/test-tools/venv` at most once per test run, and again only when the requirements
/// change (a stamp file holds their SHA-256).
fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(install_tools)
}

/// uv, from the test tools.
pub fn uv() -> PathBuf {
    tools().join("bin/uv")
}

/// The test tools' Python, which has setuptools.
pub fn tools_python() -> PathBuf {
    tools().join("bin/python")
}

/// The SHA-256 of some bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};

    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn install_tools() -> PathBuf {
    let requirements = std::fs::read(TOOL_REQUIREMENTS).expect("tests/tools/requirements.txt");
    let wanted = sha256_hex(&requirements);
    let target = profile_dir().parent().expect("target/<profile>").to_owned();
    let tools = target.join("test-tools").join("venv");
    let stamp = "requirements.sha256";
    let installed = std::fs::read_to_string(tools.join(stamp)).unwrap_or_default();
    if installed.trim() == wanted {
        return tools;
    }

    // The tools' venv is made beside its place and moved there when complete, so that an
    // interrupted install is never taken for a finished one.
    let partial = tools.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let python = pythons()
        .into_iter()
        .rev()
        .find(|p| p.label != "debian-3.11")
        .expect("a pyenv CPython to install the test tools with");
    succeeded(
        Command::new(&python.path)
            .args(["-m", "venv"])
            .arg(&partial),
        "making the test tools' venv",
    );
    // pip's own configuration (index, certificates) comes from the environment; its home is
    // the tool's directory, so that nothing is written to the real one.
    succeeded(
        Command::new(partial.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet"])
            .args(["--disable-pip-version-check", "--no-cache-dir"])
            .args(["--require-hashes", "--no-deps", "-r", TOOL_REQUIREMENTS])
            .env("HOME", &partial)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME"),
        "installing the test tools",
    );
    std::fs::write(partial.join(stamp), format!("{wanted}\n")).unwrap();
    let _ = std::fs::remove_dir_all(&tools);
    std::fs::rename(&partial, &tools).expect("the test tools move into place");
    tools
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

    /// Installs, into a venv made with pip, an editable install of a flat-layout project
    /// `demo-pkg` 0.1 (package `demo_pkg`, `X = 1`), built by the test tools' setuptools: the
    /// `__editable__.demo_pkg-0.1.pth` hook and its finder module, as setuptools writes them.
    pub fn editable_install(&self, venv: &Venv) {
        let project = self.path().join("demo-project");
        std::fs::create_dir_all(project.join("demo_pkg")).unwrap();
        std::fs::write(
            project.join("pyproject.toml"),
            "[build-system]\nrequires = [\"setuptools\"]\n\
             build-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"demo-pkg\"\nversion = \"0.1\"\n",
        )
        .unwrap();
        std::fs::write(project.join("demo_pkg/__init__.py"), "X = 1\n").unwrap();
        let dist = self.path().join("demo-dist");
        let built = run(self
            .command(tools_python())
            .args([
                "-c",
                "import sys, setuptools.build_meta as b; print(b.build_editable(sys.argv[1]))",
            ])
            .arg(&dist)
            .current_dir(&project));
        assert!(built.status.success(), "{}", built.stderr_text());
        let wheel = dist.join(
            built
                .stdout_text()
                .lines()
                .last()
                .unwrap_or_default()
                .trim(),
        );
        succeeded(
            self.command(&venv.python)
                .args(["-m", "pip", "install", "--quiet", "--no-deps", "--no-index"])
                .args(["--disable-pip-version-check"])
                .arg(&wheel),
            "installing the editable wheel",
        );
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
        command.arg(&root);
        Venv::made_by(command, python, root)
    }

    /// Makes a venv with the pinned uv ([`uv`]), as `uv venv --python PYTHON` makes it: for
    /// that interpreter, with no network and no cache outside the sandbox.
    pub fn uv_venv(&self, python: &Python, name: &str) -> Venv {
        let root = self.path().join(name);
        let mut command = self.command(uv());
        command
            .env("UV_NO_CACHE", "1")
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never")
            .args(["venv", "--quiet", "--python"])
            .arg(&python.path)
            .arg(&root);
        Venv::made_by(command, python, root)
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
    /// Runs the command that makes a venv for `python` at `root`, and opens the venv.
    fn made_by(mut command: Command, python: &Python, root: PathBuf) -> Venv {
        succeeded(&mut command, &format!("making a venv for {}", python.label));
        Venv::open(root)
    }

    /// The venv at `root`, with its site-packages as its own interpreter reports it.
    fn open(root: PathBuf) -> Venv {
        let python = root.join("bin/python");
        let site = Command::new(&python)
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
            python,
            site_packages,
        }
    }

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

/// Runs a command, failing the test with its stderr unless it succeeds.
fn succeeded(command: &mut Command, what: &str) {
    let output = run(command);
    assert!(
        output.status.success(),
        "{what} failed: {}",
        output.stderr_text()
    );
}

/// Asserts that a run printed exactly `stdout` and that its stderr holds `stderr_part`; the
/// failure shows the other stream too.
#[track_caller]
pub fn assert_ran(output: &Output, stdout: &str, stderr_part: &str) {
    assert_eq!(output.stdout_text(), stdout, "{}", output.stderr_text());
    assert!(
        output.stderr_text().contains(stderr_part),
        "{}",
        output.stderr_text()
    );
}

/// Runs a command and returns its output, failing the test if it cannot start.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}
