"""Container figures per target of the Debian flavor (and Alpine, where its images exist).

Prints, never judges: image size; seconds from `docker run` to Asterisk answering; seconds for
`docker stop`; idle memory of the container and of each Python process. Medians of several runs, next to
a baseline measured in the same run: a bare `docker run` of the base OS image to `true`.

Usage: python3 bench/container.py [--runs N] [--image-prefix pbx-test]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=check).stdout


def exists(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode
        == 0
    )


def timed(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True)
    return time.perf_counter() - started


def start_to_answer(image: str) -> tuple[float, float, str]:
    """Seconds until `asterisk -rx` answers fully booted, and seconds for docker stop."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    sh("docker", "run", "-d", "--name", name, image)
    try:
        while True:
            done = subprocess.run(
                ["docker", "exec", name, "asterisk", "-rx", "core waitfullybooted"],
                capture_output=True,
                text=True,
                check=False,
            )
            if "fully booted" in done.stdout:
                break
            time.sleep(0.05)
        answered = time.perf_counter() - started
        time.sleep(3)  # let it settle before measuring idle memory
        memory = idle_memory(name)
        stop = timed("docker", "stop", name)
    finally:
        sh("docker", "rm", "-f", "-v", name, check=False)
    return answered, stop, memory


def idle_memory(name: str) -> str:
    container = (
        sh("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name).strip().split(" / ")[0]
    )
    script = (
        'for p in /proc/[0-9]*; do case "$(readlink $p/exe)" in *python3*) '
        'echo "$(grep VmRSS $p/status | tr -s " " | cut -d" " -f2) $(tr "\\0" " " < $p/cmdline)";; esac; done'
    )
    rows = sh("docker", "exec", name, "sh", "-c", script, check=False).strip().splitlines()
    pythons = ", ".join(
        f"{r.split(' ', 2)[2].strip()[:40]}: {int(r.split()[0]) / 1024:.1f} MiB" for r in rows
    )
    return f"container {container}; python: {pythons or 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image-prefix", default="pbx-test")
    args = parser.parse_args()

    baseline = statistics.median(
        timed("docker", "run", "--rm", "debian:sid", "true") for _ in range(args.runs)
    )
    print(f"baseline: docker run --rm debian:sid true: median {baseline:.2f} s over {args.runs} runs")
    for dist, suffix in (("debian", "-debian"), ("alpine", "")):
        for target in ("mini", "base"):
            image = f"{args.image_prefix}:{target}{suffix}"
            if not exists(image):
                print(f"{dist:6} {target:4}: {image} not built here (skipped)")
                continue
            size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image)) / 1e6
            runs = [start_to_answer(image) for _ in range(args.runs)]
            answer = statistics.median(r[0] for r in runs)
            stop = statistics.median(r[1] for r in runs)
            print(
                f"{dist:6} {target:4}: image {size:.0f} MB; run->Asterisk answers median {answer:.2f} s "
                f"({answer / baseline:.1f}x baseline); docker stop median {stop:.2f} s; idle: {runs[-1][2]}"
            )


if __name__ == "__main__":
    main()
