//! One batch of firewall changes applied by one process (`iptables-restore --noflush --wait` or
//! `nft -f -`) reading it on stdin, so that the caller can do netlink work meanwhile (both
//! mostly wait on the kernel), or already applied over netlink (a container's map elements).
//! It is explained as the program with the batch as a here-document, once it is done, so
//! `--explain` reads in the order a learner would type the commands and replays as printed.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};
use crate::explain::{heredoc, Explain};

pub struct Batch {
    child: Option<Child>,
    program: &'static str,
    explained: Option<String>,
    /// How a batch applied without a process went.
    failure: Option<Error>,
    /// Another batch running at the same time (another family's tables).
    then: Option<Box<Batch>>,
}

impl Batch {
    /// A batch with nothing to do.
    pub fn none() -> Self {
        Self {
            child: None,
            program: "",
            explained: None,
            failure: None,
            then: None,
        }
    }

    /// A batch already applied, with `outcome`, explained as `program args` reading `input`.
    pub fn applied(
        ex: &Explain,
        program: &'static str,
        args: &[&str],
        input: &str,
        outcome: Result<()>,
    ) -> Self {
        Self {
            child: None,
            program,
            explained: ex.is_on().then(|| explained(program, args, input)),
            failure: outcome.err(),
            then: None,
        }
    }

    /// Starts `program args` on `input`.
    pub fn start(ex: &Explain, program: &'static str, args: &[&str], input: &str) -> Result<Self> {
        if input.is_empty() {
            return Ok(Self::none());
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(program, format!("{e} (is {program} installed?)")))?;
        // A batch is far smaller than a pipe buffer: this write does not wait for the reader.
        let written = child.stdin.take().unwrap().write_all(input.as_bytes());
        let batch = Batch {
            child: Some(child),
            program,
            explained: ex.is_on().then(|| explained(program, args, input)),
            failure: None,
            then: None,
        };
        if let Err(e) = written {
            // A program that refused and exited early says why on stderr; a broken pipe less.
            return Err(batch
                .wait(&Explain::off())
                .err()
                .unwrap_or_else(|| failed(program, e.to_string())));
        }
        Ok(batch)
    }

    /// Both batches, waited for together: `other`'s lines are said after this one's.
    pub fn and(mut self, other: Batch) -> Self {
        match &mut self.then {
            Some(next) => {
                let next = std::mem::replace(next, Box::new(Batch::none()));
                self.then = Some(Box::new(next.and(other)));
            }
            None => self.then = Some(Box::new(other)),
        }
        self
    }

    /// Explains the batch's lines now rather than when it is waited for.
    pub fn said(mut self, ex: &Explain) -> Self {
        self.say(ex);
        self
    }

    fn say(&mut self, ex: &Explain) {
        if let Some(text) = self.explained.take() {
            ex.say(|| text);
        }
        if let Some(next) = &mut self.then {
            next.say(ex);
        }
    }

    pub fn wait(mut self, ex: &Explain) -> Result<()> {
        self.say(ex);
        let mine = self.wait_own();
        let next = self.then.take().map_or(Ok(()), |next| next.wait(ex));
        mine.and(next)
    }

    fn wait_own(&mut self) -> Result<()> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child
            .wait_with_output()
            .map_err(|e| failed(self.program, e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(failed(self.program, first_error(&err)))
    }
}

fn explained(program: &str, args: &[&str], input: &str) -> String {
    heredoc(&format!("{program} {}", args.join(" ")), input)
}

/// The line of a tool's complaint that says what went wrong (nft prints the offending command
/// and a caret line after it).
fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("Error") || l.contains("error"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("failed")
        .trim()
        .to_string()
}

impl Drop for Batch {
    /// A batch left behind by an early return still finishes before anything undoes it.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

pub(crate) fn failed(program: &str, why: String) -> Error {
    Error::Firewall {
        what: program.to_string(),
        why,
    }
}

/// `program args`'s standard output.
pub fn output(program: &'static str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| failed(program, e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            program,
            first_error(&String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
