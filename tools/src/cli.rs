//! Command-line reading shared by the subcommands: `--flag VALUE`, `--flag=VALUE`, bare
//! flags and positional arguments, and the one-line errors for bad ones (exit 2, as for a
//! bad server setting).

use std::str::FromStr;

/// Exit code for a bad flag or value, the same as a bad server setting.
pub const EXIT_USAGE: i32 = 2;

/// One argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `--name` or `--name=value` (the value inline, if given so).
    Flag(&'a str, Option<&'a str>),
    /// Anything else.
    Positional(&'a str),
}

/// Walks the arguments of a subcommand.
#[derive(Debug)]
pub struct Args<'a> {
    args: &'a [String],
    next: usize,
}

impl<'a> Args<'a> {
    /// Over `args` (without the subcommand's name).
    pub fn new(args: &'a [String]) -> Args<'a> {
        Args { args, next: 0 }
    }

    /// The value of `flag`: inline (`--flag=v`) or the next argument. `what` names what it
    /// accepts, for the error.
    pub fn value(
        &mut self,
        flag: &str,
        inline: Option<&'a str>,
        what: &str,
    ) -> Result<&'a str, String> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.args.get(self.next) {
            Some(v) => {
                self.next += 1;
                Ok(v)
            }
            None => Err(format!("{flag} needs a value; accepts {what}")),
        }
    }

    /// A value of `flag` parsed as `T` and checked with `ok`; the error names the flag, the
    /// value and what it accepts.
    pub fn parsed<T: FromStr>(
        &mut self,
        flag: &str,
        inline: Option<&'a str>,
        what: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<T, String> {
        let v = self.value(flag, inline, what)?;
        v.parse::<T>()
            .ok()
            .filter(|t| ok(t))
            .ok_or_else(|| invalid(flag, v, what))
    }
}

/// What a subcommand's flags asked for: a run with these settings, or the help text.
#[derive(Debug)]
pub enum Parsed<T> {
    /// Run with these settings.
    Run(T),
    /// Print the help text.
    Help,
}

/// The settings to run with, or the exit code when there is nothing to run: 0 after printing
/// `help()` for `--help`, [`EXIT_USAGE`] after printing a bad flag's one line to stderr, as
/// `{program} {subcommand}: {error}`.
pub fn settings_or_exit<T>(
    program: &str,
    subcommand: &str,
    parsed: Result<Parsed<T>, String>,
    help: impl FnOnce() -> String,
) -> Result<T, i32> {
    match parsed {
        Ok(Parsed::Run(s)) => Ok(s),
        Ok(Parsed::Help) => {
            print!("{}", help());
            Err(0)
        }
        Err(e) => {
            eprintln!("{program} {subcommand}: {e}");
            Err(EXIT_USAGE)
        }
    }
}

/// `--flag: invalid value 'v': accepts WHAT`.
pub fn invalid(flag: &str, value: &str, what: &str) -> String {
    format!("{flag}: invalid value '{value}': accepts {what}")
}

/// The plural ending of a count in the subcommands' sentences: `"s"` unless `n` is 1.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `unknown flag '--x'; accepted: ...`.
pub fn unknown(flag: &str, accepted: &str) -> String {
    format!("unknown flag '{flag}'; accepted: {accepted}")
}

impl<'a> Iterator for Args<'a> {
    type Item = Arg<'a>;

    fn next(&mut self) -> Option<Arg<'a>> {
        let arg = self.args.get(self.next)?;
        self.next += 1;
        Some(match arg.strip_prefix("--") {
            Some(name) if !name.is_empty() => match name.split_once('=') {
                Some((n, v)) => Arg::Flag(&arg[..n.len() + 2], Some(v)),
                None => Arg::Flag(arg, None),
            },
            _ if arg == "-h" => Arg::Flag("--help", None),
            _ => Arg::Positional(arg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_values_and_positionals() {
        let args = strings(&["--chart", "a.svg", "--cpus=2", "file", "-h", "-", "--"]);
        let mut it = Args::new(&args);
        assert_eq!(it.next(), Some(Arg::Flag("--chart", None)));
        assert_eq!(it.value("--chart", None, "PATH"), Ok("a.svg"));
        assert_eq!(it.next(), Some(Arg::Flag("--cpus", Some("2"))));
        assert_eq!(it.next(), Some(Arg::Positional("file")));
        assert_eq!(it.next(), Some(Arg::Flag("--help", None)));
        assert_eq!(it.next(), Some(Arg::Positional("-")));
        assert_eq!(it.next(), Some(Arg::Positional("--")));
        assert_eq!(it.next(), None);
        assert_eq!(
            it.value("--chart", None, "PATH"),
            Err("--chart needs a value; accepts PATH".to_string())
        );
    }

    #[test]
    fn parsed_values() {
        let args = strings(&["3", "x", "0"]);
        let mut it = Args::new(&args);
        let positive = |n: &u32| *n > 0;
        assert_eq!(it.parsed("--n", None, "a number", positive), Ok(3));
        assert_eq!(
            it.parsed("--n", None, "a number", positive),
            Err("--n: invalid value 'x': accepts a number".to_string())
        );
        assert_eq!(
            it.parsed("--n", None, "a number", positive),
            Err("--n: invalid value '0': accepts a number".to_string())
        );
        assert_eq!(it.parsed::<u32>("--n", Some("7"), "", |_| true), Ok(7));
    }
}
