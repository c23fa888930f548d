//! The built-in baseline: the startup hooks of well-known tools, matched exactly.
//!
//! Each entry matches by file name and either the file's SHA-256 or one line's exact text
//! built from the tool's own template, never by a prefix: a well-known line with anything
//! appended (`import _virtualenv; steal()`) is not a match. The list is small on purpose and
//! every entry names its source.

use crate::hook::{HookFacts, HookKind};
use crate::model::EnvGrant;

/// One baseline entry that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineMatch {
    /// The entry's stable name.
    pub name: &'static str,
    /// The environment variables the hook reads and is granted.
    pub env: EnvGrant,
    /// What must hold of the files the hook loads. A well-known line is only as good as the
    /// module it imports: the entry allows the hook only when every requirement is verified.
    pub requires: Vec<Requirement>,
}

/// A fact about the files a baseline hook loads, checked by whoever can read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `file` (relative to the hook's site directory) is listed, with a hash that matches its
    /// bytes, in the `RECORD` of the distribution that owns the hook file, which must be
    /// `distribution` when one is named.
    Recorded {
        /// The distribution's normalised name, or `None` for the hook file's own owner.
        distribution: Option<&'static str>,
        /// The file, relative to the site directory.
        file: String,
    },
    /// `file` (relative to the hook's site directory) has one of these SHA-256 hashes.
    Pinned {
        /// The file, relative to the site directory.
        file: String,
        /// The accepted hashes.
        sha256: &'static [&'static str],
    },
    /// `package` in the hook's site directory is a namespace: no module, package or extension
    /// of that name that would run code when imported.
    Namespace {
        /// The top-level package name.
        package: String,
    },
    /// `module` is not importable from the predicted `sys.path`, or only from `dir`.
    AbsentOrUnder {
        /// The module name.
        module: &'static str,
        /// The one directory it may come from.
        dir: &'static str,
    },
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Recorded {
                distribution: Some(d),
                file,
            } => {
                write!(
                    f,
                    "`{file}` must be the file `{d}` installed (listed in its RECORD)"
                )
            }
            Requirement::Recorded {
                distribution: None,
                file,
            } => write!(
                f,
                "`{file}` must be the file the hook's own distribution installed (listed in its \
                 RECORD)"
            ),
            Requirement::Pinned { file, .. } => {
                write!(f, "`{file}` must be a version the baseline knows")
            }
            Requirement::Namespace { package } => {
                write!(
                    f,
                    "`{package}` must be a namespace directory, with no code of its own"
                )
            }
            Requirement::AbsentOrUnder { module, dir } => {
                write!(f, "`{module}` must be absent or come from `{dir}`")
            }
        }
    }
}

/// `_virtualenv.py` as virtualenv 21.15.14 and uv 0.13.9 write it (for targets before 3.10).
const VIRTUALENV_MODULE: [&str; 2] = [
    "cfe56cafbd68fd31a0e87100f111d7d2f6b7157241096500013c07e88d80a22f",
    "cfb3db86aaa53bb62b5ff764970bec2d71c9228590a0ebec57f6ec926cc0bf1a",
];

/// setuptools' `distutils-precedence.pth`: 50.1.0 to 59.x, then 60.2.0 onwards (same bytes in
/// 65.5.0, Debian's 66.1.1 and 84.2.1).
const DISTUTILS_PRECEDENCE: [&str; 2] = [
    "7ea7ffef3fe2a117ee12c68ed6553617f0d7fd2f0590257c25c484959a3b7373",
    "2638ce9e2500e572a5e0de7faed6661eb569d1b696fcba07b0dd223da5f5d224",
];

/// Debian's `sitecustomize.py` (installs the apport exception hook when apport is present).
const DEBIAN_APPORT_SITECUSTOMIZE: &str =
    "43d81125d92376b1a69d53a71126a041cc9a18d8080e92dea0a2ae23be138b1e";

/// Finds the baseline entry that covers a hook, if any, with what must also hold of the files
/// the hook loads before the entry may allow it.
pub fn match_baseline(hook: &HookFacts<'_>) -> Option<BaselineMatch> {
    let found = |name, env: &[&str], requires: Vec<Requirement>| {
        let names = env.iter().map(|n| n.to_string()).collect();
        let env = EnvGrant {
            names,
            prefixes: Vec::new(),
        };
        Some(BaselineMatch {
            name,
            env,
            requires,
        })
    };
    match hook.kind {
        HookKind::PthCode => {
            let line = hook.line_text?.trim_end_matches(['\n', '\r']);
            if hook.file_name == "distutils-precedence.pth"
                && DISTUTILS_PRECEDENCE.contains(&hook.sha256)
            {
                let shim = Requirement::Recorded {
                    distribution: Some("setuptools"),
                    file: "_distutils_hack/__init__.py".to_owned(),
                };
                return found(
                    "setuptools-distutils-precedence",
                    &["SETUPTOOLS_USE_DISTUTILS"],
                    vec![shim],
                );
            }
            if hook.file_name == "_virtualenv.pth" && line == "import _virtualenv" {
                let module = Requirement::Pinned {
                    file: "_virtualenv.py".to_owned(),
                    sha256: &VIRTUALENV_MODULE,
                };
                return found("virtualenv", &[], vec![module]);
            }
            if let Some(finder) = setuptools_editable_finder(hook.file_name, line) {
                let module = Requirement::Recorded {
                    distribution: None,
                    file: format!("{finder}.py"),
                };
                return found("setuptools-editable-finder", &[], vec![module]);
            }
            if hook.file_name.ends_with("-nspkg.pth") {
                if let Some(package) = setuptools_nspkg_package(line) {
                    let top = package.split('.').next().unwrap_or(package).to_owned();
                    return found(
                        "setuptools-nspkg",
                        &[],
                        vec![Requirement::Namespace { package: top }],
                    );
                }
            }
            None
        }
        HookKind::Sitecustomize
            if hook.file_name == "sitecustomize.py"
                && hook.sha256 == DEBIAN_APPORT_SITECUSTOMIZE =>
        {
            let hook_module = Requirement::AbsentOrUnder {
                module: "apport_python_hook",
                dir: "/usr/lib/python3/dist-packages",
            };
            found("debian-apport-sitecustomize", &[], vec![hook_module])
        }
        _ => None,
    }
}

/// `import __editable___NAME_finder; __editable___NAME_finder.install()` in
/// `__editable__.NAME.pth`, as setuptools' PEP 660 backend writes it (64.0.0 and later): the
/// finder module's name.
fn setuptools_editable_finder<'a>(file_name: &str, line: &'a str) -> Option<&'a str> {
    if !file_name.starts_with("__editable__.") {
        return None;
    }
    let (module, call) = line.strip_prefix("import ")?.split_once("; ")?;
    let identifier = module
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let exact = identifier
        && module.starts_with("__editable___")
        && module.ends_with("_finder")
        && call == format!("{module}.install()");
    exact.then_some(module)
}

/// The one-line namespace-package template of setuptools' `namespaces.py`, for a package name
/// taken from the line itself, compared whole: the package's name.
fn setuptools_nspkg_package(line: &str) -> Option<&str> {
    let start = line.find("sys.modules.setdefault('")? + "sys.modules.setdefault('".len();
    let package = &line[start..start + line[start..].find('\'')?];
    let valid = !package.is_empty()
        && package.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    (valid && line == nspkg_line(package)).then_some(package)
}

fn nspkg_line(package: &str) -> String {
    let parts: Vec<String> = package.split('.').map(|p| format!("'{p}'")).collect();
    let tuple = if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    };
    let mut line = format!(
        "import sys, types, os;has_mfs = sys.version_info > (3, 5);\
         p = os.path.join(sys._getframe(1).f_locals['sitedir'], *{tuple});\
         importlib = has_mfs and __import__('importlib.util');\
         has_mfs and __import__('importlib.machinery');\
         m = has_mfs and sys.modules.setdefault('{package}', importlib.util.module_from_spec(\
         importlib.machinery.PathFinder.find_spec('{package}', [os.path.dirname(p)])));\
         m = m or sys.modules.setdefault('{package}', types.ModuleType('{package}'));\
         mp = (m or []) and m.__dict__.setdefault('__path__',[]);\
         (p not in mp) and mp.append(p)"
    );
    if let Some((parent, child)) = package.rsplit_once('.') {
        line.push_str(&format!(
            ";m and setattr(sys.modules['{parent}'], '{child}', m)"
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(file_name: &str, line: &str, sha256: &str) -> Option<&'static str> {
        let facts = HookFacts {
            kind: HookKind::PthCode,
            file_name,
            line_text: Some(line),
            sha256,
            owner: None,
            signals: &[],
        };
        match_baseline(&facts).map(|m| m.name)
    }

    #[test]
    fn protobuf_nspkg_line_matches_and_a_suffix_does_not() {
        let shipped = "import sys, types, os;has_mfs = sys.version_info > (3, 5);p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('google',));importlib = has_mfs and __import__('importlib.util');has_mfs and __import__('importlib.machinery');m = has_mfs and sys.modules.setdefault('google', importlib.util.module_from_spec(importlib.machinery.PathFinder.find_spec('google', [os.path.dirname(p)])));m = m or sys.modules.setdefault('google', types.ModuleType('google'));mp = (m or []) and m.__dict__.setdefault('__path__',[]);(p not in mp) and mp.append(p)\n";
        assert_eq!(
            code("protobuf-3.20.3-py3.8-nspkg.pth", shipped, ""),
            Some("setuptools-nspkg")
        );
        let tampered = format!("{};steal()", shipped.trim_end());
        assert_eq!(code("protobuf-3.20.3-py3.8-nspkg.pth", &tampered, ""), None);
    }

    #[test]
    fn exact_lines_only() {
        assert_eq!(
            code("_virtualenv.pth", "import _virtualenv", ""),
            Some("virtualenv")
        );
        assert_eq!(code("_virtualenv.pth", "import _virtualenv; x()", ""), None);
        assert_eq!(code("other.pth", "import _virtualenv", ""), None);
        let finder = "import __editable___demo_1_0_finder; __editable___demo_1_0_finder.install()";
        assert_eq!(
            code("__editable__.demo-1.0.pth", finder, ""),
            Some("setuptools-editable-finder")
        );
        let other = "import __editable___demo_1_0_finder; __editable___evil_finder.install()";
        assert_eq!(code("__editable__.demo-1.0.pth", other, ""), None);
        let hash = DISTUTILS_PRECEDENCE[1];
        assert_eq!(
            code("distutils-precedence.pth", "import os", hash),
            Some("setuptools-distutils-precedence")
        );
        assert_eq!(code("distutils-precedence.pth", "import os", "00"), None);
    }
}
