//! The command line as users see it: `--help` and a scan table, snapshotted with temporary
//! paths filtered out.

use sitegate_tests::{pythons, run, OutputText, Sandbox};

#[test]
fn help_lists_commands_and_exit_statuses() {
    let sandbox = Sandbox::new();
    let help = run(sandbox.sitegate().arg("--help").env("COLUMNS", "100"));
    assert!(help.status.success());
    insta::assert_snapshot!("help", help.stdout_text());
}

#[test]
fn scan_table_of_a_small_venv() {
    let Some(python) = pythons().into_iter().find(|p| p.label.starts_with("3.12")) else {
        eprintln!("skipping: no pyenv Python 3.12");
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    let extra = sandbox.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    venv.write("paths.pth", format!("{}\n", extra.display()));
    venv.write(
        "telemetry.pth",
        "import os; exec(os.environ.get('X', ''))\n",
    );
    let scan = run(sandbox
        .sitegate()
        .args(["scan", "--python"])
        .arg(&venv.python));
    assert_eq!(scan.status.code(), Some(1));
    let root = sandbox.path().display().to_string();
    insta::with_settings!({filters => vec![(root.as_str(), "[TEMP]")]}, {
        insta::assert_snapshot!("scan_table", scan.stdout_text());
    });
}
