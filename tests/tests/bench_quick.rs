//! `bench/run --quick` (issues 6 and 13) runs end to end and prints the table it should, so the benchmark
//! script cannot rot. The full run stays out of the suite: timings here are noisy.
//!
//! Rows whose feature works (probed here, in a sandbox) must carry figures; the others must say
//! what they need.

use std::path::Path;
use std::process::Command;

use minibox_tests::{
    cni_bin, fixtures, minibox_bin, minibox_runc_bin, target_dir, workspace, Sandbox,
};

/// One row of the main table: benchmark, subject, value, detail.
struct Row<'a>([&'a str; 4]);

fn rows(report: &str) -> Vec<Row<'_>> {
    let table = report.split("\n## ").next().unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| benchmark |"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a row has 4 cells: {l}");
            Row([cells[0], cells[1], cells[2], cells[3]])
        })
        .collect()
}

/// The rows of `benchmark` whose subject starts with `subject`: at least one. Each has a positive
/// figure in `unit`, or (unless `measured`) says `skipped` and what it needs.
fn check<'a>(
    rows: &'a [Row],
    benchmark: &str,
    subject: &str,
    unit: &str,
    measured: bool,
) -> Vec<&'a Row<'a>> {
    let found: Vec<_> = rows
        .iter()
        .filter(|r| r.0[0].starts_with(benchmark) && r.0[1].starts_with(subject))
        .collect();
    assert!(!found.is_empty(), "no row {benchmark:?} / {subject:?}");
    for Row([b, s, value, detail]) in found.iter().copied() {
        if *value == "skipped" {
            assert!(!measured, "{b} / {s} should have been measured: {detail}");
            assert!(
                detail.starts_with("needs "),
                "{b} / {s}: a skipped row says what it needs: {detail}"
            );
            continue;
        }
        let (number, rest) = value.split_once(' ').unwrap_or((value, ""));
        let number: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{b} / {s}: not a figure: {value}"));
        assert!(number > 0.0, "{b} / {s}: {value}");
        assert!(
            rest.starts_with(unit),
            "{b} / {s}: {value} is not in {unit}"
        );
    }
    found
}

#[test]
fn quick_mode_prints_every_row() {
    // Before the fixtures are built: as an ordinary user this test only skips.
    minibox_tests::require_root();
    let busybox = fixtures::busybox_tarball();
    let web = fixtures::web_tarball();

    // What minibox can do today decides which rows must be measured.
    let sb = Sandbox::new();
    let import = sb
        .minibox(&["import", busybox.to_str().unwrap(), "busybox"])
        .code()
        == 0;
    let works = |args: &[&str]| import && sb.minibox(args).code() == 0;
    let none = works(&["run", "--rm", "--network", "none", "busybox", "true"]);
    let publish = works(&["run", "--rm", "-p", "8080:80", "busybox", "true"]);
    drop(sb);

    let out = target_dir().join(format!("bench-quick-{}.md", std::process::id()));
    let run = Command::new(workspace().join("bench/run"))
        .args(["--quick", "--out"])
        .arg(&out)
        .env("MINIBOX_BIN", minibox_bin())
        .env("MINIBOX_CNI_BIN", cni_bin())
        .env("MINIBOX_RUNC_BIN", minibox_runc_bin())
        .env("BENCH_BUSYBOX_TAR", &busybox)
        .env("BENCH_WEB_TAR", &web)
        .output()
        .expect("run bench/run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "bench/run --quick failed:\n{stdout}\n{stderr}"
    );
    let report = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(
        stdout, report,
        "the printed table is the one written to --out"
    );

    for needle in [
        "- date: ",
        "quick mode",
        "- machine: ",
        " cores ",
        "kernel ",
        "cgroup ",
        "- load average (1 min): ",
        "- minibox: minibox ",
        "runc",
        "hyperfine",
        "wrk",
    ] {
        assert!(
            report.contains(needle),
            "the header lacks {needle:?}:\n{report}"
        );
    }
    let rows = rows(&report);
    let lat = "start-to-exit `true`, `--rm`";
    check(&rows, lat, "minibox `--network none`", "ms", none);
    check(&rows, lat, "minibox-runc run (the same bundle)", "ms", true);
    // `-p` without `--network` works only when the bridge is the default network.
    check(&rows, lat, "minibox (default network)", "ms", publish);
    check(&rows, lat, "minibox `-p 8080:80`", "ms", publish);
    check(&rows, lat, "runc run (prepared bundle)", "ms", true);

    let conc = check(
        &rows,
        "10 concurrent starts, own `-p` each",
        "minibox",
        "s",
        publish,
    );
    let setup = check(
        &rows,
        "set-up: `run --rm -p` of `true`",
        "minibox",
        "ms",
        publish,
    );
    let rps = check(
        &rows,
        "requests/s, wrk -t2 -c32, Go web demo",
        "minibox",
        "req/s",
        publish,
    );
    check(
        &rows,
        "host memory per running container",
        "minibox",
        "MiB",
        publish,
    );
    check(
        &rows,
        "host memory per running container",
        "minibox (supervisor with `--health-cmd`",
        "MiB",
        publish,
    );
    if publish {
        assert!(
            conc[0].0[3].contains("leakcheck: clean"),
            "leftovers: {}",
            conc[0].0[3]
        );
        assert_eq!(
            setup.len(),
            5,
            "set-up with 0, 10 and 20 running, then 0 and 20 spaced"
        );
        for (row, running) in [(1, "10 running"), (2, "20 running")] {
            assert!(
                setup[row].0[1].contains(running)
                    && setup[row].0[3].contains("x the set-up with 0"),
                "{:?}",
                setup[row].0
            );
        }
        for (row, running) in [(3, "0 running, "), (4, "20 running, ")] {
            assert!(
                setup[row].0[1].contains(running) && setup[row].0[1].ends_with(" s apart"),
                "{:?}",
                setup[row].0
            );
        }
        assert!(
            setup[4].0[3].contains("x the 0 running row"),
            "{:?}",
            setup[4].0
        );
        assert_eq!(rps.len(), 3, "via 127.0.0.1, via the host address, direct");
        assert!(rps[0].0[3].ends_with("x of direct"), "{}", rps[0].0[3]);
    }
    check(
        &rows,
        "import of a 10 MB rootfs tarball",
        "`tar -x`",
        "MB/s",
        true,
    );
    check(
        &rows,
        "import of a 10 MB rootfs tarball",
        "minibox import",
        "MB/s",
        import,
    );
    let pull = "pull of a ";
    check(&rows, pull, "physical limit", "s", true);
    check(&rows, pull, "minibox pull", "s", import);
    check(&rows, pull, "skopeo copy + umoci unpack", "s", true);
    let cni = "CNI: netns add, ADD with one port mapping, DEL, netns del";
    check(&rows, cni, "minibox-cni", "ms", true);
    check(&rows, cni, "bridge + host-local + portmap", "ms", true);
    assert!(
        !report.contains("| podman") && !report.contains("| docker"),
        "the quick mode runs no peers"
    );

    // Every target of the issue, judged or saying what it needs.
    let targets: Vec<&str> = report
        .split("\n## Targets")
        .nth(1)
        .expect("a targets table")
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| target |"))
        .collect();
    assert_eq!(targets.len(), 17, "{targets:#?}");
    for t in &targets {
        assert!(
            t.ends_with("| yes |") || t.ends_with("| no |") || t.contains("| needs: "),
            "{t}"
        );
    }
    if none {
        assert!(
            !targets
                .iter()
                .any(|t| t.contains("half of runc") && t.contains("needs:")),
            "{targets:#?}"
        );
    }

    // Nothing of the run is left: its private state directory and its cgroup parent are gone.
    let state = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bench: private state "))
        .expect("the state line");
    let (dir, cgroup) = state.split_once(", cgroup parent ").unwrap();
    assert!(!Path::new(dir).exists(), "{dir} left behind");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let path = hierarchy.unwrap().path().join(cgroup);
        assert!(!path.exists(), "{} left behind", path.display());
    }
}
