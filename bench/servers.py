"""The servers under test: how each is started with N workers on a loopback port, from a
private temporary directory, with the hello-world app (configs in bench/peers/).
"""

import os
import shutil
import subprocess
import tempfile

from procs import BODY, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_DIR = os.path.join(HERE, "peers")


def fill(template, **values):
    with open(os.path.join(PEERS_DIR, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    return text


class Server:
    """One server under test: how to start it with N workers on a port."""

    name = "?"
    ttin = False
    keepalive = True  # keeps connections open when the client asks

    def available(self):
        return True

    def version(self):
        return ""

    def command(self, workers, port, work):
        raise NotImplementedError

    def start(self, workers, port, tmp):
        work = tempfile.mkdtemp(prefix=f"{self.name}-w{workers}-", dir=tmp)
        os.chmod(work, 0o755)
        cmd, cwd = self.command(workers, port, work)
        proc = spawn(cmd, os.path.join(work, "server.log"), cwd=cwd)
        proc.log_path = os.path.join(work, "server.log")
        return proc


class Runicorn(Server):
    ttin = True

    def __init__(self, binary, keepalive_secs):
        self.binary = binary
        self.keepalive_secs = keepalive_secs
        self.name = "runicorn" if keepalive_secs == 0 else "runicorn-ka"
        self.keepalive = keepalive_secs > 0

    def available(self):
        return os.access(self.binary, os.X_OK)

    def version(self):
        try:
            rev = subprocess.run(
                ["git", "-C", ROOT, "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except OSError:
            rev = "?"
        return f"runicorn {rev} (examples/hello)"

    def command(self, workers, port, work):
        cmd = [self.binary, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
        if self.keepalive_secs:
            cmd += ["--keepalive", str(self.keepalive_secs)]
        return cmd, work


class RunicornAxum(Server):
    """examples/axum_bench.rs served by runicorn: the same Router as AxumServe."""

    name = "runicorn-axum"
    ttin = True

    def __init__(self, binary, keepalive_secs=0, worker_connections=1, extra=(), dyno_mb=None):
        self.binary = binary
        self.keepalive_secs = keepalive_secs
        self.worker_connections = worker_connections
        self.extra = list(extra)
        self.dyno_mb = dyno_mb
        self.keepalive = keepalive_secs > 0

    def available(self):
        return os.access(self.binary, os.X_OK)

    def version(self):
        return Runicorn.version(self).replace("examples/hello", "examples/axum_bench")

    def flags(self):
        """runicorn's settings beyond --workers and --bind, as the report shows them."""
        out = []
        if self.worker_connections > 1:
            out += ["--worker-connections", str(self.worker_connections)]
        if self.keepalive_secs:
            out += ["--keepalive", str(self.keepalive_secs)]
        return out + self.extra

    def command(self, workers, port, work):
        cmd = [self.binary, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"] + self.flags()
        return in_dyno(self.dyno_mb, cmd), work


class AxumServe(Server):
    """examples/axum_bench.rs in `serve` mode: axum::serve on a multi-threaded Tokio runtime
    with as many worker threads as the other servers have workers; hyper's keep-alive."""

    name = "axum-serve"

    def __init__(self, binary, dyno_mb=None):
        self.binary = binary
        self.dyno_mb = dyno_mb

    def available(self):
        return os.access(self.binary, os.X_OK)

    def version(self):
        return "axum::serve 0.8 (examples/axum_bench serve), Tokio multi-thread runtime"

    def command(self, workers, port, work):
        cmd = [self.binary, "serve", "--threads", str(workers), "--bind", f"127.0.0.1:{port}"]
        return in_dyno(self.dyno_mb, cmd), work


def in_dyno(mb, cmd):
    """The command run by bench/dyno.sh in a memory cgroup of `mb` MiB (it keeps its pid)."""
    if not mb:
        return cmd
    return [os.path.join(HERE, "dyno.sh"), str(mb), "--"] + cmd


class Nginx(Server):
    name = "nginx"

    def available(self):
        return shutil.which("nginx") is not None

    def version(self):
        return first_line(["nginx", "-v"])

    def command(self, workers, port, work):
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(fill("nginx.conf", WORKERS=workers, PORT=port, DIR=work))
        return ["nginx", "-p", work, "-c", conf, "-e", os.path.join(work, "error.log")], work


class ApachePrefork(Server):
    name = "apache"

    def available(self):
        return shutil.which("apache2") is not None and os.path.exists(
            "/usr/lib/apache2/modules/mod_mpm_prefork.so"
        )

    def version(self):
        return first_line(["apache2", "-v"]) + " prefork"

    def command(self, workers, port, work):
        htdocs = os.path.join(work, "htdocs")
        os.makedirs(htdocs)
        os.chmod(htdocs, 0o755)
        with open(os.path.join(htdocs, "hello.txt"), "wb") as f:
            f.write(BODY)
        os.chmod(os.path.join(htdocs, "hello.txt"), 0o644)
        conf = os.path.join(work, "httpd.conf")
        with open(conf, "w") as f:
            f.write(
                fill(
                    "apache.conf",
                    WORKERS=workers,
                    WORKERS_PLUS_ONE=workers + 1,
                    PORT=port,
                    DIR=work,
                )
            )
        cmd = ["apache2", "-f", conf, "-DFOREGROUND"]
        if os.geteuid() == 0:
            cmd.append("-DRUN_AS_ROOT")
        return cmd, work


class Gunicorn(Server):
    name = "gunicorn"
    ttin = True
    keepalive = False  # sync workers close every connection

    def __init__(self, python):
        self.python = python

    def available(self):
        return (
            subprocess.run(
                [self.python, "-c", "import gunicorn"], capture_output=True, timeout=30
            ).returncode
            == 0
        )

    def version(self):
        return first_line([self.python, "-m", "gunicorn", "--version"]) + " sync"

    def command(self, workers, port, work):
        cmd = [
            self.python, "-m", "gunicorn",
            "--workers", str(workers),
            "--worker-class", "sync",
            "--preload",
            "--bind", f"127.0.0.1:{port}",
            "--backlog", "1024",
            "--chdir", PEERS_DIR,
            "--worker-tmp-dir", work,
            "--pid", os.path.join(work, "gunicorn.pid"),
        ]
        if "--no-control-socket" in gunicorn_help(self.python):
            cmd.append("--no-control-socket")
        return cmd + ["hello_wsgi:app"], work


class Unicorn(Server):
    name = "unicorn"
    ttin = True
    keepalive = False  # Unicorn closes every connection

    def available(self):
        return shutil.which("unicorn") is not None

    def version(self):
        return first_line(["unicorn", "-v"])

    def command(self, workers, port, work):
        conf = os.path.join(work, "unicorn.rb")
        with open(conf, "w") as f:
            f.write(fill("unicorn.rb", WORKERS=workers, PORT=port, DIR=work))
        return ["unicorn", "-E", "none", "-c", conf, os.path.join(PEERS_DIR, "config.ru")], work


class Puma(Server):
    name = "puma"
    ttin = True

    def available(self):
        return shutil.which("puma") is not None

    def version(self):
        return first_line(["puma", "--version"]) + " cluster, 1 thread"

    def command(self, workers, port, work):
        return [
            "puma",
            "--workers", str(workers),
            "--threads", "1:1",
            "--preload",
            "--environment", "production",
            "--bind", f"tcp://127.0.0.1:{port}?backlog=1024",
            "--pidfile", os.path.join(work, "puma.pid"),
            os.path.join(PEERS_DIR, "config.ru"),
        ], work


_GUNICORN_HELP = {}


def gunicorn_help(python):
    if python not in _GUNICORN_HELP:
        _GUNICORN_HELP[python] = subprocess.run(
            [python, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=30
        ).stdout
    return _GUNICORN_HELP[python]


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0].strip() if text else "?"
