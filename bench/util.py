#!/usr/bin/env python3
"""Small helpers for bench/run, kept out of bash where bash would be clumsy.

  util.py stats FILE.json            median and p90 (ms) of a hyperfine --export-json file
  util.py wait-http T0 TIMEOUT HOST:PORT...
                                     seconds from T0 (epoch) until every HOST:PORT answered HTTP
  util.py mem PID...                 summed VmRSS and PSS (KiB) of the processes
  util.py mktar OUT MB BASE.tar      a rootfs tarball of about MB megabytes: BASE plus random files
  util.py mkimage DIR MB             an OCI layout of a Debian-like rootfs of about MB megabytes
                                     (this host's /usr files) in 3 gzip layers; DIR/layers lists
                                     the layer blobs
  util.py runc-config FILE CGROUP    prepares `runc spec`'s config.json: runs `true`, no terminal,
                                     RLIMIT_NOFILE 1024 (or the hard limit), the given cgroup path
"""
import gzip
import hashlib
import io
import json
import os
import resource
import socket
import sys
import tarfile
import time


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks (as numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def stats(paths):
    """Median, p90 and count of the runs of one or more hyperfine exports, pooled."""
    times = []
    for path in paths:
        with open(path) as f:
            times += json.load(f)["results"][0]["times"]
    times.sort()
    print(f"{percentile(times, 0.5) * 1000:.1f} {percentile(times, 0.9) * 1000:.1f} {len(times)}")


def answers(host, port):
    """True once an HTTP GET to host:port gets a 200 response. A short timeout: a port whose SYN
    goes unanswered yet (rules in place, container not wired) must not hold up the others."""
    try:
        with socket.create_connection((host, port), timeout=0.1) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            data = b""
            while len(data) < 12:
                chunk = s.recv(64)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.") and data[9:12] == b"200"
    except OSError:
        return False


def wait_http(t0, timeout, targets):
    pending = []
    for t in targets:
        host, port = t.rsplit(":", 1)
        pending.append((host, int(port)))
    deadline = time.time() + timeout
    while pending:
        pending = [hp for hp in pending if not answers(*hp)]
        if pending:
            if time.time() > deadline:
                print(f"timeout: {len(pending)} of {len(targets)} never answered", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.005)
    print(f"{time.time() - t0:.3f}")


def mem(pids):
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    print(rss, pss)


def mktar(out, megabytes, base):
    """Random (incompressible) files of 100 KiB in directories of 100, like a rootfs's many
    small files, after the base rootfs's own entries."""
    chunk = 100 * 1024
    with tarfile.open(base) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for i in range(megabytes * 1024 * 1024 // chunk):
            if i % 100 == 0:
                d = tarfile.TarInfo(f"usr/share/bench/d{i // 100:03}")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                dst.addfile(d)
            info = tarfile.TarInfo(f"usr/share/bench/d{i // 100:03}/f{i:05}")
            info.size, info.mode, info.mtime = chunk, 0o644, 1_700_000_000
            dst.addfile(info, io.BytesIO(os.urandom(chunk)))


def mkimage(out, megabytes):
    """A rootfs like Debian's minbase, made of this (Debian) host's own files under /usr: real
    binaries, libraries and text, compressible the way a distribution's files are. Split into three
    layers (60, 30 and 10 % of the bytes) as image builders stack them, each gzip-compressed at
    level 6 as Docker and skopeo do."""
    def walk():
        for top in ["/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/sbin", "/usr/share", "/usr/lib"]:
            for root, dirs, names in os.walk(top):
                dirs.sort()
                for n in sorted(names):
                    path = os.path.join(root, n)
                    if not os.path.islink(path) and os.path.isfile(path):
                        yield path

    seen, chosen, total = set(), [], 0
    for path in walk():
        if total >= megabytes << 20:
            break
        size = os.path.getsize(path)
        if path not in seen and 0 < size < min(16 << 20, (megabytes << 20) // 8) and os.access(path, os.R_OK):
            seen.add(path)
            chosen.append(path)
            total += size
    bounds = [0.6 * total, 0.9 * total, float("inf")]
    layers, current, acc = [[], [], []], 0, 0
    for path in chosen:
        acc += os.path.getsize(path)
        while acc > bounds[current]:
            current += 1
        layers[current].append(path)
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return "sha256:" + digest, len(data)

    descriptors, diff_ids = [], []
    for paths in layers:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made = set()
            for path in paths:
                parts = path.strip("/").split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in made:
                        made.add(d)
                        info = tarfile.TarInfo(d)
                        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                        tar.addfile(info)
                info = tar.gettarinfo(path, path.strip("/"))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        tar_bytes = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
        digest, size = put(gzip.compress(tar_bytes, compresslevel=6, mtime=0))
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest, "size": size})
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdigest, csize = put(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cdigest, "size": csize},
                "layers": descriptors}
    mdigest, msize = put(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
        "size": msize, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "layers"), "w") as f:
        for d in descriptors:
            f.write(os.path.join(blobs, d["digest"][7:]) + "\n")
    compressed = sum(d["size"] for d in descriptors)
    print(f"{compressed / 1e6:.0f} {total / 1e6:.0f}")


def runc_config(path, cgroup):
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    # 1024 open files as Docker's default, but never above the hard limit: this VM lacks
    # CAP_SYS_RESOURCE and runc fails when asked to raise one.
    nofile = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": nofile, "hard": nofile}]
    spec["linux"]["cgroupsPath"] = cgroup
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "stats":
        stats(args)
    elif cmd == "wait-http":
        wait_http(float(args[0]), float(args[1]), args[2:])
    elif cmd == "mem":
        mem(args)
    elif cmd == "mktar":
        mktar(args[0], int(args[1]), args[2])
    elif cmd == "mkimage":
        mkimage(args[0], int(args[1]))
    elif cmd == "runc-config":
        runc_config(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
