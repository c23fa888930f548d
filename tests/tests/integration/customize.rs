//! `sitecustomize` reached through `PYTHONPATH` or in a venv's site-packages, and
//! `usercustomize` in the user site: denied by default, allowed by a policy entry, and in the
//! allowed case run from the verified source; sent to the sandbox, denied for what they tried
//! or applied for their `sys.path` effects without running.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sitegate_tests::{assert_ran, pythons, run, OutputText, Python, Sandbox};

use crate::sandbox::{explain_hook, hooks_of, lookups, outcome_name, prepared};

#[test]
fn sitecustomize_through_pythonpath() {
    let Some(python) = pythons().into_iter().find(|p| p.version >= (3, 8)) else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    let hooks = sandbox.path().join("apm");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::write(
        hooks.join("sitecustomize.py"),
        "print('sitecustomize ran')\n",
    )
    .unwrap();
    let program = ["-c", "print('program')"];

    let plain = run(sandbox
        .command(&venv.python)
        .args(program)
        .env("PYTHONPATH", &hooks));
    assert_eq!(plain.stdout_text(), "sitecustomize ran\nprogram\n");

    let denied = run(sandbox
        .guarded(None, &venv.python)
        .args(program)
        .env("PYTHONPATH", &hooks));
    assert_ran(&denied, "program\n", "unknown-customize-module");
    assert!(
        denied.stderr_text().contains("sitecustomize.py"),
        "{}",
        denied.stderr_text()
    );

    let policy = sandbox.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nkind = \"sitecustomize\"\nfile = \"sitecustomize.py\"\n",
    )
    .unwrap();
    let allowed = run(sandbox
        .guarded(Some(&policy), &venv.python)
        .args(program)
        .env("PYTHONPATH", &hooks));
    assert_eq!(
        allowed.stdout_text(),
        "sitecustomize ran\nprogram\n",
        "{}",
        allowed.stderr_text()
    );

    // `-E` makes the interpreter ignore `PYTHONPATH`, so there is nothing to find.
    let ignored = run(sandbox
        .guarded(None, &venv.python)
        .arg("-E")
        .args(program)
        .env("PYTHONPATH", &hooks));
    assert_eq!(ignored.stdout_text(), "program\n");
    assert!(
        !ignored.stderr_text().contains("sitecustomize"),
        "{}",
        ignored.stderr_text()
    );
}

#[test]
fn usercustomize_in_the_user_site() {
    let Some(python) = pythons().into_iter().find(|p| p.label != "debian-3.11") else {
        return;
    };
    let sandbox = Sandbox::new();
    let user_base = sandbox.path().join("userbase");
    let user_site = run(sandbox
        .command(&python.path)
        .args(["-c", "import site; print(site.getusersitepackages())"])
        .env("PYTHONUSERBASE", &user_base));
    let user_site = std::path::PathBuf::from(user_site.stdout_text().trim());
    std::fs::create_dir_all(&user_site).unwrap();
    std::fs::write(
        user_site.join("usercustomize.py"),
        "print('usercustomize ran')\n",
    )
    .unwrap();
    let program = ["-c", "print('program')"];

    let plain = run(sandbox
        .command(&python.path)
        .args(program)
        .env("PYTHONUSERBASE", &user_base));
    assert!(
        plain.stdout_text().contains("usercustomize ran"),
        "{}",
        plain.stdout_text()
    );

    let denied = run(sandbox
        .guarded(None, &python.path)
        .args(program)
        .env("PYTHONUSERBASE", &user_base));
    assert!(
        !denied.stdout_text().contains("usercustomize ran"),
        "{}",
        denied.stdout_text()
    );
    assert!(denied.stdout_text().ends_with("program\n"));
    assert!(
        denied.stderr_text().contains("usercustomize.py"),
        "{}",
        denied.stderr_text()
    );

    let policy = sandbox.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nkind = \"usercustomize\"\nfile = \"usercustomize.py\"\n",
    )
    .unwrap();
    let allowed = run(sandbox
        .guarded(Some(&policy), &python.path)
        .args(program)
        .env("PYTHONUSERBASE", &user_base));
    assert!(
        allowed
            .stdout_text()
            .contains("usercustomize ran\nprogram\n"),
        "{}{}",
        allowed.stdout_text(),
        allowed.stderr_text()
    );

    // `-s` turns the user site off: nothing to decide.
    let off = run(sandbox
        .guarded(None, &python.path)
        .args(["-s", "-c", "print('program')"])
        .env("PYTHONUSERBASE", &user_base));
    assert!(
        !off.stderr_text().contains("usercustomize"),
        "{}",
        off.stderr_text()
    );
}

/// What the module's sandboxed result is compared with.
enum Reference {
    /// The interpreter started without sitegate.
    Unguarded,
    /// sitegate with the module allowed to run natively: for a base interpreter, whose own
    /// site-packages may hold hooks sitegate denies by default, so that only the module's
    /// treatment differs.
    AllowedNatively,
}

/// A customize module planted for one test, and how to start the interpreter that finds it.
struct Customize {
    sandbox: Sandbox,
    python: PathBuf,
    /// `sitecustomize` or `usercustomize`.
    kind: &'static str,
    /// The module's file.
    module: PathBuf,
    environment: Vec<(&'static str, OsString)>,
    reference: Reference,
}

impl Customize {
    /// `sitecustomize.py` in the site-packages of a venv of the oldest pyenv CPython (Debian's
    /// own `sitecustomize` would come first on its `sys.path`).
    fn in_venv() -> Option<Customize> {
        let python = pyenv_python()?;
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        Some(Customize {
            python: venv.python,
            kind: "sitecustomize",
            module: venv.site_packages.join("sitecustomize.py"),
            environment: Vec::new(),
            reference: Reference::Unguarded,
            sandbox,
        })
    }

    /// `usercustomize.py` in a user site under the test's directory (`PYTHONUSERBASE`), for the
    /// oldest pyenv CPython itself: in a venv without system site packages the user site is off.
    fn in_user_site() -> Option<Customize> {
        let python = pyenv_python()?;
        let sandbox = Sandbox::new();
        let environment = vec![(
            "PYTHONUSERBASE",
            sandbox.path().join("userbase").into_os_string(),
        )];
        let site = run(sandbox
            .command(&python.path)
            .envs(environment.iter().cloned())
            .args([
                "-c",
                "import site; print(site.ENABLE_USER_SITE); print(site.getusersitepackages())",
            ]));
        let text = site.stdout_text();
        let (enabled, user_site) = text.trim().split_once('\n').expect("two lines");
        if enabled != "True" {
            eprintln!("skipping: the user site of {} is off", python.label);
            return None;
        }
        let user_site = PathBuf::from(user_site);
        assert!(
            user_site.starts_with(sandbox.path()),
            "{}",
            user_site.display()
        );
        std::fs::create_dir_all(&user_site).unwrap();
        Some(Customize {
            python: python.path,
            kind: "usercustomize",
            module: user_site.join("usercustomize.py"),
            environment,
            reference: Reference::AllowedNatively,
            sandbox,
        })
    }

    fn policy(&self, mode: &str) {
        std::fs::write(
            self.sandbox.path().join("policy.toml"),
            format!(
                "[[allow]]\nkind = \"{}\"\nfile = \"{}.py\"\nmode = \"{mode}\"\n",
                self.kind, self.kind
            ),
        )
        .unwrap();
    }

    /// The interpreter without sitegate.
    fn unguarded(&self) -> Command {
        let mut command = self.sandbox.command(&self.python);
        command.envs(self.environment.iter().cloned());
        command
    }

    /// `sitegate exec` of the interpreter, under the test's policy.
    fn guarded(&self) -> Command {
        let mut command = self.sandbox.sitegate();
        command
            .envs(self.environment.iter().cloned())
            .arg("--policy")
            .arg(self.sandbox.path().join("policy.toml"))
            .args(["exec", "--"])
            .arg(&self.python);
        command
    }

    /// `sitegate explain --format json` on the module: its hook.
    fn explain(&self, environment: &[(&str, &str)]) -> Value {
        let mut command = explain_hook(&self.sandbox, &self.python, &self.module, "json");
        command
            .envs(self.environment.iter().cloned())
            .envs(environment.iter().copied());
        let hooks = hooks_of(&run(&mut command));
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        assert_eq!(hooks[0]["kind"], self.kind);
        hooks[0].clone()
    }
}

fn pyenv_python() -> Option<Python> {
    let found = pythons().into_iter().find(|p| p.label != "debian-3.11");
    if found.is_none() {
        eprintln!("skipping: no pyenv CPython 3.8+");
    }
    found
}

const FAKE_SECRET: &str = "sk-fake-customize-secret";

/// A module that only reads a fake secret the test set, and (natively) copies it into a marker
/// file: denied for the read, and it never runs under `sitegate exec`.
fn reading_a_secret_is_denied_and_never_runs(customize: Customize) {
    prepared(&customize.sandbox);
    let marker = customize.sandbox.path().join("secret-copied");
    std::fs::write(
        &customize.module,
        format!(
            "import os\nsecret = os.environ.get('OPENAI_API_KEY', '')\n\
             with open({:?}, 'w') as marker:\n    marker.write(secret)\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    customize.policy("sandbox");
    let program = ["-c", "print('program')"];

    // Natively the module runs and gets the secret: what sitegate must prevent.
    let plain = run(customize
        .unguarded()
        .args(program)
        .env("OPENAI_API_KEY", FAKE_SECRET));
    assert!(plain.status.success(), "{}", plain.stderr_text());
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some(FAKE_SECRET),
        "the module did not run unguarded; the test would prove nothing"
    );
    std::fs::remove_file(&marker).unwrap();

    let hook = customize.explain(&[("OPENAI_API_KEY", FAKE_SECRET)]);
    assert_eq!(hook["verdict"], "denied", "{hook}");
    assert_eq!(hook["reason"], "capability-denied", "{hook}");
    assert!(
        lookups(&hook).contains(&("OPENAI_API_KEY".to_owned(), false)),
        "{hook}"
    );
    let message = hook["message"].as_str().unwrap();
    assert!(
        message.contains("read environment variable `OPENAI_API_KEY`"),
        "{message}"
    );
    assert!(!hook.to_string().contains(FAKE_SECRET), "{hook}");
    assert!(!marker.exists());

    let guarded = run(customize
        .guarded()
        .args(program)
        .env("OPENAI_API_KEY", FAKE_SECRET));
    assert!(guarded.status.success(), "{}", guarded.stderr_text());
    assert!(
        guarded.stdout_text().ends_with("program\n"),
        "{}",
        guarded.stdout_text()
    );
    assert!(
        !marker.exists(),
        "the module ran natively: {}",
        guarded.stderr_text()
    );
    let warnings = guarded.stderr_text();
    assert!(
        warnings.contains("capability-denied")
            && warnings.contains(&format!("{}.py", customize.kind)),
        "{warnings}"
    );
}

/// A module that only appends a directory to `sys.path` (and prints, which only shows
/// natively: a file write would be an attempt the sandbox denies): allowed for its effects,
/// which `sitegate exec` applies without running it.
fn extending_sys_path_is_applied_without_running(customize: Customize) {
    prepared(&customize.sandbox);
    let extra = customize.sandbox.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    let extra = extra.display().to_string();
    std::fs::write(
        &customize.module,
        format!("import sys\nsys.path.append({extra:?})\nprint('RAN-NATIVELY')\n"),
    )
    .unwrap();
    customize.policy("sandbox");

    let hook = customize.explain(&[]);
    assert_eq!(outcome_name(&hook), "completed", "{hook}");
    assert_eq!(hook["verdict"], "effects", "{hook}");
    assert_eq!(hook["reason"], "sandbox-effects", "{hook}");
    let effects = &hook["sandbox"]["effects"];
    assert_eq!(
        effects["path_added"][0]["entry"],
        extra.as_str(),
        "{effects}"
    );
    assert_eq!(effects["path_added"].as_array().unwrap().len(), 1);
    assert_eq!(effects["modules_loaded"], json!([]), "{effects}");

    let program = ["-c", "import json, sys; print(json.dumps(sys.path))"];
    let guarded = run(customize.guarded().args(program));
    let reference = match customize.reference {
        Reference::Unguarded => run(customize.unguarded().args(program)),
        Reference::AllowedNatively => {
            customize.policy("native");
            run(customize.guarded().args(program))
        }
    };
    assert!(
        reference.stdout_text().contains("RAN-NATIVELY"),
        "the module did not run natively; the test would prove nothing: {}",
        reference.stderr_text()
    );
    assert!(
        !guarded.stdout_text().contains("RAN-NATIVELY"),
        "the module ran natively: {}",
        guarded.stdout_text()
    );
    let path = |output: &Output| -> Value {
        let text = output.stdout_text();
        serde_json::from_str(text.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}: {text}{}", output.stderr_text()))
    };
    let reference_path = path(&reference);
    assert!(
        reference_path.as_array().unwrap().contains(&json!(extra)),
        "{reference_path}"
    );
    assert_eq!(path(&guarded), reference_path, "{}", guarded.stderr_text());
}

#[test]
fn sitecustomize_reading_a_secret_in_the_sandbox() {
    if let Some(customize) = Customize::in_venv() {
        reading_a_secret_is_denied_and_never_runs(customize);
    }
}

#[test]
fn sitecustomize_extending_sys_path_in_the_sandbox() {
    if let Some(customize) = Customize::in_venv() {
        extending_sys_path_is_applied_without_running(customize);
    }
}

#[test]
fn usercustomize_reading_a_secret_in_the_sandbox() {
    if let Some(customize) = Customize::in_user_site() {
        reading_a_secret_is_denied_and_never_runs(customize);
    }
}

#[test]
fn usercustomize_extending_sys_path_in_the_sandbox() {
    if let Some(customize) = Customize::in_user_site() {
        extending_sys_path_is_applied_without_running(customize);
    }
}
