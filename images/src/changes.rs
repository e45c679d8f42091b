//! `import --change`: the Dockerfile instructions that only touch the image config.

use oci_spec::image::Config;
use serde_json::{Map, Value};

use crate::Error;

/// The fields of an image's `config` that oci-spec's [`Config`] has no place for (Docker's
/// `Healthcheck`, `Shell`, `OnBuild`, ...), kept as the raw JSON so a new image carries them.
pub type Extra = Map<String, Value>;

/// The fields of the raw image config `blob`'s `config` that `typed` (parsed from it) dropped.
pub(crate) fn extra_of(blob: &[u8], typed: &Config) -> Extra {
    let Ok(Value::Object(mut raw)) = serde_json::from_slice::<Value>(blob) else {
        return Extra::new();
    };
    let Some(Value::Object(mut section)) = raw.remove("config") else {
        return Extra::new();
    };
    if let Ok(Value::Object(kept)) = serde_json::to_value(typed) {
        section.retain(|k, _| !kept.contains_key(k));
    }
    section
}

/// Applies `CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `EXPOSE`, `USER`, `VOLUME`, `STOPSIGNAL` or
/// `HEALTHCHECK` in Dockerfile syntax; `HEALTHCHECK` goes to `extra`.
pub fn apply(config: &mut Config, extra: &mut Extra, change: &str) -> Result<(), Error> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(|c: char| c.is_whitespace())
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((change, ""));
    let bad = |why: &str| Error::invalid(format!("--change {change:?}: {why}"));
    if rest.is_empty() {
        return Err(bad("missing arguments"));
    }
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.set_cmd(Some(command(rest)));
        }
        "ENTRYPOINT" => {
            config.set_entrypoint(Some(command(rest)));
        }
        "ENV" => {
            let mut env = config.env().clone().unwrap_or_default();
            for (k, v) in env_pairs(rest).map_err(|e| bad(&e))? {
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            config.set_env(Some(env));
        }
        "WORKDIR" => {
            let dir = unquote_one(rest).map_err(|e| bad(&e))?;
            let dir = if dir.starts_with('/') {
                dir
            } else {
                let base = config.working_dir().clone().unwrap_or_else(|| "/".into());
                format!("{}/{dir}", base.trim_end_matches('/'))
            };
            config.set_working_dir(Some(dir));
        }
        "EXPOSE" => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            for p in words(rest).map_err(|e| bad(&e))? {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_port = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
                let valid = match port.split_once('-') {
                    Some((a, b)) => valid_port(a) && valid_port(b),
                    None => valid_port(port),
                };
                if !valid || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                    return Err(bad(&format!(
                        "invalid port {p:?} (want PORT[/tcp|udp|sctp])"
                    )));
                }
                let key = format!("{port}/{proto}");
                if !ports.contains(&key) {
                    ports.push(key);
                }
            }
            config.set_exposed_ports(Some(ports));
        }
        "STOPSIGNAL" => {
            config.set_stop_signal(Some(unquote_one(rest).map_err(|e| bad(&e))?));
        }
        "HEALTHCHECK" => {
            extra.insert(
                "Healthcheck".into(),
                healthcheck(rest).map_err(|e| bad(&e))?,
            );
        }
        "USER" => {
            config.set_user(Some(unquote_one(rest).map_err(|e| bad(&e))?));
        }
        "VOLUME" => {
            let mut volumes = config.volumes().clone().unwrap_or_default();
            let paths = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(list) => list,
                Err(_) => words(rest).map_err(|e| bad(&e))?,
            };
            for p in paths {
                if !p.starts_with('/') {
                    return Err(bad(&format!("{p:?} is not an absolute path")));
                }
                if !volumes.contains(&p) {
                    volumes.push(p);
                }
            }
            config.set_volumes(Some(volumes));
        }
        _ => {
            return Err(bad(
                "unsupported instruction (supported: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, \
                 STOPSIGNAL, USER, VOLUME, WORKDIR)",
            ))
        }
    }
    Ok(())
}

/// `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--retries=N] CMD ...` or
/// `HEALTHCHECK NONE`, as Docker records it: `Test` `["CMD", args...]` (JSON form) or
/// `["CMD-SHELL", line]`, durations in nanoseconds.
fn healthcheck(rest: &str) -> Result<Value, String> {
    let mut check = Map::new();
    let mut rest = rest;
    while let Some(option) = rest.strip_prefix("--") {
        let (word, after) = option
            .split_once(char::is_whitespace)
            .unwrap_or((option, ""));
        rest = after.trim_start();
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("--{word} needs a value (--{word}=VALUE)"))?;
        let field = match key {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("--retries={value} is not a count"))?;
                check.insert("Retries".into(), n.into());
                continue;
            }
            _ => return Err(format!("unknown HEALTHCHECK option --{key}")),
        };
        let d = humantime::parse_duration(value)
            .map_err(|_| format!("--{key}={value} is not a duration (30s, 1m30s, 200ms)"))?;
        check.insert(field.into(), (d.as_nanos() as u64).into());
    }
    let (kind, command) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(k, c)| (k, c.trim()));
    let test = match kind.to_ascii_uppercase().as_str() {
        "NONE" if command.is_empty() && check.is_empty() => vec!["NONE".to_string()],
        "CMD" if !command.is_empty() => match self::command(command).as_slice() {
            [sh, c, line] if sh == "/bin/sh" && c == "-c" && !command.starts_with('[') => {
                vec!["CMD-SHELL".to_string(), line.clone()]
            }
            args => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
        },
        _ => return Err("want HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE".into()),
    };
    let mut all = Map::new();
    all.insert("Test".into(), test.into());
    all.extend(check);
    Ok(Value::Object(all))
}

/// JSON form `["a","b"]` as is; anything else is shell form, run by `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.into()]
}

/// `K=V K2="v 2"`, or the legacy `K the rest of the line`.
fn env_pairs(rest: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("ENV needs KEY=VALUE or KEY VALUE")?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

fn unquote_one(rest: &str) -> Result<String, String> {
    let w = words(rest)?;
    Ok(if w.len() == 1 {
        w.into_iter().next().unwrap_or_default()
    } else {
        rest.to_string()
    })
}

/// Splits on blanks, honouring '...', "..." and backslash escapes like the Dockerfile parser.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Config {
        let mut c = Config::default();
        for ch in changes {
            apply(&mut c, &mut Extra::new(), ch).unwrap();
        }
        c
    }

    #[test]
    fn healthcheck_as_docker_records_it() {
        let check = |change: &str| {
            let mut extra = Extra::new();
            apply(&mut Config::default(), &mut extra, change).map(|()| extra["Healthcheck"].clone())
        };
        assert_eq!(
            check("HEALTHCHECK --interval=200ms --retries=2 CMD test -e /tmp/ok").unwrap(),
            serde_json::json!({"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 200_000_000u64,
                "Retries": 2})
        );
        assert_eq!(
            check(r#"HEALTHCHECK --timeout=1m30s CMD ["/bin/check", "-q"]"#).unwrap(),
            serde_json::json!({"Test": ["CMD", "/bin/check", "-q"], "Timeout": 90_000_000_000u64})
        );
        assert_eq!(
            check("healthcheck none").unwrap(),
            serde_json::json!({"Test": ["NONE"]})
        );
        for bad in [
            "HEALTHCHECK --interval=soon CMD true",
            "HEALTHCHECK --every=1s CMD true",
            "HEALTHCHECK CMD",
            "HEALTHCHECK true",
            "HEALTHCHECK --retries=2 NONE",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_and_shell_forms() {
        let c = applied(&[r#"CMD ["/bin/web","a"]"#, "entrypoint echo hi there"]);
        assert_eq!(
            c.cmd().as_deref(),
            Some(&["/bin/web".to_string(), "a".into()][..])
        );
        assert_eq!(
            c.entrypoint().as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), "echo hi there".into()][..])
        );
    }

    #[test]
    fn env_workdir_expose_user() {
        let c = applied(&[
            r#"ENV A=1 B="two words" C=x\ y"#,
            "ENV LEGACY some value",
            "ENV A=3",
            "WORKDIR /srv",
            "WORKDIR app",
            "EXPOSE 8081 53/udp",
            "USER app:app",
        ]);
        let env = c.env().clone().unwrap();
        assert_eq!(env, ["B=two words", "C=x y", "LEGACY=some value", "A=3"]);
        assert_eq!(c.working_dir().as_deref(), Some("/srv/app"));
        assert_eq!(c.exposed_ports().clone().unwrap(), ["8081/tcp", "53/udp"]);
        assert_eq!(c.user().as_deref(), Some("app:app"));
    }

    #[test]
    fn refuses_other_instructions() {
        let (mut c, mut e) = (Config::default(), Extra::new());
        assert!(apply(&mut c, &mut e, "RUN rm -rf /").is_err());
        assert!(apply(&mut c, &mut e, "EXPOSE http").is_err());
        assert!(apply(&mut c, &mut e, "CMD").is_err());
    }
}
