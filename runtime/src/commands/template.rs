//! `--format`: the part of Go's text/template that Docker users write, evaluated over a JSON
//! value, shared by every command that takes a format (`inspect -f`, `ps`, `images`, `stats`…).
//!
//! Understood: `{{.A.B}}`, `{{.}}`, `{{$}}`, variables (`$v`, `$v.A`), string and number literals,
//! pipes (`{{.Names | upper}}`), parentheses, `{{range PIPE}}`/`{{range $k, $v := PIPE}}`,
//! `{{if}}`/`{{else}}`, `{{with}}`, `{{end}}`, trim markers `{{-` `-}}`, Docker's functions
//! (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`) and Go's `index`, `len`,
//! `print`, `println`, `printf` (`%s %d %v %q`), `eq`, `ne`, `not`, `and`, `or`.
//! Values print as Go prints them: a missing field `<no value>`, a list `[a b]`, an object
//! `map[k:v]`. A format starting with `table` is a table whose header is the same template over
//! each field's column name (Docker's way); `json` prints each value as a JSON line.

use std::fmt::Write as _;

use serde_json::Value;

/// A template that could not be parsed or run: `template: WHY`.
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct Error(String);

type Result<T> = std::result::Result<T, Error>;

fn err<T>(why: impl Into<String>) -> Result<T> {
    Err(Error(why.into()))
}

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

#[derive(Debug)]
enum Node {
    Text(String),
    Print(Pipe),
    Range {
        vars: Vec<String>,
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    If {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
        with: bool,
    },
}

/// Commands joined by `|`: each one's result is the last argument of the next.
type Pipe = Vec<Vec<Arg>>;

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (no variable) or `$v.A.B`.
    Field(Option<String>, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Pipe),
    /// `(PIPE).A.B`.
    Chain(Pipe, Vec<String>),
}

impl Template {
    /// Parses `text`, turning the two-character escapes `\t` and `\n` a shell leaves in place
    /// into a tab and a newline, as Docker does.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut items = lex(&text)?.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut items)?;
        match end {
            None => Ok(Template(nodes)),
            Some(word) => err(format!("unexpected {{{{{word}}}}}")),
        }
    }

    /// Runs the template over `data`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut scope = Scope {
            root: data,
            vars: Vec::new(),
            header: false,
        };
        run(&self.0, data, &mut scope, &mut out)?;
        Ok(out)
    }
}

/// Renders `rows` by `format`: `table TEMPLATE` (a header from `headers`, the field names'
/// column titles, and the columns aligned), `json` (one JSON object a line), or a template, one
/// line per row. `default` is the table a command prints without `--format`.
pub fn render_rows(format: &str, rows: &[Value], headers: &Value) -> Result<String> {
    let format = format.trim();
    if format == "json" {
        return Ok(rows.iter().map(|r| format!("{r}\n")).collect());
    }
    let Some(table) = format.strip_prefix("table") else {
        let t = Template::parse(format)?;
        let mut out = String::new();
        for row in rows {
            out.push_str(&t.render(row)?);
            out.push('\n');
        }
        return Ok(out);
    };
    let t = Template::parse(table.trim())?;
    let mut scope = Scope {
        root: headers,
        vars: Vec::new(),
        header: true,
    };
    let mut header = String::new();
    run(&t.0, headers, &mut scope, &mut header)?;
    let mut cells = vec![split_cells(&header)];
    for row in rows {
        cells.push(split_cells(&t.render(row)?));
    }
    Ok(super::table::render(&cells))
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

// ---- lexing: text and actions

enum Item {
    Text(String),
    Action(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Option<String>, Vec<String>),
    Str(String),
    Num(Value),
    Ident(String),
    /// `.A.B` right after a `)`.
    Chain(Vec<String>),
    Pipe,
    Open,
    Close,
    Declare,
    Comma,
}

fn lex(text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        let mut inner = &rest[start + 2..];
        if let Some(trimmed) = inner.strip_prefix("- ") {
            before = before.trim_end();
            inner = trimmed;
        }
        let Some(end) = inner.find("}}") else {
            return err("unclosed action");
        };
        let mut action = &inner[..end];
        rest = &inner[end + 2..];
        if let Some(trimmed) = action.strip_suffix(" -") {
            action = trimmed;
            rest = rest.trim_start();
        }
        if !before.is_empty() {
            items.push(Item::Text(before.to_string()));
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            items.push(Item::Action(tokens(action)?));
        }
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    Ok(items)
}

fn tokens(action: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = action.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || "_.$".contains(chars[*i])) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
                // `(index $m "k").Field`: fields of what the parentheses gave.
                if chars.get(i) == Some(&'.') {
                    let w = word(&mut i);
                    toks.push(Tok::Chain(
                        w.split('.').skip(1).map(str::to_string).collect(),
                    ));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err("unterminated string"),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(&c) => s.push(c),
                                None => return err("unterminated string"),
                            }
                        }
                        Some(&c) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '`' => {
                let end = chars[i + 1..].iter().position(|&c| c == '`');
                let Some(end) = end else {
                    return err("unterminated raw string");
                };
                toks.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '.' | '$' => {
                let w = word(&mut i);
                let (var, path) = match w.strip_prefix('$') {
                    Some(v) => {
                        let mut parts = v.split('.');
                        let name = format!("${}", parts.next().unwrap_or_default());
                        (Some(name), parts.map(str::to_string).collect::<Vec<_>>())
                    }
                    None => (None, w.split('.').skip(1).map(str::to_string).collect()),
                };
                let path: Vec<String> = path.into_iter().filter(|p| !p.is_empty()).collect();
                toks.push(Tok::Field(var, path));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let n: String = chars[i..j].iter().collect();
                let v: Value =
                    serde_json::from_str(&n).map_err(|_| Error(format!("bad number {n:?}")))?;
                toks.push(Tok::Num(v));
                i = j;
            }
            c if c.is_alphabetic() => toks.push(Tok::Ident(word(&mut i))),
            c => return err(format!("unexpected {c:?} in {{{{{action}}}}}")),
        }
    }
    Ok(toks)
}

// ---- parsing

type Items = std::iter::Peekable<std::vec::IntoIter<Item>>;

/// Nodes up to an `{{end}}` or `{{else}}` (returned) or the end of the text (`None`).
fn parse_nodes(items: &mut Items) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while let Some(item) = items.next() {
        let toks = match item {
            Item::Text(t) => {
                nodes.push(Node::Text(t));
                continue;
            }
            Item::Action(toks) => toks,
        };
        match toks.first() {
            Some(Tok::Ident(w)) if w == "end" || w == "else" => {
                return Ok((nodes, Some(w.clone())));
            }
            Some(Tok::Ident(w)) if w == "range" || w == "if" || w == "with" => {
                let keyword = w.clone();
                let mut rest = &toks[1..];
                let mut vars = Vec::new();
                if keyword == "range" {
                    if let Some(at) = rest.iter().position(|t| *t == Tok::Declare) {
                        for t in &rest[..at] {
                            match t {
                                Tok::Field(Some(v), p) if p.is_empty() => vars.push(v.clone()),
                                Tok::Comma => {}
                                _ => return err("bad range variables"),
                            }
                        }
                        rest = &rest[at + 1..];
                    }
                }
                let pipe = parse_pipe(rest)?;
                let (body, end) = parse_nodes(items)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => match parse_nodes(items)? {
                        (nodes, Some(e)) if e == "end" => nodes,
                        _ => return err(format!("{{{{{keyword}}}}} without {{{{end}}}}")),
                    },
                    _ => return err(format!("{{{{{keyword}}}}} without {{{{end}}}}")),
                };
                nodes.push(if keyword == "range" {
                    Node::Range {
                        vars,
                        pipe,
                        body,
                        otherwise,
                    }
                } else {
                    Node::If {
                        pipe,
                        body,
                        otherwise,
                        with: keyword == "with",
                    }
                });
            }
            _ => nodes.push(Node::Print(parse_pipe(&toks)?)),
        }
    }
    Ok((nodes, None))
}

fn parse_pipe(toks: &[Tok]) -> Result<Pipe> {
    let mut pipe = Vec::new();
    let mut command = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => pipe.push(std::mem::take(&mut command)),
            Tok::Open => {
                let mut depth = 1;
                let start = i + 1;
                while depth > 0 {
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::Open) => depth += 1,
                        Some(Tok::Close) => depth -= 1,
                        None => return err("unclosed ("),
                        _ => {}
                    }
                }
                let sub = parse_pipe(&toks[start..i])?;
                match toks.get(i + 1) {
                    Some(Tok::Chain(path)) => {
                        command.push(Arg::Chain(sub, path.clone()));
                        i += 1;
                    }
                    _ => command.push(Arg::Sub(sub)),
                }
            }
            Tok::Field(v, p) => command.push(Arg::Field(v.clone(), p.clone())),
            Tok::Str(s) => command.push(Arg::Lit(Value::String(s.clone()))),
            Tok::Num(n) => command.push(Arg::Lit(n.clone())),
            Tok::Ident(w) if w == "true" || w == "false" => {
                command.push(Arg::Lit(Value::Bool(w == "true")))
            }
            Tok::Ident(w) if w == "nil" => command.push(Arg::Lit(Value::Null)),
            Tok::Ident(w) => command.push(Arg::Func(w.clone())),
            t => return err(format!("unexpected {t:?}")),
        }
        i += 1;
    }
    pipe.push(command);
    if pipe.iter().any(Vec::is_empty) {
        return err("empty command");
    }
    Ok(pipe)
}

// ---- running

struct Scope<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    /// Rendering a table's header: functions pass their first argument through, so the header
    /// shows the column's name.
    header: bool,
}

fn run(nodes: &[Node], dot: &Value, scope: &mut Scope, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(pipe) => out.push_str(&show(&eval(pipe, dot, scope)?)),
            Node::If {
                pipe,
                body,
                otherwise,
                with,
            } => {
                let v = eval(pipe, dot, scope)?;
                match (truth(&v), with) {
                    (true, true) => run(body, &v, scope, out)?,
                    (true, false) => run(body, dot, scope, out)?,
                    (false, _) => run(otherwise, dot, scope, out)?,
                }
            }
            Node::Range {
                vars,
                pipe,
                body,
                otherwise,
            } => {
                let v = eval(pipe, dot, scope)?;
                let pairs: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x.clone()))
                        .collect(),
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), m[k].clone()))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    other => return err(format!("range can't iterate over {}", show(other))),
                };
                if pairs.is_empty() {
                    run(otherwise, dot, scope, out)?;
                }
                for (k, x) in pairs {
                    let depth = scope.vars.len();
                    match vars.as_slice() {
                        [] => {}
                        [v] => scope.vars.push((v.clone(), x.clone())),
                        [kv, vv, ..] => {
                            scope.vars.push((kv.clone(), k));
                            scope.vars.push((vv.clone(), x.clone()));
                        }
                    }
                    run(body, &x, scope, out)?;
                    scope.vars.truncate(depth);
                }
            }
        }
    }
    Ok(())
}

fn eval(pipe: &Pipe, dot: &Value, scope: &Scope) -> Result<Value> {
    let mut last: Option<Value> = None;
    for command in pipe {
        last = Some(call(command, last.take(), dot, scope)?);
    }
    Ok(last.unwrap_or(Value::Null))
}

fn operand(arg: &Arg, dot: &Value, scope: &Scope) -> Result<Value> {
    match arg {
        Arg::Field(var, path) => {
            let base = match var.as_deref() {
                None => dot,
                Some("$") => scope.root,
                Some(name) => match scope.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v,
                    None => return err(format!("undefined variable {name}")),
                },
            };
            Ok(field(base, path))
        }
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Sub(pipe) => eval(pipe, dot, scope),
        Arg::Chain(pipe, path) => Ok(field(&eval(pipe, dot, scope)?, path)),
        Arg::Func(name) => call(std::slice::from_ref(arg), None, dot, scope)
            .map_err(|e| Error(format!("{name}: {}", e.0))),
    }
}

/// `value.A.B`, or nil where a field is missing.
fn field(value: &Value, path: &[String]) -> Value {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

fn call(command: &[Arg], piped: Option<Value>, dot: &Value, scope: &Scope) -> Result<Value> {
    let (name, rest) = match command.split_first() {
        Some((Arg::Func(name), rest)) => (name.as_str(), rest),
        _ if command.len() == 1 && piped.is_none() => return operand(&command[0], dot, scope),
        _ => return err("a value is not a function: it takes no arguments"),
    };
    let mut args = rest
        .iter()
        .map(|a| operand(a, dot, scope))
        .collect::<Result<Vec<_>>>()?;
    args.extend(piped);
    if scope.header && !matches!(name, "pad" | "print" | "printf" | "println") {
        if let Some(first) = args.first() {
            return Ok(first.clone());
        }
    }
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            err(format!("{name} takes {n} argument(s), got {}", args.len()))
        }
    };
    let text = |v: &Value| show(v);
    Ok(match name {
        "json" => {
            want(1)?;
            Value::String(args[0].to_string())
        }
        "join" => {
            want(2)?;
            let list = match &args[0] {
                Value::Array(a) => a.iter().map(text).collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                v => vec![text(v)],
            };
            Value::String(list.join(&text(&args[1])))
        }
        "split" => {
            want(2)?;
            Value::Array(
                text(&args[0])
                    .split(&text(&args[1]))
                    .map(|s| Value::String(s.into()))
                    .collect(),
            )
        }
        "lower" => {
            want(1)?;
            Value::String(text(&args[0]).to_lowercase())
        }
        "upper" => {
            want(1)?;
            Value::String(text(&args[0]).to_uppercase())
        }
        "title" => {
            want(1)?;
            let mut s = String::new();
            let mut start = true;
            for c in text(&args[0]).chars() {
                if start {
                    s.extend(c.to_uppercase());
                } else {
                    s.push(c);
                }
                start = c.is_whitespace();
            }
            Value::String(s)
        }
        "pad" => {
            want(3)?;
            let s = text(&args[0]);
            if s.is_empty() {
                Value::String(s)
            } else {
                let n = |v: &Value| v.as_u64().unwrap_or(0) as usize;
                Value::String(format!(
                    "{}{s}{}",
                    " ".repeat(n(&args[1])),
                    " ".repeat(n(&args[2]))
                ))
            }
        }
        "truncate" => {
            want(2)?;
            let n = args[1].as_u64().unwrap_or(0) as usize;
            Value::String(text(&args[0]).chars().take(n).collect())
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return err("index takes at least 1 argument");
            };
            let mut v = first.clone();
            for key in keys {
                v = match (&v, key) {
                    (Value::Object(m), k) => m.get(&text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        match a.get(i) {
                            Some(x) => x.clone(),
                            None => return err(format!("index out of range: {i}")),
                        }
                    }
                    (Value::Null, _) => Value::Null,
                    (v, k) => return err(format!("can't index {} with {}", show(v), show(k))),
                };
            }
            v
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                v => return err(format!("len of {}", show(v))),
            })
        }
        "print" => Value::String(args.iter().map(text).collect::<Vec<_>>().concat()),
        "println" => Value::String(args.iter().map(text).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return err("printf takes a format");
            };
            Value::String(printf(&text(f), rest))
        }
        "eq" | "ne" => {
            want(2)?;
            let same = args[0] == args[1] || text(&args[0]) == text(&args[1]);
            Value::Bool(same == (name == "eq"))
        }
        "not" => {
            want(1)?;
            Value::Bool(!truth(&args[0]))
        }
        "and" => args
            .iter()
            .find(|v| !truth(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|v| truth(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        other => return err(format!("function {other:?} not defined")),
    })
}

/// Go's `printf` for the verbs formats use: `%s`, `%v`, `%d`, `%q`, `%%`.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => {
                let v = args.next().map(show).unwrap_or_default();
                let _ = write!(out, "{}", Value::String(v));
            }
            Some(_) => out.push_str(&args.next().map(show).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// Go's truth: false, 0, nil and empty things are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// A value as Go's template prints it.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", show_inner(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// Inside a list or map Go prints a missing value as `<nil>`.
fn show_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => show(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, data: &Value) -> String {
        Template::parse(t).unwrap().render(data).unwrap()
    }

    #[test]
    fn the_forms_docker_users_write() {
        let doc = json!({
            "Name": "/web",
            "State": {"Pid": 42, "Running": true},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"app": "x"}},
            "NetworkSettings": {
                "IPAddress": "10.77.0.2",
                "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
            },
            "Mounts": [{"Source": "/a", "Destination": "/b"}]
        });
        assert_eq!(render("{{.State.Pid}}", &doc), "42");
        assert_eq!(render("{{.Name}}", &doc), "/web");
        assert_eq!(render("{{.NetworkSettings.IPAddress}}", &doc), "10.77.0.2");
        assert_eq!(render(r#"{{json .Config.Labels}}"#, &doc), r#"{"app":"x"}"#);
        assert_eq!(
            render(r#"{{index .NetworkSettings.Ports "80/tcp"}}"#, &doc),
            "[map[HostIp:0.0.0.0 HostPort:8080]]"
        );
        assert_eq!(
            render(
                r#"{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}"#,
                &doc
            ),
            "8080"
        );
        assert_eq!(
            render("{{range .Config.Env}}{{.}};{{end}}", &doc),
            "A=1;B=2;"
        );
        assert_eq!(
            render(
                "{{range $p, $b := .NetworkSettings.Ports}}{{$p}}->{{(index $b 0).HostPort}}{{end}}",
                &doc
            ),
            "80/tcp->8080"
        );
        assert_eq!(
            render("{{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}", &doc),
            "/a:/b"
        );
        assert_eq!(render("{{join .Config.Env \",\"}}", &doc), "A=1,B=2");
        assert_eq!(render("{{.Name | upper}}", &doc), "/WEB");
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &doc),
            "up"
        );
        assert_eq!(render("{{with .State}}{{.Pid}}{{end}}", &doc), "42");
        assert_eq!(render("{{.Nope}}", &doc), "<no value>");
        assert_eq!(render("{{- .Name -}}  x", &doc), "/webx");
        assert_eq!(render(r"a\tb", &doc), "a\tb");
        assert_eq!(
            render("{{printf \"%s=%d\" .Name .State.Pid}}", &doc),
            "/web=42"
        );
        assert_eq!(render("{{len .Config.Env}}", &doc), "2");
    }

    #[test]
    fn bad_templates_fail_to_parse_or_run() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{range .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        let t = Template::parse("{{nosuch .A}}").unwrap();
        assert!(t.render(&json!({})).is_err());
    }

    #[test]
    fn tables_take_their_header_from_the_field_names() {
        let rows = [
            json!({"ID": "abc", "Names": "web"}),
            json!({"ID": "defgh", "Names": "db"}),
        ];
        let headers = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        assert_eq!(
            render_rows("table {{.ID}}\\t{{.Names | upper}}", &rows, &headers).unwrap(),
            "CONTAINER ID   NAMES\nabc            WEB\ndefgh          DB\n"
        );
        assert_eq!(
            render_rows("{{.Names}}", &rows, &headers).unwrap(),
            "web\ndb\n"
        );
        assert_eq!(
            render_rows("json", &rows[..1], &headers).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
    }
}
