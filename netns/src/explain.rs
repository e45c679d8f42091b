//! The `--explain` sink: every plumbing operation reports itself here, as the shell command that
//! would do the same, at the moment it is performed.
//!
//! What is said is a script: run with bash on a fresh host, it builds the same thing. So a step
//! that minibox found already done is said too, under a comment line that marks it
//! ([`Explain::already`]), and a batch fed to a program's stdin (`iptables-restore`, `nft -f -`)
//! is said as a here-document ([`heredoc`]). Anything else is a comment ([`Explain::note`]).

type Sink = Box<dyn Fn(&str) + Send + Sync>;

/// Marks a step minibox found in place: the next line is not redone now, only shown.
pub const ALREADY: &str = "# already in place (not redone):";

#[derive(Default)]
pub struct Explain(Option<Sink>);

impl Explain {
    /// Says nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Prints each step to stderr.
    pub fn stderr() -> Self {
        Self(Some(Box::new(|line| eprintln!("{line}"))))
    }

    /// Sends each step to `f` (tests, the topology view).
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// Whether anything is said, for steps that must keep their lines until later.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Reports a step done now; the line is only built when someone listens.
    pub fn say(&self, line: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            sink(&line());
        }
    }

    /// Reports a step that was found done already, marked as such, so that the script still
    /// builds everything on a host that has none of it.
    pub fn already(&self, line: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            sink(&format!("{ALREADY}\n{}", line()));
        }
    }

    /// A comment: each line of `text` prefixed with `# `.
    pub fn note(&self, text: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            let text = text();
            let lines: Vec<String> = text.lines().map(|l| format!("# {l}")).collect();
            sink(&lines.join("\n"));
        }
    }
}

/// `command <<'EOF'` with `input` and `EOF`: a batch as the shell feeds it.
pub fn heredoc(command: &str, input: &str) -> String {
    let input = input.strip_suffix('\n').unwrap_or(input);
    format!("{command} <<'EOF'\n{input}\nEOF")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn steps_in_place_stay_runnable_under_a_marker() {
        let said = Arc::new(Mutex::new(Vec::new()));
        let to = said.clone();
        let ex = Explain::to(move |l| to.lock().unwrap().push(l.to_string()));
        ex.say(|| "ip link set lo up".into());
        ex.already(|| "sysctl -w net.ipv4.ip_forward=1".into());
        ex.note(|| "two\nlines".into());
        ex.say(|| heredoc("iptables-restore --noflush", "*nat\nCOMMIT\n"));
        let script = said.lock().unwrap().join("\n");
        assert_eq!(
            script,
            format!(
                "ip link set lo up\n{ALREADY}\nsysctl -w net.ipv4.ip_forward=1\n# two\n# lines\n\
                 iptables-restore --noflush <<'EOF'\n*nat\nCOMMIT\nEOF"
            )
        );
    }
}
