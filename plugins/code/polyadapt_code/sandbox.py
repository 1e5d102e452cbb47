"""Run generated programs in a sandbox subprocess and score pass@k.

A program (task prompt + completion + the task's tests + ``check(entry_point)``) never runs
in the polyadapt process. Each runs in a fresh ``python -I`` subprocess, in a new session,
in an empty temporary folder, with:

- **CPU time**: ``RLIMIT_CPU`` (the kernel kills it with SIGXCPU/SIGKILL) and a wall-clock
  timeout of twice that, after which the whole process group is killed (a program that
  sleeps uses no CPU);
- **memory**: ``RLIMIT_AS`` (an allocation past it raises ``MemoryError``);
- **files**: ``RLIMIT_FSIZE`` 16 MiB, ``RLIMIT_CORE`` 0;
- **no network**: in a new network namespace (``unshare -rn``, or ``unshare -n`` as root)
  when the kernel allows it, so no interface but a down loopback exists; in every case
  the ``socket`` module is disabled before the program starts (creating a socket raises
  ``PermissionError``), and ``os.system``/``subprocess`` are left alone but live inside
  the same limits and namespace.

This is a guard against accidents (runaway loops, memory hogs, a test that calls home),
not a security boundary against hostile code: for untrusted models use a container or VM.

pass@k is the unbiased estimator of Chen et al. (2021): with ``n`` samples of which ``c``
pass, ``1 - C(n-c, k) / C(n, k)``, averaged over tasks.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from math import comb

#: The code the sandbox child runs first: limits, no sockets, then the program.
_BOOTSTRAP = textwrap.dedent(
    """
    import resource, socket, sys
    cpu, memory = int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _no_network(*args, **kwargs):
        raise PermissionError("network access is disabled in the polyadapt sandbox")

    class _NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            _no_network()

    socket.socket = _NoSocket
    socket.create_connection = _no_network
    socket.socketpair = _no_network
    socket.getaddrinfo = _no_network
    source = open(sys.argv[1], encoding="utf-8").read()
    del sys.argv[1:]
    namespace = {"__name__": "__main__"}
    exec(compile(source, "program.py", "exec"), namespace)
    """
)


@dataclass
class Outcome:
    """How one program ended: ``passed``, ``failed`` (an exception or a non-zero exit),
    ``timeout`` (killed by the CPU or wall-clock limit) or ``memory`` (over RLIMIT_AS)."""

    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_isolation() -> tuple[str, ...]:
    """The command prefix that runs a program without network, or () when none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "-rn"), (unshare, "-n")):
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


def program_for(task: dict[str, str], completion: str) -> str:
    """The HumanEval program: prompt + completion, the tests, then ``check(entry_point)``."""
    return f"{task['prompt']}{completion}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"


def run_program(source: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> Outcome:
    """Run ``source`` in the sandbox (see the module docs) and say how it ended."""
    cpu = max(1, round(timeout_s))
    with tempfile.TemporaryDirectory(prefix="polyadapt-sandbox-") as folder:
        program = os.path.join(folder, "program.py")
        with open(program, "w", encoding="utf-8") as handle:
            handle.write(source)
        command = [
            *network_isolation(),
            sys.executable,
            "-I",
            "-c",
            _BOOTSTRAP,
            program,
            str(cpu),
            str(memory_mb << 20),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONHASHSEED": "0",
            "HOME": folder,
            "LANG": "C.UTF-8",
        }
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=2 * timeout_s + 1)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return Outcome("timeout", f"wall-clock limit {2 * timeout_s + 1:g} s")
    error = stderr.decode("utf-8", "replace").strip().splitlines()
    last = error[-1] if error else ""
    if proc.returncode == 0:
        return Outcome("passed")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return Outcome("timeout", f"CPU limit {cpu} s")
    if "MemoryError" in last:
        return Outcome("memory", f"memory limit {memory_mb} MiB")
    return Outcome("failed", last[:200])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for one task with ``n`` samples, ``c`` of them correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def score(
    tasks: list[dict[str, str]],
    completions: list[list[str]],
    ks: list[int],
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    workers: int = 2,
) -> dict[str, object]:
    """Run every completion of every task and return pass@k per k and the outcome counts.

    ``completions[i]`` holds the samples for ``tasks[i]``. Programs run ``workers`` at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i, program_for(task, c)) for i, task in enumerate(tasks) for c in completions[i]]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda job: run_program(job[1], timeout_s=timeout_s, memory_mb=memory_mb), jobs))
    correct = [0] * len(tasks)
    statuses: dict[str, int] = {}
    for (index, _), outcome in zip(jobs, outcomes):
        correct[index] += outcome.passed
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    result: dict[str, object] = {"statuses": statuses, "correct": correct}
    for k in ks:
        values = [pass_at_k(len(completions[i]), correct[i], k) for i in range(len(tasks))]
        result[f"pass@{k}"] = sum(values) / len(values) if values else float("nan")
    return result


if __name__ == "__main__":  # pragma: no cover - a manual check: python -m polyadapt_code.sandbox FILE
    with open(sys.argv[1], encoding="utf-8") as source:
        print(json.dumps(run_program(source.read()).__dict__))
