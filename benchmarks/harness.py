"""What the benchmark scripts share: their workdir, child processes, measurements and tables.

* `reuse_or_generate`: data generated once into a workdir, kept while the parameters match
  (``benchmark_params.json`` records them, and the ``prep`` summary once generation finished).
* `run_child`: one implementation run in a fresh ``python -m <script> --child <impl>`` process
  that writes its results as JSON; the parent adds the process's wall and CPU time and what
  other processes used meanwhile (`cpu_busy_s`).
* `timed`: inside the child, the clock (wall and CPU) around exactly one call, with the
  process's RSS before it and its own peak RSS (`peak_rss_mib`, from ``VmHWM``) after it.
* `parser`, `add_run_options`, `parse_which`, `at_least_one`, `rounds`, `run_line`,
  `load_note`, `summarize`: the command line and the report around the runs.
* `machine`, `machine_line`, `markdown_table`: how results are described and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MARKER = "benchmark_params.json"
BUSY = 0.25  # other processes' CPUs during the runs above which the times are called inflated


# --------------------------------------------------------------------------------------------
# The workdir: generated once, reused while the parameters match


def reuse_or_generate(workdir: Path, params: Any, generate: Callable[[], dict[str, Any]]
                      ) -> dict[str, Any]:
    """The ``prep`` summary of the data in ``workdir``, generating it first unless it is there.

    ``params`` (a dataclass) is what the data depend on. A workdir whose marker holds the same
    parameters and a ``prep`` is reused; one with other parameters, or whose generation stopped
    half-way (the marker is written before ``generate`` runs, ``prep`` only after), is emptied
    and generated again; a non-empty folder without a marker is refused.
    """
    marker = workdir / MARKER
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("params") == asdict(params) and saved.get("prep"):
            print(f"reusing the data in {workdir} (same parameters)")
            return saved["prep"]
        print(f"parameters changed or an earlier run stopped half-way: regenerating {workdir}")
        shutil.rmtree(workdir)
    elif workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir} exists, is not empty and has no {MARKER}: "
                         "not a benchmark workdir; pass another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"params": asdict(params), "prep": None}, indent=2))
    prep = generate()
    marker.write_text(json.dumps({"params": asdict(params), "prep": prep}, indent=2))
    return prep


def saved_params(workdir: Path) -> dict[str, Any]:
    """The parameters the data in ``workdir`` were generated with (for a child process)."""
    return json.loads((workdir / MARKER).read_text())["params"]


# --------------------------------------------------------------------------------------------
# Measurements


def _vmhwm_mib(pid: int | str = "self") -> float | None:
    """A process's peak RSS in MiB (``VmHWM``), or None where /proc does not say (or it ended)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mib(pid: int | None = None) -> float:
    """The peak RSS of this process (or of ``pid``, 0 once it has gone), in MiB.

    Linux keeps ``ru_maxrss`` across fork + exec, so a child's getrusage(RUSAGE_SELF) (and the
    parent's wait4/RUSAGE_CHILDREN) starts at the parent's RSS at fork time: 470 MiB here, as
    much as a small run needs. VmHWM is the high-water mark of the exec'd image alone.
    """
    if pid is not None:
        return _vmhwm_mib(pid) or 0.0
    peak = _vmhwm_mib()
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def rss_now_mib() -> float | None:
    """This process's resident memory now, in MiB (Linux /proc; None elsewhere)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_busy_s() -> float:
    """CPU seconds all processes used since boot (Linux /proc/stat; NaN elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timed:
    """One timed call: its result, wall and CPU seconds, RSS before it and peak RSS after it."""

    result: Any
    wall_s: float
    cpu_s: float
    rss_start_mib: float | None
    peak_rss_mib: float


def timed(run: Callable[[], Any]) -> Timed:
    """Call ``run()`` once on the clock (wall and this process's CPU time)."""
    rss_start = rss_now_mib()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Timed(result, wall, cpu, rss_start, peak_rss_mib())


# --------------------------------------------------------------------------------------------
# Child processes


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: the JSON it wrote, its wall and CPU time, all CPUs' meanwhile."""

    result: dict[str, Any]
    elapsed_s: float  # the whole process, imports and the child's own checks included
    cpu_s: float  # the child's user + system time
    busy_s: float  # CPU time every process on the machine used meanwhile

    def other_load(self, also_own_s: float = 0.0) -> float:
        """CPU that other processes used meanwhile, in cores: 0 on a quiet machine.

        ``also_own_s``: CPU seconds of the child's own helpers that are not its children in
        the rusage sense (a JVM it talks to, for example).
        """
        return max(self.busy_s - self.cpu_s - also_own_s, 0.0) / self.elapsed_s


def run_child(module: str, impl: str, out: Path, args: Sequence[str] = (), *,
              quiet: bool = False) -> ChildRun:
    """Run ``python -m module --child impl --child-out out *args`` and read ``out`` (JSON).

    ``quiet`` discards the child's standard output. A child that fails ends the benchmark.
    """
    cmd = [sys.executable, "-m", module, "--child", impl, "--child-out", str(out), *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    busy0, t0 = cpu_busy_s(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None)
    # wait4: this child's own CPU time (its ru_maxrss is useless, see peak_rss_mib).
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed, busy = time.perf_counter() - t0, cpu_busy_s() - busy0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{impl} failed with exit code {code}")
    return ChildRun(json.loads(out.read_text()), elapsed, usage.ru_utime + usage.ru_stime, busy)


# --------------------------------------------------------------------------------------------
# Command line


def parser(module: str, description: str, example: str,
           implementations: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``python -m module``, with the hidden options of its child processes."""
    made = argparse.ArgumentParser(prog=f"python -m {module}", description=description,
                                   epilog=example,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    if implementations is not None:
        made.add_argument("--child", choices=list(implementations), help=argparse.SUPPRESS)
        made.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return made


def add_run_options(parser: argparse.ArgumentParser, implementations: Iterable[str]) -> None:
    """``--seed``, ``--which`` and ``--repeat``."""
    names = ",".join(implementations)
    parser.add_argument("--seed", type=int, default=20240601, help="numpy seed of the data")
    parser.add_argument("--which", default=names,
                        help=f"comma-separated, from {names} (default all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, each implementation once per round in a fresh process; "
                             "the table shows the best and the median (default 1)")


def parse_which(which: str, implementations: Iterable[str]) -> list[str]:
    """The implementations ``--which`` names, in its order; an unknown one ends the benchmark."""
    known = list(implementations)
    chosen = [w.strip() for w in which.split(",") if w.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"--which: unknown {unknown}; choose from {known}")
    return chosen


def at_least_one(args: argparse.Namespace, *names: str) -> None:
    """End the benchmark unless every option ``names`` (attribute names) is at least 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")


# --------------------------------------------------------------------------------------------
# Report


def rounds(which: Sequence[str], repeat: int) -> Iterator[tuple[int, str]]:
    """(round, implementation), announced; rounds interleave, so load elsewhere hits all alike."""
    for round_ in range(repeat):
        for impl in which:
            print(f"running {impl} (round {round_ + 1}/{repeat}) ...", flush=True)
            yield round_, impl


def run_line(r: dict[str, Any], *, cpus: int | None = None, detail: str = "") -> str:
    """The line printed after a run: wall time, peak RSS, ``detail``, other processes' load."""
    of = f" of {cpus}" if cpus else ""
    return (f"  {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB{detail}; other "
            f"processes used {r['other_load']:.2f}{of} CPUs meanwhile")


def max_other_load(runs: dict[str, list[dict[str, Any]]]) -> float:
    """The highest load other processes put on the machine during any run, in cores."""
    return max(r["other_load"] for rs in runs.values() for r in rs)


def load_note(busy: float, *, cpus: int | None = None,
              consequence: str = "the times above are inflated.") -> str | None:
    """The note printed when other processes used more than `BUSY` CPUs, else None."""
    if not busy > BUSY:
        return None
    of = f" of the {cpus}" if cpus else ""
    return f"\nnote: other processes used up to {busy:.2f}{of} CPUs during the runs: {consequence}"


def summarize(runs: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, Any]:
    """One implementation's runs: ``keys`` of the first, best and median wall, highest peak RSS."""
    walls = sorted(r["wall_s"] for r in runs)
    return {**{k: runs[0][k] for k in keys}, "wall_s": walls[0],
            "wall_median_s": float(np.median(walls)),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "runs": runs}


def machine(*packages: str) -> dict[str, Any]:
    """CPUs, CPU model, memory, Python and OS, and the versions of ``packages``."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    return {"nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "cpu": cpu, "memory_gib": mem,
            "python": platform.python_version(),
            **{name: import_module(name).__version__ for name in packages},
            "os": platform.platform()}


def machine_line(described: dict[str, Any], *packages: str) -> str:
    """``machine: N CPUs (model), M GiB; Python x, <package> y, ...``."""
    versions = "".join(f", {name} {described[name]}" for name in packages)
    return (f"machine: {described['nproc']} CPUs ({described['cpu']}), "
            f"{described['memory_gib']} GiB; Python {described['python']}{versions}")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, align: str) -> str:
    """A Markdown table; ``align`` holds ``l`` or ``r`` per column.

    Examples
    --------
    >>> print(markdown_table(["name", "s"], [["a", "1.00"]], align="lr"))
    | name | s |
    |---|---:|
    | a | 1.00 |
    """
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} columns, the header {len(header)}")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return "\n".join(["| " + " | ".join(header) + " |", rule, *lines])
