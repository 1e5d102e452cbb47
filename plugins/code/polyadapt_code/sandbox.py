"""Run generated programs in a sandbox and score pass@k.

A program (task prompt + completion + the task's tests + ``check(entry_point)``) never runs
in the polyadapt process. With ``sandbox: bwrap`` (the default) each runs under bubblewrap
(``bwrap``), in fresh Linux namespaces:

- **files**: a new mount namespace whose root is empty but for read-only binds of ``/usr``
  (with ``/bin``, ``/lib*`` as there), ``/etc/ld.so.cache`` and ``/etc/localtime``, and the
  base interpreter's prefix (the real one behind a virtualenv: the program runs with
  ``python -I -S``, the standard library only, so the venv and the repository are not
  needed); its parent folders can be crossed but not listed. Everything else — the
  repository, ``/root`` and every home, the host's ``/tmp`` — does not exist there. The only
  writable places are the task folder ``/task`` (the working directory and ``HOME``),
  ``/tmp`` and ``/dev/shm``: size-limited tmpfs that vanish with the sandbox. ``/proc`` is
  a new one for the sandbox's pid namespace; ``/dev`` is bwrap's minimal one (null, zero,
  full, random, urandom, tty, a private ptmx/pts);
- **network**: a new network namespace with only its own loopback: nothing on the host or
  beyond can be reached, names do not resolve;
- **processes**: a new pid namespace (the program sees its own processes only and cannot
  signal anything outside; when the sandbox ends every process in it dies), IPC and UTS
  namespaces, and ``--die-with-parent``;
- **user**: run as root (CI, containers), bwrap keeps only CAP_SETUID/CAP_SETGID for the
  sandbox's first step, which drops to an unprivileged uid of its own (one per program,
  from :data:`SANDBOX_UID_BASE`) before the program is read; no capabilities remain and
  ``no_new_privs`` is set. Run as a user, bwrap makes a user namespace and the program
  keeps that user's uid;
- **limits**: CPU time (``RLIMIT_CPU``), address space (``RLIMIT_AS``: an allocation past
  it raises ``MemoryError``), processes and threads (``RLIMIT_NPROC``: counted per uid,
  which is why a program gets a uid of its own — root ignores this limit; as a user, a
  kernel >= 5.14 counts it per user namespace, so per program), file size 16 MiB, 256
  open files, no core files; and a wall-clock limit of twice the CPU time + 1 s, after
  which the whole process group is killed (the sandbox's pid 1 with it, which takes every
  process in the namespace: a fork bomb ends there).

What is *not* isolated: the kernel is shared (a kernel bug is an escape), ``/proc`` still
shows the machine's kernel-wide files (``/proc/cpuinfo``, ``/proc/meminfo``...) and the
bound paths (``/proc/self/mountinfo``), the program's CPU and memory use compete with the
host's (memory is bounded per process, so at most ``memory_mb`` times ``max_processes`` in
all, plus the tmpfs sizes), there is no seccomp filter, and run as root the program may
create user namespaces of its own (they cannot undo the read-only binds; run as a user,
bwrap forbids them). A program passes only when it exits 0 *and* the sandbox's first step
wrote a random nonce after the program returned: ``sys.exit(0)`` or ``os._exit(0)`` before a
failing assertion fails (a program that found and printed the nonce could still cheat).

With ``sandbox: unisolated`` (opt in, for machines without bubblewrap) programs run as
before this module used bwrap: a ``python -I`` subprocess in a temporary folder with the
CPU, memory and file-size rlimits, ``unshare -n`` where the kernel allows it and the ``socket`` module
disabled. That is a guard against accidents, not a boundary: the program sees and may
write everything the polyadapt user can, and a warning says so.

pass@k is the unbiased estimator of Chen et al. (2021): with ``n`` samples of which ``c``
pass, ``1 - C(n-c, k) / C(n, k)``, averaged over tasks.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import warnings
from dataclasses import dataclass
from math import comb

from polyadapt.errors import ConfigError

#: The sandbox kinds ``task_options.sandbox`` accepts.
SANDBOXES = ("bwrap", "unisolated")
#: Programs run as root get uids from here on (one per program), never a real account's.
SANDBOX_UID_BASE = 1_500_000_000
#: The size of each writable tmpfs (``/task``, ``/tmp``, ``/dev/shm``).
TMPFS_BYTES = 64 << 20
#: The largest file a program may write (RLIMIT_FSIZE).
FILE_BYTES = 16 << 20
UNISOLATED_WARNING = (
    "task_options.sandbox is 'unisolated': generated programs run WITHOUT isolation "
    "(they can read and write what this user can); install bubblewrap (apt-get install bubblewrap) "
    "and remove the option to isolate them"
)

#: The sandbox's first step: limits, then (as root) the drop to the program's own uid, then
#: the program, read from stdin, then the run's nonce on stdout. argv: CPU seconds, address-space
#: bytes, processes, uid (-1: keep), nonce.
_BWRAP_BOOTSTRAP = textwrap.dedent(
    f"""
    import os, resource, sys
    cpu, memory, processes, uid = (int(value) for value in sys.argv[1:5])
    nonce = sys.argv[5].encode()
    del sys.argv[1:]
    for limit, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (memory, memory)),
        (resource.RLIMIT_NPROC, (processes, processes)),
        (resource.RLIMIT_FSIZE, ({FILE_BYTES}, {FILE_BYTES})),
        (resource.RLIMIT_NOFILE, (256, 256)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(limit, value)
    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    source = sys.stdin.read()
    sys.stdin = open(os.devnull)
    exec(compile(source, "program.py", "exec"), {{"__name__": "__main__"}})
    sys.stdout.flush()
    os.write(1, nonce)  # reached only when the program ran to its end: not after sys.exit(0)
    """
)

#: The unisolated runner's first step: limits, no sockets, then the program, then the nonce
#: (argv: the program's file, CPU seconds, address-space bytes, nonce).
_UNISOLATED_BOOTSTRAP = textwrap.dedent(
    f"""
    import os, resource, socket, sys
    cpu, memory, nonce = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_BYTES}, {FILE_BYTES}))
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
    namespace = {{"__name__": "__main__"}}
    exec(compile(source, "program.py", "exec"), namespace)
    sys.stdout.flush()
    os.write(1, nonce)
    """
)

_uids = itertools.count()


class UnisolatedWarning(UserWarning):
    """Generated programs run without isolation (``task_options.sandbox: unisolated``)."""


@dataclass
class Outcome:
    """How one program ended: ``passed``, ``failed`` (an exception or a non-zero exit),
    ``timeout`` (killed by the CPU or wall-clock limit) or ``memory`` (over RLIMIT_AS)."""

    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def base_interpreter() -> str:
    """The real Python binary behind ``sys.executable`` (a virtualenv's base), so a sandbox
    needs only the base prefix, never the venv or the repository it may live in."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.join(sys.base_exec_prefix, "bin", name), sys.executable):
        real = os.path.realpath(candidate)
        if os.path.isfile(real) and os.access(real, os.X_OK):
            return real
    return os.path.realpath(sys.executable)


def _system_mounts() -> list[str]:
    """bwrap arguments for the read-only system: /usr and /bin, /sbin, /lib* as on the host
    (links stay links), the dynamic loader's cache and the time zone."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", path, path]
    return args


def _interpreter_mounts(interpreter: str) -> list[str]:
    """bwrap arguments binding the interpreter's prefixes read-only at their own paths (a
    pyenv build finds its libpython by absolute path); their parents are made crossable
    (0711) but not listable, so e.g. ``/root`` shows nothing."""
    roots = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.base_exec_prefix),
        os.path.dirname(os.path.dirname(interpreter)),
    }
    args: list[str] = []
    made: set[str] = {"/", "/usr", "/etc", "/task", "/tmp", "/dev", "/proc"}
    for root in sorted(roots):
        if root == "/usr" or root.startswith("/usr/"):
            continue
        parent = os.path.dirname(root)
        ancestors = []
        while parent not in made and parent != os.path.dirname(parent):
            ancestors.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(ancestors):
            args += ["--perms", "0711", "--dir", folder]
            made.add(folder)
        args += ["--ro-bind", root, root]
        made.add(root)
    return args


def sandbox_uids() -> range:
    """The uids this process gives its programs when run as root: 1000 of its own, taken in
    turn, so concurrent programs (and other polyadapt processes) do not share RLIMIT_NPROC."""
    start = SANDBOX_UID_BASE + (os.getpid() % 100_000) * 1000
    return range(start, start + 1000)


def bwrap_command(bwrap: str, *, cpu: int, memory_bytes: int, max_processes: int, nonce: str = "-") -> list[str]:
    """The command that runs one program (read from stdin) under bwrap with these limits."""
    interpreter = base_interpreter()
    as_root = os.geteuid() == 0
    if as_root:
        # bwrap as root makes no user namespace; the bootstrap drops to a uid of the program's own.
        namespaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        namespaces += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        uids = sandbox_uids()
        uid = uids[next(_uids) % len(uids)]
    else:
        namespaces = ["--unshare-all", "--unshare-user", "--disable-userns"]
        uid = -1
    tmpfs = ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs"]
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/task",
        "TMPDIR": "/tmp",
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
    }
    return [
        bwrap,
        *namespaces,
        "--die-with-parent",
        "--clearenv",
        *itertools.chain.from_iterable(("--setenv", k, v) for k, v in environment.items()),
        *_system_mounts(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *tmpfs,
        "/dev/shm",
        *tmpfs,
        "/tmp",
        *tmpfs,
        "/task",
        *_interpreter_mounts(interpreter),
        "--chdir",
        "/task",
        "--",
        interpreter,
        "-I",
        "-S",
        "-c",
        _BWRAP_BOOTSTRAP,
        str(cpu),
        str(memory_bytes),
        str(max_processes),
        str(uid),
        nonce,
    ]


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bwrap runs a program here, else why not (one line). Probed once per process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap (bubblewrap) is not on PATH"
    command = bwrap_command(bwrap, cpu=10, memory_bytes=1 << 30, max_processes=8)
    try:
        probe = subprocess.run(
            command, input=b"import os\nassert os.getcwd() == '/task'\n", capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap failed to start: {exc}"
    if probe.returncode != 0:
        lines = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap cannot create its sandbox here ({lines[-1] if lines else f'exit status {probe.returncode}'})"
    return None


def check_sandbox(sandbox: str) -> str | None:
    """Raise ConfigError when ``sandbox`` cannot run here; return a warning to show, if any.

    Call it before any program runs: ``bwrap`` needs a working bubblewrap (probed once),
    ``unisolated`` always runs and returns :data:`UNISOLATED_WARNING`.
    """
    if sandbox == "unisolated":
        return UNISOLATED_WARNING
    if sandbox != "bwrap":
        raise ConfigError(f"task_options.sandbox: unknown sandbox {sandbox!r}; use one of {', '.join(SANDBOXES)}")
    problem = bwrap_problem()
    if problem is not None:
        raise ConfigError(
            f"task_options.sandbox is 'bwrap' but {problem}: install bubblewrap (apt-get install bubblewrap), "
            "or set task_options.sandbox: unisolated to run generated code without isolation"
        )
    return None


@functools.lru_cache(maxsize=1)
def network_isolation() -> tuple[str, ...]:
    """The unisolated runner's command prefix without network, or () when none works."""
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


def run_program(
    source: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 32,
    sandbox: str = "bwrap",
) -> Outcome:
    """Run ``source`` in the sandbox (see the module docs) and say how it ended.

    Raises ConfigError (before running anything) when ``sandbox`` cannot run here.
    """
    check_sandbox(sandbox)
    cpu = max(1, round(timeout_s))
    # written after the program returns: an early sys.exit(0) or os._exit(0) exits 0 without it
    nonce = f"polyadapt-done-{secrets.token_hex(16)}"
    with tempfile.TemporaryDirectory(prefix="polyadapt-sandbox-") as folder:
        if sandbox == "bwrap":
            bwrap = shutil.which("bwrap") or "bwrap"
            command = bwrap_command(
                bwrap, cpu=cpu, memory_bytes=memory_mb << 20, max_processes=max_processes, nonce=nonce
            )
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            program = os.path.join(folder, "program.py")
            with open(program, "w", encoding="utf-8") as handle:
                handle.write(source)
            command = [*network_isolation(), sys.executable, "-I", "-c", _UNISOLATED_BOOTSTRAP]
            command += [program, str(cpu), str(memory_mb << 20), nonce]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "LANG": "C.UTF-8"}
            env["PYTHONHASHSEED"] = "0"
        returncode, output, error = _run(command, source, cwd=folder, env=env, wall_s=2 * timeout_s + 1)
    if returncode is None:
        return Outcome("timeout", f"wall-clock limit {2 * timeout_s + 1:g} s")
    last = error.strip().splitlines()[-1] if error.strip() else ""
    if returncode == 0 and output.endswith(nonce):
        return Outcome("passed")
    if returncode == 0:
        return Outcome("failed", "the program exited before its tests ran to the end (sys.exit or os._exit)")
    # bwrap reports a program killed by a signal as 128 + the signal; Popen as -signal.
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return Outcome("timeout", f"CPU limit {cpu} s")
    if "MemoryError" in last:
        return Outcome("memory", f"memory limit {memory_mb} MiB")
    return Outcome("failed", last[:200])


def _run(
    command: list[str], source: str, *, cwd: str, env: dict[str, str], wall_s: float
) -> tuple[int | None, str, str]:
    """Run ``command`` with ``source`` on stdin in a new session: (its exit status, or None
    when the wall-clock limit killed its process group; the end of its stdout; of its stderr).

    Files, not pipes: the program's output is bounded by its RLIMIT_FSIZE, and a program
    that never reads its input cannot block this process.
    """
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        stdin.write(source.encode("utf-8"))
        stdin.seek(0)
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            returncode: int | None = proc.wait(timeout=wall_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            returncode = None
        stdout.seek(max(0, stdout.seek(0, os.SEEK_END) - 256))
        stderr.seek(max(0, stderr.tell() - 4096))
        return returncode, stdout.read().decode("utf-8", "replace"), stderr.read().decode("utf-8", "replace")


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
    max_processes: int = 32,
    workers: int = 2,
    sandbox: str = "bwrap",
) -> dict[str, object]:
    """Run every completion of every task and return pass@k per k and the outcome counts.

    ``completions[i]`` holds the samples for ``tasks[i]``. Programs run ``workers`` at a time.
    Raises ConfigError before any program runs when ``sandbox`` cannot run here; with
    ``unisolated`` it warns that the programs are not isolated.
    """
    from concurrent.futures import ThreadPoolExecutor

    warning = check_sandbox(sandbox)
    if warning:
        warnings.warn(warning, UnisolatedWarning, stacklevel=2)
    run = functools.partial(
        run_program, timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes, sandbox=sandbox
    )
    jobs = [(i, program_for(task, c)) for i, task in enumerate(tasks) for c in completions[i]]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda job: run(job[1]), jobs))
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
