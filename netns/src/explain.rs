//! The `--explain` sink: every plumbing operation reports itself here, as the shell command that
//! would do the same, at the moment it is performed.

type Sink = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
pub struct Explain(Option<Sink>);

impl Explain {
    /// Says nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Prints each step to stderr, one bash-runnable line each.
    pub fn stderr() -> Self {
        Self(Some(Box::new(|line| eprintln!("{line}"))))
    }

    /// Sends each step to `f` (tests, the topology view).
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Reports one step; the line is only built when someone listens.
    /// Whether anything is said, for steps that must keep their lines until later.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn say(&self, line: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            sink(&line());
        }
    }
}
