//! The progress bar: drawn on stderr only when both stdout and stderr are terminals, updated by
//! the reporter a few times a second (never per record). Result lines printed while it is shown
//! go through `println`, which suspends the bar so the two never mix.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::reporter::print_stdout;

pub struct Progress {
    bar: Option<ProgressBar>,
}

/// What the bar counts toward.
pub enum Goal {
    Records(u64),
    Millis(u64),
    Open,
}

impl Progress {
    pub fn new(goal: Goal) -> Progress {
        let tty = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        if !tty || std::env::var_os("KBENCH_NO_PROGRESS").is_some() {
            return Progress { bar: None };
        }
        let (len, template) = match goal {
            Goal::Records(n) => (
                Some(n),
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records {msg}",
            ),
            Goal::Millis(ms) => (Some(ms), "{spinner} [{elapsed_precise}] {wide_bar} {msg}"),
            Goal::Open => (None, "{spinner} [{elapsed_precise}] {msg}"),
        };
        let bar = match len {
            Some(l) => {
                ProgressBar::with_draw_target(Some(l), ProgressDrawTarget::stderr_with_hz(4))
            }
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4)),
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let style =
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(if no_color {
            style.progress_chars("#>-")
        } else {
            style.progress_chars("=> ")
        });
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    pub fn update(&self, pos: u64, msg: String) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            b.set_message(msg);
        }
    }

    /// Prints a result line on stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| print_stdout(line)),
            None => print_stdout(line),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
