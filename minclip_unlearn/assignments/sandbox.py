"""Run one notebook alone: its own temporary folder, process group, resource limits, and (on Linux) namespaces.

The grader (parent) calls :func:`run_notebook`. It starts this module as a runner process, sends it the job
on stdin and reads one JSON answer from its stdout. The runner executes the notebook with nbclient; the
kernel is its child. Nothing in the runner's arguments, environment or working directory names a
submission: the notebook travels on stdin.

Where ``unshare`` works (Linux, as root or with user namespaces), the runner is PID 1 of new PID, mount and
network namespaces. Before the kernel starts it makes every mount read-only (the package, the submissions,
the cache), puts empty tmpfs over /tmp and /dev/shm, hides each other submission and the CSV under
/dev/null, and then drops every capability (so the kernel cannot undo a mount). The network namespace has
no interface up, so nothing, 127.0.0.1 included, can be reached; the kernel talks to the runner over Unix
sockets. When the runner ends, the kernel and everything it started die with the PID namespace.
Without ``unshare`` (macOS, a locked-down container) the same runner runs in its own session under the
same resource limits, and its process group is killed at the end; see book/instructors.md for what then
does not hold.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

try:
    import resource
except ImportError:  # Windows: no resource limits (book/instructors.md)
    resource = None

WORK = "/tmp/work"              # the runner's folder inside the sandbox (a fresh tmpfs)
WATCHDOG_GRACE_S = 5.0          # past the notebook's deadline, the runner kills a kernel that did not stop
STARTUP_S = 120                 # kernel start, on top of the notebook's --timeout
TMPFS_SIZE = "1g"
RUNNER = os.path.abspath(__file__)
PASS_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "CONDA_PREFIX")


@dataclass(frozen=True)
class Limits:
    """Resource limits for a submission: address space (MB), CPU seconds, file size (MB), processes."""

    memory_mb: int = 8192
    cpu_s: int = 600
    file_mb: int = 256
    nproc: int = 256  # on top of what the user already runs (RLIMIT_NPROC counts all of a user's processes)


@dataclass
class Job:
    """What the runner needs: the notebook (JSON text), the time limit, and what to hide."""

    notebook: str
    timeout: float
    allow_errors: bool = False
    kernel_name: str = "python3"
    hide_files: list[str] = field(default_factory=list)
    hide_dirs: list[str] = field(default_factory=list)
    cache: str = ""
    isolate: bool = False


# ---------------------------------------------------------------- the grader's side
_UNSHARE: list[str] | None = None


def unshare_prefix() -> list[str]:
    """The unshare command that works here ([] where none does); probed once."""
    global _UNSHARE
    if os.environ.get("MINCLIP_SANDBOX") == "process-group":  # force the fallback (to test or compare it)
        return []
    if _UNSHARE is None:
        _UNSHARE = []
        exe = shutil.which("unshare")
        if exe and sys.platform.startswith("linux"):
            base = [exe, "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
            for prefix in ([base] if os.geteuid() == 0 else []) + [base[:1] + ["--user", "--map-root-user"] + base[1:]]:
                try:
                    ok = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs none /tmp"], capture_output=True,
                                        timeout=30, cwd="/").returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
                if ok and shutil.which("setpriv"):
                    _UNSHARE = prefix
                    break
    return _UNSHARE


def isolation() -> str:
    """'namespaces' where unshare works here, else 'process group'."""
    return "namespaces" if unshare_prefix() else "process group"


def _user_processes() -> int:
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            n += pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid
        except OSError:
            pass
    return n


def _preexec(limits: Limits, nproc: int):
    if resource is None:
        return None

    def apply() -> None:
        mb = 2**20
        for what, value in ((resource.RLIMIT_AS, limits.memory_mb * mb), (resource.RLIMIT_CPU, limits.cpu_s),
                            (resource.RLIMIT_FSIZE, limits.file_mb * mb), (resource.RLIMIT_NPROC, nproc),
                            (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(what, (value, value))
            except (ValueError, OSError):
                pass
        if sys.platform.startswith("linux"):  # die with the grader
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    return apply


def _env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    return env


def run_notebook(job: Job, limits: Limits = Limits()) -> dict:
    """Run job's notebook alone -> the runner's answer {"status", ...} (untrusted: the caller validates it).

    status: "ok" | "error" (with cell, ename, evalue) | "timeout" | "dead" | "crashed" (no answer)."""
    prefix = unshare_prefix()
    job.isolate = bool(prefix)
    cmd = [*prefix, sys.executable, RUNNER]  # a script: the runner imports no torch, only the standard library
    nproc = _user_processes() + limits.nproc
    with tempfile.TemporaryDirectory(prefix="minclip-grade-") as scratch:
        cwd = "/" if prefix else scratch
        env = _env() | ({} if prefix else {"HOME": scratch, "MINCLIP_SANDBOX_WORK": scratch})
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                cwd=cwd, env=env, start_new_session=os.name == "posix",
                                preexec_fn=_preexec(limits, nproc))
        try:
            out, _ = proc.communicate(json.dumps(job.__dict__).encode(), timeout=job.timeout + STARTUP_S)
        except subprocess.TimeoutExpired:
            out = b""
            answer = {"status": "timeout"}
        else:
            answer = None
        finally:
            _kill_group(proc)
        if answer is None:
            try:
                answer = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
            except (ValueError, IndexError):
                answer = {"status": "crashed"}
    return answer if isinstance(answer, dict) else {"status": "crashed"}


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the runner's whole process group (with namespaces, its PID namespace dies with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL) if os.name == "posix" else proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------- the runner's side
def _mounts() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _seal(job: Job) -> str:
    """As root in the new mount namespace: hide, make read-only, give fresh /tmp and /dev/shm.
    Returns where the (read-only) cache can be read from now."""
    cache_fd = os.open(job.cache, os.O_RDONLY | os.O_DIRECTORY) if job.cache and os.path.isdir(job.cache) else None
    for path in job.hide_files:
        if os.path.isfile(path):
            _mount("--bind", "/dev/null", path)
    for path in job.hide_dirs:
        if os.path.isdir(path):
            _mount("-t", "tmpfs", "-o", "size=1m,mode=555", "none", path)
    for target in _mounts():
        if target == "/proc" or target.startswith(("/proc/", "/sys", "/dev")):
            continue
        _mount("-o", "remount,bind,ro", target)
    _mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=1777", "none", "/tmp")
    if os.path.isdir("/dev/shm"):
        _mount("-t", "tmpfs", "-o", "size=256m,mode=1777", "none", "/dev/shm")
    if cache_fd is None:
        return ""
    os.makedirs("/tmp/cache-ro")
    ok = _mount("--bind", f"/proc/self/fd/{cache_fd}", "/tmp/cache-ro") and _mount(
        "-o", "remount,bind,ro", "/tmp/cache-ro")
    os.close(cache_fd)
    return "/tmp/cache-ro" if ok else ""


def _mirror_cache(cache: str, into: str) -> None:
    """A writable cache: folders recreated, files linked to the (read-only) real cache."""
    if not cache or not os.path.isdir(cache):
        return
    for root, _, files in os.walk(cache):
        dst = os.path.join(into, os.path.relpath(root, cache))
        os.makedirs(dst, exist_ok=True)
        for name in files:
            if not name.endswith((".lock", ".part")):
                os.symlink(os.path.join(root, name), os.path.join(dst, name))


def _stage_one() -> None:
    """Read the job, seal the namespace (when isolated), then re-exec without capabilities."""
    job = Job(**json.loads(sys.stdin.buffer.read().decode("utf-8")))
    work = WORK if job.isolate else os.environ.get("MINCLIP_SANDBOX_WORK") or tempfile.mkdtemp()
    cache = _seal(job) if job.isolate else job.cache
    os.makedirs(os.path.join(work, "home"), exist_ok=True)
    _mirror_cache(cache, os.path.join(work, "cache"))
    with open(os.path.join(work, "job.json"), "w", encoding="utf-8") as f:  # what to hide stays out of it
        json.dump({"notebook": job.notebook, "timeout": job.timeout, "allow_errors": job.allow_errors,
                   "kernel_name": job.kernel_name}, f)
    os.chdir(work)
    os.environ.update(HOME=os.path.join(work, "home"), MINCLIP_CACHE=os.path.join(work, "cache"),
                      TMPDIR=work, JUPYTER_RUNTIME_DIR=os.path.join(work, "runtime"))
    os.environ.pop("MINCLIP_SANDBOX_WORK", None)
    run = [sys.executable, RUNNER, "--run", os.path.join(work, "job.json")]
    if job.isolate:
        os.execv(shutil.which("setpriv"), ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
                                           "--", *run])
    _stage_two(os.path.join(work, "job.json"))


def _stage_two(job_path: str) -> None:
    """Without capabilities: run the notebook, answer on a private copy of stdout."""
    answer_fd = os.dup(1)  # not inherited by the kernel
    log = os.open(os.path.join(os.path.dirname(job_path), "kernel.log"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE 0: the kernel cannot open /proc/<runner>/fd
    with open(job_path, encoding="utf-8") as f:
        job = Job(**json.load(f))
    os.unlink(job_path)  # read: gone before the kernel starts
    _answer(answer_fd, _execute(job, os.path.dirname(job_path), answer_fd))


def _answer(fd: int, answer: dict) -> None:
    """Write the runner's one answer line (JSON) to fd: what the grader reads back."""
    os.write(fd, (json.dumps(answer) + "\n").encode("utf-8"))


def _watch(km, deadline: list, finished: threading.Event, lock: threading.Lock, answer_fd: int | None,
           start: float, grace: float = WATCHDOG_GRACE_S) -> None:
    """Enforce the notebook's deadline: `grace` s past it, unless the run has finished, kill the kernel, answer
    "timeout" and end the runner.

    nbclient's own cell timeout does not fire over the ipc transport while a cell spins (nbclient 0.10-0.11),
    so without this the grader's outer limit (--timeout + STARTUP_S) is what stops an endless loop."""
    while not finished.wait(0.5):
        if deadline[0] is None or time.monotonic() <= deadline[0] + grace:
            continue
        with lock:  # the run cannot finish (and answer) while the watchdog answers for it
            if finished.is_set():
                return
            pid = getattr(getattr(km, "provisioner", None), "pid", None)
            with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
                os.kill(pid, signal.SIGKILL)
            if answer_fd is not None:
                _answer(answer_fd, {"status": "timeout", "seconds": round(time.monotonic() - start, 1)})
                os._exit(0)
            return


def _execute(job: Job, work: str, answer_fd: int | None = None) -> dict:
    """Run the notebook with nbclient -> {"status", "cell", "ename", "evalue", "last_outputs", "seconds"}."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.reads(job.notebook, as_version=4)
    km = KernelManager(kernel_name=job.kernel_name, transport="ipc", ip=os.path.join(work, "kernel-ipc"))
    start, deadline = time.monotonic(), [None]

    def remaining(cell) -> float:
        if deadline[0] is None:
            deadline[0] = time.monotonic() + job.timeout
        return max(1.0, deadline[0] - time.monotonic())

    client = NotebookClient(nb, km=km, timeout=job.timeout, timeout_func=remaining, allow_errors=job.allow_errors,
                            shutdown_kernel="immediate", resources={"metadata": {"path": work}},
                            startup_timeout=STARTUP_S)
    answer: dict = {"status": "ok"}
    finished, lock = threading.Event(), threading.Lock()
    threading.Thread(target=_watch, args=(km, deadline, finished, lock, answer_fd, start), daemon=True).start()
    try:
        try:
            client.execute()
        finally:
            with lock:
                finished.set()
    except CellTimeoutError:
        answer = {"status": "timeout"}
    except DeadKernelError as e:
        answer = {"status": "dead", "evalue": str(e)[:300]}
    except CellExecutionError as e:
        answer = {"status": "error", "ename": str(getattr(e, "ename", "") or ""),
                  "evalue": str(getattr(e, "evalue", "") or str(e).strip().splitlines()[-1:] or "")[:300]}
    except Exception as e:  # noqa: BLE001 - a kernel that cannot start, a broken cell, ...
        answer = {"status": "error", "ename": type(e).__name__, "evalue": str(e)[:300], "start": True}
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    answer["error_cells"] = errors
    last = nb.cells[-1] if nb.cells else {}
    answer["last_outputs"] = "".join(o.get("text", "") for o in last.get("outputs", [])
                                     if o.get("output_type") == "stream")[-2_000_000:]
    answer["seconds"] = round(time.monotonic() - start, 1)
    return answer


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(RUNNER):
        sys.path.pop(0)  # run as a script: the package's modules are not top-level modules
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        _stage_two(sys.argv[2])
    else:
        _stage_one()
