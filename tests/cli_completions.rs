//! `kbench completions SHELL`: a completion script on stdout for each shell clap_complete
//! knows, naming every subcommand and flag; bash's is sourced for real and registers.

use assert_cmd::Command;
use predicates::prelude::*;

const SUBCOMMANDS: &[&str] = &[
    "produce",
    "consume",
    "e2e",
    "run",
    "broker",
    "compare",
    "merge",
    "report",
    "completions",
];

fn script(shell: &str) -> String {
    let out = Command::cargo_bin("kbench")
        .unwrap()
        .args(["completions", shell])
        .assert()
        .code(0)
        .stderr("")
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("a UTF-8 script")
}

#[test]
fn each_shell_gets_a_script_that_names_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let s = script(shell);
        assert!(s.len() > 1000, "{shell}: a {}-byte script", s.len());
        for sub in SUBCOMMANDS {
            assert!(s.contains(sub), "{shell}: '{sub}' is not completed");
        }
        // Flags of the subcommands too, not only their names.
        for flag in ["max-regression", "reporting-interval", "bootstrap-server"] {
            assert!(s.contains(flag), "{shell}: '--{flag}' is not completed");
        }
    }
}

#[test]
fn the_bash_script_parses_and_registers_kbench() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kbench.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p kbench", file.display()))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_kbench"));
}

#[test]
fn an_unknown_shell_exits_2_listing_the_shells() {
    Command::cargo_bin("kbench")
        .unwrap()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tcsh"))
        .stderr(predicate::str::contains(
            "bash, elvish, fish, powershell, zsh",
        ));
}

#[test]
fn help_says_how_to_install_the_script() {
    Command::cargo_bin("kbench")
        .unwrap()
        .args(["completions", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "bash-completion/completions/kbench",
        ))
        .stdout(predicate::str::contains(
            ".config/fish/completions/kbench.fish",
        ));
}
