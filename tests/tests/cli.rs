//! The command line as Docker users know it: usage errors, exit codes, `-h`, closed pipes, `-it`
//! without a terminal, `rm -f` of what is gone; then the observing commands and the formats.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use minibox_tests::{Out, Sandbox};

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `run -d --network none busybox ARGS...`: returns the full id.
fn run_d(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    let id = sb.minibox(&all).ok().trim().to_string();
    assert_eq!(id.len(), 64, "not a full id: {id:?}");
    id
}

#[test]
fn h_is_the_hostname_and_help_is_long_only() {
    let sb = sandbox();
    let out = sb.minibox(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "box",
        "busybox",
        "hostname",
    ]);
    assert_eq!(out.ok(), "box\n");
    let help = sb.minibox(&["run", "--help"]).ok();
    assert!(help.contains("Usage: minibox run"), "{help}");
    assert!(help.contains("-h, --hostname"), "{help}");
    sb.finish();
}

#[test]
fn usage_errors_are_one_line_and_exit_125() {
    let sb = Sandbox::new();
    for (args, needle, help) in [
        (
            &["run", "--nosuchflag", "busybox"][..],
            "unexpected argument '--nosuchflag'",
            "see 'minibox run --help'",
        ),
        (&["ps", "--bogus"], "'--bogus'", "see 'minibox ps --help'"),
        (
            &["network", "create"],
            "<NAME>",
            "see 'minibox network create --help'",
        ),
        (&["kill", "-s"], "--signal", "see 'minibox kill --help'"),
        (&["nosuchcommand"], "nosuchcommand", "see 'minibox --help'"),
    ] {
        let out = sb.minibox(args);
        let err = out.fails(125, needle);
        assert!(err.contains(help), "{out}");
        assert_eq!(err.lines().count(), 1, "one line: {out}");
        assert_eq!(out.stdout(), "", "{out}");
    }
    sb.finish();
}

#[test]
fn failures_outside_run_exit_1_and_run_keeps_dockers_codes() {
    let sb = sandbox();
    for args in [
        &["stop", "nosuch"][..],
        &["inspect", "nosuch"],
        &["logs", "nosuch"],
        &["rmi", "nosuch"],
        &["exec", "nosuch", "true"],
        &["network", "rm", "nosuch"],
    ] {
        sb.minibox(args).fails(1, "nosuch");
    }
    sb.minibox(&["run", "--rm", "nosuchimage"])
        .fails(125, "nosuchimage");
    let out = sb.minibox(&["run", "--rm", "--network", "none", "busybox", "nosuch"]);
    out.fails(127, "nosuch");
    sb.finish();
}

/// Runs minibox with its standard output a pipe whose reader is already gone.
fn into_closed_pipe(sb: &Sandbox, args: &[&str]) -> Out {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    let output = sb
        .command(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Out {
        what: format!("minibox {} >closed-pipe", args.join(" ")),
        output,
    }
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "piped",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 100",
        ],
    );
    for args in [
        &["images"][..],
        &["ps", "-a"],
        &["inspect", "piped"],
        &["network", "ls"],
        &["logs", "piped"],
        &["image", "inspect", "busybox"],
    ] {
        let out = into_closed_pipe(&sb, args);
        // Killed by SIGPIPE, as a shell's `ls | true` is: no panic, no message.
        assert_eq!(out.code(), 128 + 13, "{out}");
        assert_eq!(out.stderr(), "", "{out}");
    }
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn it_without_a_terminal_is_refused_before_anything_is_made() {
    let sb = sandbox();
    let out = sb.minibox(&["run", "--rm", "-it", "--network", "none", "busybox", "sh"]);
    let err = out.fails(1, "the input device is not a TTY");
    assert_eq!(err.lines().count(), 1, "{out}");
    assert_eq!(sb.minibox(&["ps", "-a", "-q"]).ok(), "", "nothing made");
    // Detached, there is no input to relay: Docker runs it.
    let id = run_d(&sb, &["-it", "busybox", "sh"]);
    sb.minibox(&["exec", "-it", &id, "true"])
        .fails(1, "the input device is not a TTY");
    sb.minibox(&["exec", "-t", &id, "true"]).ok();
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn rm_f_of_a_missing_name_is_no_error() {
    let sb = sandbox();
    assert_eq!(sb.minibox(&["rm", "-f", "nosuch"]).ok(), "");
    sb.minibox(&["rm", "nosuch"])
        .fails(1, "no such container: nosuch");
    let id = run_d(&sb, &["--name", "gone", "busybox", "sleep", "100"]);
    // Every name is tried: the missing one in the middle changes nothing for the others.
    let out = sb.minibox(&["rm", "-f", "nosuch", "gone"]).ok();
    assert_eq!(out, "gone\n");
    sb.minibox(&["inspect", &id]).fails(1, "no such object");
    sb.finish();
}

/// `inspect -f FORMAT NAME` (or more arguments), its output.
fn inspect_f(sb: &Sandbox, format: &str, args: &[&str]) -> String {
    let mut all = vec!["inspect", "-f", format];
    all.extend_from_slice(args);
    sb.minibox(&all).ok()
}

#[test]
fn inspect_formats_types_and_the_fields_docker_scripts_read() {
    let sb = sandbox();
    let data = sb.root().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let volume = format!("{}:/data:ro", data.display());
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "8080:80",
            "-l",
            "app=x",
            "-v",
            &volume,
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "CHOWN",
            "--cpus",
            "0.5",
            "busybox",
            "sleep",
            "100",
        ])
        .ok()
        .trim()
        .to_string();
    let pid: i32 = inspect_f(&sb, "{{.State.Pid}}", &["web"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{pid}"
    );
    let ip = inspect_f(&sb, "{{.NetworkSettings.IPAddress}}", &["web"]);
    assert!(ip.starts_with("10.77."), "{ip}");
    assert_eq!(inspect_f(&sb, "{{.Name}}", &["web"]), "/web\n");
    let config: serde_json::Value =
        serde_json::from_str(&inspect_f(&sb, "{{json .Config}}", &["web"])).unwrap();
    assert_eq!(config["Labels"]["app"], "x", "{config}");
    let port = inspect_f(
        &sb,
        r#"{{index .NetworkSettings.Ports "80/tcp"}}"#,
        &["web"],
    );
    assert_eq!(port, "[map[HostIp:0.0.0.0 HostPort:8080]]\n");
    let bindings = inspect_f(
        &sb,
        "{{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{(index $b 0).HostPort}} {{end}}",
        &["web"],
    );
    assert_eq!(bindings, "80/tcp=8080 \n");
    let mounts = inspect_f(
        &sb,
        "{{range .Mounts}}{{.Source}}->{{.Destination}} rw={{.RW}}{{end}}",
        &["web"],
    );
    assert_eq!(mounts, format!("{}->/data rw=false\n", data.display()));
    assert_eq!(
        inspect_f(&sb, "{{json .HostConfig.Binds}}", &["web"]),
        format!("[\"{volume}\"]\n")
    );
    assert_eq!(
        inspect_f(
            &sb,
            "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}",
            &["web"],
        ),
        "[\"CAP_NET_ADMIN\"] [\"CAP_CHOWN\"] 500000000 no\n"
    );
    // Several objects: one line each.
    let two = inspect_f(&sb, "{{.Name}}", &["web", &id[..12]]);
    assert_eq!(two, "/web\n/web\n");

    // Images and networks by name, with or without --type.
    let image_id = inspect_f(&sb, "{{.Id}}", &["--type", "image", "busybox"]);
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    assert_eq!(inspect_f(&sb, "{{.Id}}", &["busybox"]), image_id);
    assert_eq!(inspect_f(&sb, "{{.Name}}", &["minibox"]), "minibox\n");
    assert_eq!(
        sb.minibox(&["image", "inspect", "-f", "{{.Os}}", "busybox"])
            .ok(),
        "linux\n"
    );
    assert_eq!(
        sb.minibox(&["network", "inspect", "-f", "{{.Name}}", "minibox"])
            .ok(),
        "minibox\n"
    );
    sb.minibox(&["inspect", "--type", "container", "busybox"])
        .fails(1, "no such container: busybox");
    sb.minibox(&["inspect", "nosuch"])
        .fails(1, "no such object: nosuch");
    sb.minibox(&["inspect", "-f", "{{.Name", "web"])
        .fails(1, "template");
    sb.minibox(&["inspect", "-f", "{{nosuchfunc .Name}}", "web"])
        .fails(1, "nosuchfunc");
    // Without a format: Docker's JSON array, four spaces deep.
    let doc = sb.minibox(&["inspect", "web"]).ok();
    assert!(doc.starts_with("[\n    {\n        \""), "{doc}");
    sb.minibox(&["rm", "-f", "web"]).ok();
    sb.finish();
}

#[test]
fn ps_filters_formats_and_counts() {
    let sb = sandbox();
    let web = run_d(
        &sb,
        &[
            "--name", "web1", "-l", "tier=web", "busybox", "sleep", "100",
        ],
    );
    let db = run_d(
        &sb,
        &[
            "--name", "db1", "--label", "tier=db", "busybox", "sleep", "100",
        ],
    );
    sb.minibox(&[
        "run",
        "--network",
        "none",
        "--name",
        "job",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    let names = |args: &[&str]| {
        let mut all = vec!["ps", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        sb.minibox(&all).ok()
    };
    assert_eq!(names(&["--filter", "name=web"]), "web1\n");
    assert_eq!(names(&["--filter", "name=^db1$"]), "db1\n");
    assert_eq!(names(&["-f", "label=tier=db"]), "db1\n");
    assert_eq!(names(&["--filter", "label=tier"]), "db1\nweb1\n");
    assert_eq!(names(&["--filter", &format!("id={}", &web[..6])]), "web1\n");
    // A status filter shows stopped ones without -a, as Docker's does.
    assert_eq!(names(&["--filter", "status=exited"]), "job\n");
    assert_eq!(names(&["-a", "--filter", "exited=3"]), "job\n");
    assert_eq!(names(&["-a", "--filter", "exited=0"]), "");
    assert_eq!(names(&["--filter", "ancestor=busybox"]), "db1\nweb1\n");
    assert_eq!(names(&["--filter", "network=none"]), "db1\nweb1\n");
    // The same key twice: either; two keys: both.
    assert_eq!(
        names(&["--filter", "name=web1", "--filter", "name=db1"]),
        "db1\nweb1\n"
    );
    assert_eq!(
        names(&["--filter", "name=web1", "--filter", "label=tier=db"]),
        ""
    );
    // before/since: made before or after the named one (stopped ones with -a).
    assert_eq!(names(&["--filter", "before=job"]), "db1\nweb1\n");
    assert_eq!(names(&["--filter", "before=db1"]), "web1\n");
    assert_eq!(names(&["--filter", "since=web1"]), "db1\n");
    assert_eq!(names(&["-a", "--filter", "since=web1"]), "job\ndb1\n");
    assert_eq!(
        names(&["-a", "--filter", "since=web1", "--filter", "before=job"]),
        "db1\n"
    );
    sb.minibox(&["ps", "--filter", "since=nothing"])
        .fails(1, "nothing");
    assert_eq!(names(&["-l"]), "job\n");
    assert_eq!(names(&["-n", "2"]), "job\ndb1\n");
    assert_eq!(
        sb.minibox(&["ps", "-q", "--filter", "label=tier=web"]).ok(),
        format!("{}\n", &web[..12])
    );
    assert_eq!(
        sb.minibox(&["ps", "-q", "--no-trunc", "--filter", "name=db1"])
            .ok(),
        format!("{db}\n")
    );
    let table = sb
        .minibox(&[
            "ps",
            "--format",
            "table {{.Names}}\\t{{.Labels}}\\t{{.State}}",
        ])
        .ok();
    assert_eq!(
        table,
        "NAMES     LABELS     STATE\ndb1       tier=db    running\nweb1      tier=web   running\n"
    );
    let json = sb
        .minibox(&["ps", "--format", "json", "--filter", "name=web1"])
        .ok();
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(row["Names"], "web1");
    assert_eq!(row["ID"], &web[..12]);
    sb.minibox(&["ps", "--filter", "bogus=1"])
        .fails(1, "invalid filter \"bogus\"");
    sb.minibox(&["ps", "--filter", "status=sleeping"])
        .fails(1, "status=sleeping");
    sb.minibox(&["ps", "--filter", "noequals"])
        .fails(1, "KEY=VALUE");
    sb.minibox(&["rm", "-f", "web1", "db1", "job"]).ok();
    sb.finish();
}

#[test]
fn ps_filters_on_published_ports() {
    let sb = sandbox();
    let id = sb
        .minibox(&["run", "-d", "-p", "8090:80", "busybox", "sleep", "100"])
        .ok();
    let id = id.trim();
    assert_eq!(
        sb.minibox(&["ps", "-q", "--filter", "publish=8090"]).ok(),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        sb.minibox(&["ps", "-q", "--filter", "publish=8090/udp"])
            .ok(),
        ""
    );
    sb.minibox(&["rm", "-f", id]).ok();
    sb.finish();
}

#[test]
fn images_quiet_format_and_reference() {
    let sb = sandbox();
    // `tag` as Docker's: silent, by name or id, refusing what names nothing or no name.
    assert_eq!(sb.minibox(&["tag", "busybox", "busybox:v2"]).ok(), "");
    let id = sb.minibox(&["images", "-q"]).ok();
    assert_eq!(sb.minibox(&["tag", id.trim(), "other"]).ok(), "");
    sb.minibox(&["tag", "nosuch", "x"])
        .fails(1, "no such image: nosuch");
    sb.minibox(&["tag", "busybox", "Bad:Name"])
        .fails(1, "invalid reference");
    sb.minibox(&["rmi", "other"]).ok();
    assert_eq!(id.lines().count(), 1, "one id for two names: {id}");
    assert_eq!(id.trim().len(), 12);
    let all = sb
        .minibox(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok();
    assert!(
        all.contains(&format!("busybox:latest {}", id.trim())),
        "{all}"
    );
    assert!(all.contains("busybox:v2"), "{all}");
    assert_eq!(
        sb.minibox(&["images", "--format", "{{.Tag}}", "busybox:v2"])
            .ok(),
        "v2\n"
    );
    assert_eq!(
        sb.minibox(&["images", "--format", "{{.Tag}}", "busybox"])
            .ok()
            .lines()
            .count(),
        2
    );
    assert_eq!(
        sb.minibox(&["images", "nosuch"]).ok(),
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    );
    let table = sb
        .minibox(&[
            "images",
            "--format",
            "table {{.Repository}}\\t{{.Size}}",
            "busybox:v2",
        ])
        .ok();
    assert!(
        table.starts_with("REPOSITORY   SIZE\nbusybox      "),
        "{table}"
    );
    sb.finish();
}

#[test]
fn top_stats_and_a_paused_container() {
    let sb = sandbox();
    run_d(
        &sb,
        &[
            "--name",
            "busy",
            "--memory",
            "64m",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & wait",
        ],
    );
    let top = sb.minibox(&["top", "busy"]).ok();
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        2,
        "sh and sleep only, none of the host's: {top}"
    );
    assert!(rows.iter().any(|r| r.ends_with("sleep 1000")), "{top}");
    let pids = sb.minibox(&["top", "busy", "-o", "pid,comm"]).ok();
    assert!(pids.starts_with("PID"), "{pids}");
    sb.minibox(&["top", "busy", "-o", "comm"])
        .fails(1, "no PID column");

    let stats = sb.minibox(&["stats", "--no-stream"]).ok();
    let mut lines = stats.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    assert_eq!(lines.count(), 1, "{stats}");
    let row = sb
        .minibox(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}} {{.NetIO}}",
            "busy",
        ])
        .ok();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[..2], ["busy", "2"], "{row}");
    assert_eq!(fields[3..], ["/", "64MiB", "0B", "/", "0B"], "{row}");

    sb.minibox(&["pause", "busy"]).ok();
    assert_eq!(
        sb.minibox(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "busy"
        ])
        .ok(),
        "paused true\n"
    );
    let status = sb
        .minibox(&["ps", "--format", "{{.Status}}", "--filter", "status=paused"])
        .ok();
    assert!(status.trim_end().ends_with("(Paused)"), "{status}");
    sb.minibox(&["pause", "busy"]).fails(1, "already paused");
    sb.minibox(&["exec", "busy", "true"]).fails(1, "paused");
    sb.minibox(&["unpause", "busy"]).ok();
    sb.minibox(&["unpause", "busy"]).fails(1, "not paused");
    sb.minibox(&["exec", "busy", "true"]).ok();
    // A paused container still stops.
    sb.minibox(&["pause", "busy"]).ok();
    sb.minibox(&["stop", "-t", "1", "busy"]).ok();
    sb.minibox(&["pause", "busy"]).fails(1, "not running");
    sb.minibox(&["rm", "busy"]).ok();
    sb.finish();
}

#[test]
fn rename_history_version_info_and_df() {
    let sb = sandbox();
    let id = run_d(&sb, &["--name", "old", "busybox", "sleep", "100"]);
    sb.minibox(&["rename", "old", "new"]).ok();
    assert_eq!(
        sb.minibox(&["inspect", "-f", "{{.Name}}", "new"]).ok(),
        "/new\n"
    );
    sb.minibox(&["inspect", "old"]).fails(1, "no such object");
    // The old name is free again; the new one is taken.
    let other = run_d(&sb, &["--name", "old", "busybox", "sleep", "100"]);
    sb.minibox(&["rename", "old", "new"])
        .fails(1, "already in use");
    sb.minibox(&["rename", "old", "bad/name"])
        .fails(1, "invalid container name");
    sb.minibox(&["rm", "-f", &id, &other]).ok();
    // Removed, the container gave its new name back.
    run_d(&sb, &["--name", "new", "busybox", "true"]);
    sb.minibox(&["rm", "-f", "new"]).ok();

    let history = sb.minibox(&["history", "busybox"]).ok();
    let header: Vec<&str> = history
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    let short = sb.minibox(&["images", "-q", "busybox"]).ok();
    assert!(
        history.lines().nth(1).unwrap().starts_with(short.trim()),
        "{history}"
    );
    assert_eq!(
        sb.minibox(&["history", "-q", "busybox"])
            .ok()
            .lines()
            .next(),
        Some(short.trim())
    );

    let version = sb
        .minibox(&["version", "--format", "{{.Client.Version}}"])
        .ok();
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    assert!(sb
        .minibox(&["version"])
        .ok()
        .starts_with("Client:\n Version:"));
    let info = sb
        .minibox(&[
            "info",
            "--format",
            "{{.Containers}} {{.Images}} {{.OSType}} {{.CgroupDriver}}",
        ])
        .ok();
    assert_eq!(info, "0 1 linux cgroupfs\n");
    assert!(sb.minibox(&["info"]).ok().contains("Cgroup Version: "));
    let df = sb.minibox(&["system", "df"]).ok();
    let lines: Vec<Vec<&str>> = df
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(lines[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert_eq!(lines[1][..3], ["Images", "1", "0"], "{df}");
    assert_eq!(lines[2][..3], ["Containers", "0", "0"], "{df}");
    assert_eq!(lines.len(), 5, "{df}");
    sb.finish();
}

#[test]
fn prune_removes_what_is_stopped_or_unnamed_only() {
    let sb = sandbox();
    let running = run_d(&sb, &["busybox", "sleep", "100"]);
    for code in ["0", "4"] {
        sb.minibox(&[
            "run",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &format!("exit {code}"),
        ]);
    }
    // Without -f it asks; no answer (standard input is empty) keeps everything.
    sb.minibox(&["container", "prune"]).ok();
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok().lines().count(), 3);
    let out = sb.minibox(&["container", "prune", "-f"]).ok();
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(out.lines().filter(|l| l.len() == 64).count(), 2, "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(
        sb.minibox(&["ps", "-aq", "--no-trunc"]).ok(),
        format!("{running}\n")
    );

    // A second import under the same name leaves the first without one: dangling.
    let tar = minibox_tests::fixtures::busybox_tarball();
    sb.minibox(&["import", tar.to_str().unwrap(), "busybox", "-c", "ENV X=1"])
        .ok();
    assert_eq!(sb.minibox(&["images", "-q"]).ok().lines().count(), 2);
    // The running container's image is in use, named or not: kept.
    let out = sb.minibox(&["image", "prune", "-f"]).ok();
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    sb.minibox(&["rm", "-f", &running]).ok();
    let out = sb.minibox(&["image", "prune", "-f"]).ok();
    assert!(
        out.starts_with("Deleted Images:\ndeleted: sha256:"),
        "{out}"
    );
    assert_eq!(sb.minibox(&["images", "-q"]).ok().lines().count(), 1);
    let out = sb.minibox(&["image", "prune", "-a", "-f"]).ok();
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert_eq!(sb.minibox(&["images", "-q"]).ok(), "");
    sb.finish();
}

#[test]
fn logs_since_and_until() {
    let sb = sandbox();
    sb.minibox(&[
        "run",
        "--network",
        "none",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
    ])
    .ok();
    let stamped = sb.minibox(&["logs", "-t", "lg"]).ok();
    let two = stamped
        .lines()
        .find(|l| l.ends_with(" two"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(sb.minibox(&["logs", "--since", &two, "lg"]).ok(), "two\n");
    assert_eq!(sb.minibox(&["logs", "--until", &two, "lg"]).ok(), "one\n");
    assert_eq!(
        sb.minibox(&["logs", "--since", "10m", "lg"]).ok(),
        "one\ntwo\n"
    );
    assert_eq!(sb.minibox(&["logs", "--until", "10m", "lg"]).ok(), "");
    assert_eq!(
        sb.minibox(&["logs", "--since", "0", "lg"]).ok(),
        "one\ntwo\n"
    );
    sb.minibox(&["logs", "--since", "yesterday-ish", "lg"])
        .fails(1, "--since");
    sb.minibox(&["rm", "lg"]).ok();
    sb.finish();
}

#[test]
fn run_takes_labels_env_files_cidfile_and_attach() {
    let sb = sandbox();
    let dir = sb.root().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let env = dir.join("env");
    std::fs::write(&env, "# a comment\nA=from-file\n\nB=file\n").unwrap();
    let labels = dir.join("labels");
    std::fs::write(&labels, "tier=file\nowner=me\n").unwrap();
    let cid = dir.join("cid");
    let out = sb
        .minibox(&[
            "run",
            "--network",
            "none",
            "--name",
            "flags",
            "--env-file",
            env.to_str().unwrap(),
            "-e",
            "B=flag",
            "--label-file",
            labels.to_str().unwrap(),
            "-l",
            "tier=flag",
            "--cidfile",
            cid.to_str().unwrap(),
            "busybox",
            "sh",
            "-c",
            "echo $A $B",
        ])
        .ok();
    assert_eq!(out, "from-file flag\n");
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(
        sb.minibox(&["inspect", "-f", "{{.Id}} {{json .Config.Labels}}", "flags"])
            .ok(),
        format!("{id} {{\"owner\":\"me\",\"tier\":\"flag\"}}\n")
    );
    // The cidfile is there: Docker refuses, before anything is made.
    sb.minibox(&[
        "run",
        "--rm",
        "--cidfile",
        cid.to_str().unwrap(),
        "busybox",
        "true",
    ])
    .fails(125, "container ID file found");
    sb.minibox(&[
        "run",
        "--rm",
        "--env-file",
        "/nonexistent",
        "busybox",
        "true",
    ])
    .fails(125, "--env-file /nonexistent");
    // -a stdout: stderr is not shown, but logged.
    let out = sb.minibox(&[
        "run",
        "--network",
        "none",
        "--name",
        "att",
        "-a",
        "stdout",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(out.ok(), "out\n");
    assert_eq!(out.stderr(), "");
    let logged = sb.command(&["logs", "att"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&logged.stderr), "err\n");
    sb.minibox(&["run", "--rm", "-a", "stdout", "-d", "busybox", "true"])
        .fails(125, "conflicting options");
    sb.minibox(&["run", "--rm", "-a", "stdpipe", "busybox", "true"])
        .fails(125, "STDIN, STDOUT or STDERR");
    // --sig-proxy=false: attached to a container its supervisor owns; its output and code.
    let out = sb.minibox(&[
        "run",
        "--rm",
        "--sig-proxy=false",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo apart; exit 6",
    ]);
    assert_eq!(out.code(), 6, "{out}");
    assert_eq!(out.stdout(), "apart\n");
    // -q: no pull output (the image is there; nothing to show either way), the output is the
    // container's.
    assert_eq!(
        sb.minibox(&[
            "run",
            "--rm",
            "-q",
            "--network",
            "none",
            "busybox",
            "echo",
            "q"
        ])
        .ok(),
        "q\n"
    );
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok().lines().count(), 2);
    sb.minibox(&["rm", "flags", "att"]).ok();
    sb.finish();
}

#[test]
fn exec_d_start_a_and_attach() {
    let sb = sandbox();
    run_d(&sb, &["--name", "box", "busybox", "sleep", "100"]);
    sb.minibox(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "echo hi > /tmp/x; sleep 1000",
    ])
    .ok();
    let start = std::time::Instant::now();
    while sb.minibox(&["exec", "box", "cat", "/tmp/x"]).stdout() != "hi\n" {
        assert!(start.elapsed().as_secs() < 10, "exec -d did not run");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let top = sb.minibox(&["top", "box"]).ok();
    assert!(
        top.contains("sleep 1000"),
        "the detached process runs on: {top}"
    );
    sb.minibox(&["exec", "-d", "-t", "box", "true"])
        .fails(1, "exec -d");
    sb.minibox(&["rm", "-f", "box"]).ok();

    let out = sb.minibox(&[
        "run",
        "--network",
        "none",
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        "echo out; exit 5",
    ]);
    assert_eq!(out.code(), 5);
    let out = sb.minibox(&["start", "-a", "again"]);
    assert_eq!(out.code(), 5, "{out}");
    assert_eq!(out.stdout(), "out\n", "only this start's output");
    // -i attaches too (a container run without -i takes no input).
    let out = sb.minibox(&["start", "-i", "again"]);
    assert_eq!((out.code(), out.stdout()), (5, "out\n".into()), "{out}");
    sb.minibox(&["start", "-a", "again", "box"])
        .fails(1, "cannot start and attach multiple containers");

    run_d(
        &sb,
        &[
            "--name",
            "late",
            "busybox",
            "sh",
            "-c",
            "sleep 1; echo late; exit 7",
        ],
    );
    let out = sb.minibox(&["attach", "late"]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.stdout(), "late\n");
    sb.minibox(&["attach", "late"])
        .fails(1, "cannot attach to a stopped container");
    sb.minibox(&["rm", "again", "late"]).ok();
    sb.finish();
}

/// The column titles of a table, split where Docker's tabwriter puts two or more spaces.
fn columns(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// A table of Docker commands with the shapes Docker documents for them: table columns, JSON
/// keys and exit codes. Where each shape comes from, in docker/cli (github.com/docker/cli):
/// - tables: cli/command/formatter/container.go `defaultContainerTableFormat`,
///   formatter/image.go `defaultImageTableFormat`, image/formatter_history.go
///   `defaultHistoryTableFormat`, container/formatter_stats.go `defaultStatsTableFormat` and
///   its headers, formatter/disk_usage.go `defaultDiskUsageTableFormat` and its headers, and
///   the headers of formatter/formatter.go; `docker top` prints the titles of `ps -ef`
///   (daemon/top_unix.go in moby/moby).
/// - exit codes: cmd/docker/docker.go `getExitCode` (a StatusError's code, else 1),
///   cli/cobra.go `FlagErrorFunc` (125 for a usage error), cli/command/container/run.go
///   `toStatusError` (125, 126 "cannot be invoked", 127 "not found", else the container's
///   code), container/rm.go (`rm -f` skips a container that is not found).
/// - inspect keys: the API's ContainerJSON and ImageInspect (api/types in moby/moby), as
///   `docker inspect` prints them.
#[test]
fn shapes_match_dockers_documented_ones() {
    let sb = sandbox();
    run_d(&sb, &["--name", "shape", "busybox", "sleep", "100"]);
    let tables: [(&[&str], &[&str]); 7] = [
        (
            &["ps"],
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ],
        ),
        (
            &["ps", "-a"],
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ],
        ),
        (
            &["images"],
            &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        ),
        (
            &["history", "busybox"],
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        ),
        (
            &["stats", "--no-stream"],
            &[
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET I/O",
                "BLOCK I/O",
                "PIDS",
            ],
        ),
        (
            &["system", "df"],
            &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        ),
        (&["top", "shape"], &["UID PID PPID C STIME TTY TIME CMD"]),
    ];
    for (args, want) in tables {
        let out = sb.minibox(args).ok();
        let got = match args[0] {
            // ps -ef pads its titles with single spaces.
            "top" => vec![out
                .lines()
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")],
            _ => columns(&out),
        };
        assert_eq!(got, want, "minibox {}:\n{out}", args.join(" "));
    }
    let doc: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", "shape"]).ok()).unwrap();
    for key in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Name",
        "LogPath",
        "HostConfig",
        "Mounts",
        "Config",
        "NetworkSettings",
    ] {
        assert!(doc[0].get(key).is_some(), "inspect lacks {key}: {doc}");
    }
    for key in [
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "StartedAt",
        "FinishedAt",
    ] {
        assert!(doc[0]["State"].get(key).is_some(), "State lacks {key}");
    }
    for key in [
        "Binds",
        "NetworkMode",
        "PortBindings",
        "RestartPolicy",
        "AutoRemove",
        "CapAdd",
        "CapDrop",
        "Privileged",
        "Memory",
        "NanoCpus",
        "CpuQuota",
        "PidsLimit",
    ] {
        assert!(
            doc[0]["HostConfig"].get(key).is_some(),
            "HostConfig lacks {key}"
        );
    }
    let image: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["image", "inspect", "busybox"]).ok()).unwrap();
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "RootFS",
    ] {
        assert!(image[0].get(key).is_some(), "image inspect lacks {key}");
    }
    let codes: [(&[&str], i32); 11] = [
        (&["ps", "--no-such-flag"], 125),
        (&["run", "--no-such-flag", "busybox"], 125),
        (&["inspect", "nosuch"], 1),
        (&["stop", "nosuch"], 1),
        (&["rm", "nosuch"], 1),
        (&["rm", "-f", "nosuch"], 0),
        (&["run", "--rm", "nosuchimage"], 125),
        (
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "nosuchcommand",
            ],
            127,
        ),
        (
            &["run", "--rm", "--network", "none", "busybox", "/etc/passwd"],
            126,
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "exit 3",
            ],
            3,
        ),
        (
            &["run", "--rm", "-it", "--network", "none", "busybox", "true"],
            1,
        ),
    ];
    for (args, code) in codes {
        let out = sb.minibox(args);
        assert_eq!(out.code(), code, "minibox {}:\n{out}", args.join(" "));
    }
    sb.minibox(&["rm", "-f", "shape"]).ok();
    sb.finish();
}
