//! The binary's command line and configuration errors, run as a process.
#![allow(clippy::expect_used, reason = "test set-up fails loudly")]

use std::process::Command;

fn switchyard(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args).current_dir(dir.path());
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHYARD") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run switchyard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, stdout, _) = switchyard(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for command in ["serve", "migrate", "import", "keys", "config"] {
        assert!(stdout.contains(command), "--help lacks {command}: {stdout}");
    }
    let (code, stdout, _) = switchyard(&["keys", "create", "--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--user"));
}

#[test]
fn configuration_errors_name_the_field_and_exit_2() {
    let (code, _, stderr) = switchyard(&["config"], &[("SWITCHYARD__SERVER__LISTEN", "nowhere")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("server.listen") && stderr.contains("SWITCHYARD__SERVER__LISTEN"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[database]\nurll = \"x\"\n").expect("write");
    let (code, _, stderr) = switchyard(&["--config", file.to_str().expect("utf-8"), "serve"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`database.urll`"), "{stderr}");

    std::fs::write(&file, "[state]\nbackend = \"etcd\"\n").expect("write");
    let (code, _, stderr) =
        switchyard(&["--config", file.to_str().expect("utf-8"), "migrate"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("state.backend"), "{stderr}");
}

#[test]
fn config_shows_no_secret() {
    let (code, stdout, stderr) = switchyard(
        &["config"],
        &[
            ("SWITCHYARD__ADMIN__TOKEN", "admin-token-do-not-print"),
            (
                "SWITCHYARD__DATABASE__URL",
                "postgres://sy:db-password-xyz@127.0.0.1/sy",
            ),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("listen"));
    assert!(!stdout.contains("admin-token-do-not-print"), "{stdout}");
    assert!(!stdout.contains("db-password-xyz"), "{stdout}");
}
