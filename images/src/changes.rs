//! `import --change`: the Dockerfile instructions that only touch the image config.

use oci_spec::image::Config;

use crate::Error;

/// Applies `CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `EXPOSE`, `USER` or `VOLUME` in Dockerfile
/// syntax.
pub fn apply(config: &mut Config, change: &str) -> Result<(), Error> {
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
        _ => return Err(bad(
            "unsupported instruction (supported: CMD, ENTRYPOINT, ENV, EXPOSE, STOPSIGNAL, USER, \
                 VOLUME, WORKDIR)",
        )),
    }
    Ok(())
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
            apply(&mut c, ch).unwrap();
        }
        c
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
        let mut c = Config::default();
        assert!(apply(&mut c, "RUN rm -rf /").is_err());
        assert!(apply(&mut c, "EXPOSE http").is_err());
        assert!(apply(&mut c, "CMD").is_err());
    }
}
