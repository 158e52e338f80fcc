//! Helpers shared by the command-line tests: run the real binary, read its output.

use std::process::{Command, Output};

/// Runs `synod ARGS` and waits for it.
pub fn synod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("the synod binary runs")
}

/// Its standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
