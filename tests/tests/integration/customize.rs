//! `sitecustomize` reached through `PYTHONPATH` and `usercustomize` in the user site: denied
//! by default, allowed by a policy entry, and in the allowed case run from the verified
//! source.

use sitegate_tests::{pythons, run, OutputText, Sandbox};

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
    assert_eq!(
        denied.stdout_text(),
        "program\n",
        "{}",
        denied.stderr_text()
    );
    assert!(
        denied.stderr_text().contains("unknown-customize-module"),
        "{}",
        denied.stderr_text()
    );
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
