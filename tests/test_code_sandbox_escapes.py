"""Escape attempts against the pass@k sandbox (bubblewrap), each a HumanEval-shaped program.

Every attempt is a completion of ``add(a, b)`` that first tries to reach outside the
sandbox (write or read a host file, open a socket, fork without end, allocate 10 GB, sleep
forever, signal this process) and then returns the right answer: the task passes only when
the attempt raised nothing. Each test asserts both that the task does not count as passed
and that nothing happened outside (the file is absent, the listener got no connection, this
process and the worker pool live on).

The tests that need bubblewrap skip when it cannot run here, but fail when ``CI`` is set: CI
installs bubblewrap (``.ci/run``), so a skip there would hide a regression. The refusal
without bwrap and the ``unisolated`` opt-in are tested with the probe replaced.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from polyadapt_code import sandbox
from polyadapt_code.evaluate import check_task_sandbox
from polyadapt_code.options import CodeOptions
from polyadapt_code.sandbox import Outcome, UnisolatedWarning, program_for, run_program, score

from polyadapt.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
#: Small limits keep the file fast: 1 CPU second, 3 s wall clock, 256 MiB, 16 processes.
LIMITS = {"timeout_s": 1, "memory_mb": 256, "max_processes": 16}
WALL_S = 2 * LIMITS["timeout_s"] + 1
TASK = {
    "task_id": "escape/0",
    "prompt": "def add(a, b):\n",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
}
HONEST = "    return a + b\n"


@pytest.fixture(scope="module")
def bwrap() -> None:
    """Skip (locally) or fail (under CI) when bubblewrap cannot run the sandbox here."""
    problem = sandbox.bwrap_problem()
    if problem is not None:
        message = f"the bwrap sandbox cannot run here: {problem} (apt-get install bubblewrap)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs bubblewrap, so this is a regression")
        pytest.skip(message)


def attempt(code: str) -> str:
    """A completion of ``add`` that runs ``code`` first, then answers right."""
    return "    " + textwrap.indent(textwrap.dedent(code).strip(), "    ").lstrip() + "\n" + HONEST


def run_attempt(code: str, **limits: object) -> Outcome:
    """Run the ``add`` task with :func:`attempt` as completion in the bwrap sandbox."""
    return run_program(program_for(TASK, attempt(code)), **{**LIMITS, **limits})


def sandbox_processes() -> list[int]:
    """Host pids running under a uid this process gave its programs (as root: none once they ended)."""
    uids = sandbox.sandbox_uids()
    pids = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.stat(f"/proc/{name}").st_uid in uids:
                pids.append(int(name))
        except FileNotFoundError:
            continue
    return pids


def test_an_honest_completion_passes_and_a_wrong_one_fails(bwrap):
    assert run_program(program_for(TASK, HONEST), **LIMITS).passed
    assert run_program(program_for(TASK, "    return a - b\n"), **LIMITS).status == "failed"
    # The task folder is the one writable place, and HOME points into it.
    inside = attempt(
        """
        import os
        assert os.getcwd() == os.environ["HOME"] == "/task"
        open("scratch.txt", "w").write("x")
        assert open(os.path.expanduser("~/scratch.txt")).read() == "x"
        """
    )
    assert run_program(program_for(TASK, inside), **LIMITS).passed


def test_writing_outside_the_task_folder_fails_and_leaves_no_file(bwrap, tmp_path):
    target = tmp_path / "escaped.txt"  # this process's tmp folder: outside the sandbox
    in_repo = REPO / f"escaped-{uuid.uuid4().hex}.txt"
    in_usr = Path("/usr/lib") / f"escaped-{uuid.uuid4().hex}.txt"
    try:
        for path in (target, in_repo, in_usr):
            outcome = run_attempt(f"open({str(path)!r}, 'w').write('escaped')")
            assert outcome.status == "failed", (path, outcome)
            assert "Error" in outcome.detail and not path.exists(), (path, outcome)
        # Making the folders first "succeeds" inside the sandbox's own /tmp, never here.
        made = run_attempt(
            f"""
            import os
            os.makedirs({str(tmp_path)!r}, exist_ok=True)
            open({str(target)!r}, 'w').write('escaped')
            """
        )
        assert made.passed and not target.exists()
        # A program that catches the refusal passes on its tests alone, and nothing escaped.
        caught = run_attempt(
            f"""
            try:
                open({str(in_repo)!r}, 'w').write('escaped')
            except OSError:
                pass
            """
        )
        assert caught.passed and not in_repo.exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        for path in (in_repo, in_usr):
            path.unlink(missing_ok=True)


def test_the_repository_home_and_host_processes_are_invisible(bwrap):
    home = Path.home()
    readable = [REPO / "pyproject.toml", Path(__file__).resolve(), Path(f"/proc/{os.getpid()}/environ")]
    readable += [path for path in (home / ".bashrc", home / ".profile") if path.is_file()][:1]
    for path in readable:
        outcome = run_attempt(f"open({str(path)!r}).read()")
        assert outcome.status == "failed", (path, outcome)
        assert "FileNotFoundError" in outcome.detail or "PermissionError" in outcome.detail, (path, outcome)
    for folder in (REPO, home, Path("/work"), Path("/home")):
        outcome = run_attempt(f"import os\nassert os.listdir({str(folder)!r}) == []")
        assert outcome.status == "failed", (folder, outcome)
        assert "FileNotFoundError" in outcome.detail or "PermissionError" in outcome.detail, (folder, outcome)


def test_no_network_reaches_the_host(bwrap):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    abstract = f"\0polyadapt-escape-{uuid.uuid4().hex}"  # abstract unix sockets belong to a netns
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(abstract)
    unix.listen(8)
    unix.setblocking(False)
    try:
        attempts = {
            "tcp": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')",
            "unix": f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({abstract!r})",
            "dns": "import socket\nsocket.getaddrinfo('example.com', 443)",
        }
        for name, code in attempts.items():
            started = time.monotonic()
            outcome = run_attempt(code)
            assert outcome.status == "failed", (name, outcome)
            assert time.monotonic() - started < WALL_S, name  # refused at once, not a hang
        for server in (listener, unix):
            with pytest.raises(BlockingIOError):
                server.accept()  # no connection ever arrived
    finally:
        listener.close()
        unix.close()


def test_a_fork_bomb_is_bounded_and_ends_with_the_wall_clock(bwrap):
    bomb = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    started = time.monotonic()
    outcome = run_attempt(bomb)
    elapsed = time.monotonic() - started
    assert outcome.status == "timeout" and elapsed < WALL_S + 3, (outcome, elapsed)
    # RLIMIT_NPROC (the program's own uid) stops the forks long before the machine notices.
    counted = run_attempt(
        """
        import os, time
        children = 0
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
        """
    )
    assert counted.status == "failed" and "BlockingIOError" in counted.detail, counted
    # Every sandbox process is gone (the pid namespace died with its pid 1); the machine runs.
    deadline = time.monotonic() + 5
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []
    assert subprocess.run(["true"], timeout=10).returncode == 0


def test_memory_and_time_hogs_are_stopped(bwrap):
    assert run_attempt("x = bytearray(10 << 30)").status == "memory"  # 10 GB against RLIMIT_AS
    started = time.monotonic()
    assert run_attempt("import time\ntime.sleep(10 ** 6)").status == "timeout"  # wall clock
    assert time.monotonic() - started < WALL_S + 2


def test_signals_reach_nothing_outside(bwrap):
    me = os.getpid()
    kills = {
        "parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "test runner": f"import os, signal\nos.kill({me}, signal.SIGKILL)",
        "every process it may": "import os, signal\nos.kill(-1, signal.SIGKILL)",
    }
    for name, code in kills.items():
        outcome = run_attempt(code)
        # As root the parent (the sandbox's pid 1) belongs to root: EPERM. As a user, the
        # kernel drops signals to a pid namespace's init from inside it, and the task passes.
        if name != "parent" or os.geteuid() == 0:
            assert not outcome.passed, (name, outcome)
    # Through the worker pool: every program reports, the honest one passes, and we live on.
    completions = [[attempt(code) for code in kills.values()] + [HONEST]]
    result = score([TASK] * 1, completions, [1], workers=2, **LIMITS)
    assert sum(result["statuses"].values()) == len(kills) + 1
    assert result["correct"] == [1 + (os.geteuid() != 0)]
    assert os.getpid() == me and os.getppid() != 1 and subprocess.run(["true"]).returncode == 0


# -- without bubblewrap ---------------------------------------------------------------------


@pytest.fixture
def fresh_probe():
    """Forget the cached probe before and after the test, so others see the real one."""
    sandbox.bwrap_problem.cache_clear()
    yield
    sandbox.bwrap_problem.cache_clear()


def test_the_probe_names_a_missing_or_broken_bwrap(monkeypatch, fresh_probe):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert sandbox.bwrap_problem() == "bwrap (bubblewrap) is not on PATH"
    sandbox.bwrap_problem.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/bin/false")  # namespaces refused
    assert sandbox.bwrap_problem().startswith("bwrap cannot create its sandbox here")


def test_without_bwrap_evaluation_refuses_before_any_program_runs(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap (bubblewrap) is not on PATH")

    def no_run(*args, **kwargs):
        raise AssertionError("a program ran")

    monkeypatch.setattr(sandbox, "_run", no_run)
    with pytest.raises(ConfigError) as refused:
        score([TASK], [[HONEST]], [1], **LIMITS)
    message = str(refused.value)
    assert "\n" not in message and "apt-get install bubblewrap" in message and "sandbox: unisolated" in message
    with pytest.raises(ConfigError):
        run_program(program_for(TASK, HONEST))
    # The evaluation checks before it loads a model, and only with a task set.
    said: list[str] = []
    run = SimpleNamespace(options=CodeOptions(tasks=Path("tasks.jsonl")), say=said.append)
    with pytest.raises(ConfigError, match="apt-get install bubblewrap"):
        check_task_sandbox(run)
    check_task_sandbox(SimpleNamespace(options=CodeOptions(), say=said.append))
    assert said == []


def test_unisolated_is_an_explicit_opt_in_with_a_warning(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap (bubblewrap) is not on PATH")
    assert CodeOptions().sandbox == "bwrap"
    with pytest.raises(ValueError, match="sandbox"):
        CodeOptions(sandbox="docker")
    with pytest.warns(UnisolatedWarning, match="WITHOUT isolation"):
        result = score([TASK], [[HONEST, "    return a - b\n"]], [1], sandbox="unisolated", **LIMITS)
    assert result["statuses"] == {"passed": 1, "failed": 1}
    said: list[str] = []
    check_task_sandbox(
        SimpleNamespace(options=CodeOptions(tasks=Path("t.jsonl"), sandbox="unisolated"), say=said.append)
    )
    assert len(said) == 1 and "without isolation" in said[0].lower()
