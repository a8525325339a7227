"""A local, offline Hub-compatible server for tests (no pytest needed to import).

``serve_dataset_repos`` turns folders into git repos under an olah mirror tree,
starts ``local_hub_server.py`` (olah + a small middleware) on a free port of
127.0.0.1 and yields the endpoint URL.  ``run_with_hub`` runs Python code in a
subprocess whose ``HF_ENDPOINT`` points at that server and whose ``HF_HOME`` is a
fresh temporary folder: ``datasets`` and ``huggingface_hub`` read both once, at
import time, so the code under test must run in its own interpreter.

    with serve_dataset_repos({"acme/tiny": folder}, workdir) as endpoint:
        out = run_with_hub("import datasets; print(datasets.get_dataset_config_names('acme/tiny'))", endpoint)

``serve_git_repos({"acme/pushed": git_dir}, workdir)`` serves existing git repositories as they are.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Union

SERVER_SCRIPT = Path(__file__).resolve().with_name("local_hub_server.py")

# Fixed identity and dates: works without any git config and gives stable commit ids.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "local-hub",
    "GIT_AUTHOR_EMAIL": "local-hub@example.invalid",
    "GIT_COMMITTER_NAME": "local-hub",
    "GIT_COMMITTER_EMAIL": "local-hub@example.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+00:00",
    # Ignore the user's and the system's git config (hooks, LFS filters, signing, templates).
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# Variables that would make a subprocess bypass or misread the local Hub.
_HF_VARS_TO_DROP = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE",
    "HF_ASSETS_CACHE", "HF_MODULES_CACHE", "HF_DATASETS_TRUST_REMOTE_CODE",
)


def _git(args, cwd: Path) -> None:
    env = dict(os.environ, **_GIT_ENV)
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{result.stdout}{result.stderr}")


def make_git_mirror(folder: Union[str, Path], dest: Union[str, Path]) -> Path:
    """Copy ``folder`` to ``dest`` (which must not exist) and commit it all on branch ``main``."""
    dest = Path(dest)
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(".git"))
    _git(["init", "-q", "-b", "main"], dest)
    _git(["add", "-A", "."], dest)
    _git(["-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "Upload dataset"], dest)
    return dest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_config(path: Path, port: int, mirrors: Path, repos_cache: Path) -> None:
    netloc = f"127.0.0.1:{port}"
    # json.dumps gives valid TOML basic strings for these values.
    lines = [
        "[basic]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"repos-path = {json.dumps(str(repos_cache))}",
        'mirror-scheme = "http"',
        f"mirror-netloc = {json.dumps(netloc)}",
        f"mirror-lfs-netloc = {json.dumps(netloc)}",
        f"mirrors-path = [{json.dumps(str(mirrors))}]",
        "",
        "[accessibility]",
        "offline = true",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _tail(path: Path, n_chars: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-n_chars:]
    except OSError:
        return "<no log>"


def _get_status(url: str) -> Optional[int]:
    # Bypass any HTTP(S)_PROXY from the environment: the server is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def _mirror_path(mirrors: Path, repo_id: str) -> Path:
    org, sep, name = repo_id.partition("/")
    if not sep or not org or not name or "/" in name:
        raise ValueError(f"repo id must look like 'org/name', got {repo_id!r}")
    return mirrors / "datasets" / org / name


@contextlib.contextmanager
def serve_dataset_repos(
    repos: Mapping[str, Union[str, Path]],
    workdir: Union[str, Path],
    timeout: float = 30.0,
) -> Iterator[str]:
    """Serve each folder as the dataset repo named by its key ("org/name"); yield the endpoint URL.

    ``workdir`` (created if needed) receives the git mirrors, olah's config, cache and the
    server log (``local_hub.log``).  The server is always stopped on exit.
    """
    workdir = Path(workdir).resolve()
    mirrors = workdir / "mirrors"
    for repo_id, folder in repos.items():
        make_git_mirror(folder, _mirror_path(mirrors, repo_id))
    with _serve_mirrors(mirrors, list(repos), workdir, timeout) as endpoint:
        yield endpoint


@contextlib.contextmanager
def serve_git_repos(
    repos: Mapping[str, Union[str, Path]],
    workdir: Union[str, Path],
    timeout: float = 30.0,
) -> Iterator[str]:
    """Serve existing git repositories (bare or not) as the dataset repos named by the keys; yield the endpoint.

    Each repository is cloned with ``git clone --mirror``, so every branch and ref (``refs/pr/N``) is served as
    committed, and its default branch is the one its ``HEAD`` names.
    """
    workdir = Path(workdir).resolve()
    mirrors = workdir / "mirrors"
    for repo_id, git_dir in repos.items():
        dest = _mirror_path(mirrors, repo_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _git(["clone", "-q", "--mirror", str(Path(git_dir).resolve()), str(dest)], dest.parent)
    with _serve_mirrors(mirrors, list(repos), workdir, timeout) as endpoint:
        yield endpoint


class HubProcess:
    """The server over a mirror tree, on one port for its whole life: ``stop()`` and ``start()`` it again (tests of
    a server that goes away mid-stream)."""

    def __init__(self, mirrors: Path, repo_ids, workdir: Path, timeout: float = 30.0):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.repo_ids = list(repo_ids)
        self.workdir = workdir
        self.timeout = timeout
        self.config = workdir / "olah.toml"
        _write_config(self.config, self.port, mirrors, workdir / "olah-cache")
        self.log_path = workdir / "local_hub.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        """Start the server; return once every repo answers."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER_SCRIPT), "--config", str(self.config)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.timeout
        pending = list(self.repo_ids)
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"local Hub server exited with code {self.process.returncode}; log tail:\n{_tail(self.log_path)}"
                )
            if _get_status(f"{self.endpoint}/api/datasets/{pending[0]}/revision/main") == 200:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"local Hub server at {self.endpoint} did not serve {pending[0]} within {self.timeout:.0f} s; "
                    f"log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def _serve_mirrors(mirrors: Path, repo_ids, workdir: Path, timeout: float) -> Iterator[str]:
    """Start the server over the mirror tree ``mirrors``; yield the endpoint once every repo answers."""
    with hub_process(mirrors, repo_ids, workdir, timeout) as hub:
        yield hub.endpoint


@contextlib.contextmanager
def hub_process(mirrors: Path, repo_ids, workdir: Path, timeout: float = 30.0) -> Iterator[HubProcess]:
    hub = HubProcess(mirrors, repo_ids, workdir, timeout)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


@contextlib.contextmanager
def serve_stoppable_dataset_repos(repos: Mapping[str, Union[str, Path]], workdir: Union[str, Path],
                                  timeout: float = 30.0) -> Iterator[HubProcess]:
    """``serve_dataset_repos``, yielding the ``HubProcess`` (``endpoint``, ``stop()``, ``start()``)."""
    workdir = Path(workdir).resolve()
    mirrors = workdir / "mirrors"
    for repo_id, folder in repos.items():
        make_git_mirror(folder, _mirror_path(mirrors, repo_id))
    with hub_process(mirrors, list(repos), workdir, timeout) as hub:
        yield hub


def hub_env(endpoint: str, hf_home: Union[str, Path], extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment for a subprocess that talks to the local Hub at ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if k not in _HF_VARS_TO_DROP}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
    )
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    if extra:
        env.update(extra)
    return env


def run_with_hub(
    code: str,
    endpoint: str,
    timeout: float = 300.0,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Union[str, Path]] = None,
    hf_home: Optional[Union[str, Path]] = None,
) -> str:
    """Run ``code`` with ``python -c`` against the local Hub; return its stdout.

    ``HF_HOME`` is a fresh temporary folder unless ``hf_home`` is given (pass the same
    folder to several calls to share a cache).  Raises RuntimeError with the
    subprocess's stdout and stderr if it exits non-zero.
    """
    with tempfile.TemporaryDirectory(prefix="hf-home-") as tmp_home:
        full_env = hub_env(endpoint, hf_home or tmp_home, env)
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"subprocess failed with exit code {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result.stdout
