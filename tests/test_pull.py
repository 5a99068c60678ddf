"""``cppgraph data pull``: pinned downloads, checked and cached, from a local test server.

The server runs on 127.0.0.1 inside the test and serves the copies in
``../shared/data`` (read in place) under the sources' raw-file paths;
``CPPGRAPH_PULL_URL`` points the downloads at it. No test reaches an outside
address: ``conftest.py`` points that setting at a closed local port for every
other test.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.data import pull as src
from cppgraph.errors import DataError

#: Where each source file's copy lies under ../shared/data.
SHARED = {"data/crowdsource_performance.csv": "cpp_llm/crowdsource_performance.csv",
          "data/model_feature.csv": "cpp_llm/model_feature.csv",
          "data/benchmark_feature.csv": "cpp_llm/benchmark_feature.csv",
          "data/helm_core.csv": "cpp_llm/helm_core.csv",
          "eval_results/base_llm_benchmark_eval.csv": "obsscaling/base_llm_benchmark_eval.csv",
          "eval_results/instruct_llm_benchmark_eval.csv":
              "obsscaling/instruct_llm_benchmark_eval.csv",
          "eval_results/base_llm_leaderboard_v2_eval.csv":
              "obsscaling/base_llm_leaderboard_v2_eval.csv"}
#: The same data imported from ../shared/data, per source.
IMPORTS = {"cpp-llm": ("cpp_llm", "cpp-llm"), "helm": ("cpp_llm/helm_core.csv", "helm"),
           "obsscaling-base": ("obsscaling/base_llm_benchmark_eval.csv", "obsscaling"),
           "obsscaling-instruct": ("obsscaling/instruct_llm_benchmark_eval.csv", "obsscaling"),
           "obsscaling-leaderboard-v2": ("obsscaling/base_llm_leaderboard_v2_eval.csv",
                                         "obsscaling")}


class Server:
    """A local HTTP server of the raw files, with faults on demand.

    ``mode``: ``"ok"``; ``"error"`` (HTTP 500 always); ``"corrupt"`` (one byte
    changed); ``"cut"`` (a request without ``Range`` gets half the file before the
    connection closes, one with ``Range`` the rest); ``"slow"`` (the first response
    waits ``delay`` seconds).
    ``requests`` records ``(path, Range header)``.
    """

    def __init__(self, root: Path):
        self.root, self.mode, self.delay, self.requests = root, "ok", 0.0, []
        files = {f"{f.repo}/{f.commit}/{f.path}": root / SHARED[f.path]
                 for s in src.SOURCES.values() for f in s.files}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                first = len(server.requests) == 1
                path = files.get(self.path.lstrip("/"))
                if server.mode == "error":
                    return self.send_error(500, "broken")
                if path is None:
                    return self.send_error(404, "not found")
                body = path.read_bytes()
                if server.mode == "corrupt":
                    body = body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
                if server.mode == "slow" and first:
                    time.sleep(server.delay)
                start = 0
                rng = self.headers.get("Range")
                if rng and server.mode == "cut":
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.mode == "cut" and not rng:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                try:
                    self.wfile.write(body[start:])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(shared_data, monkeypatch):
    s = Server(shared_data)
    monkeypatch.setenv(src.URL_SETTING, s.url)
    yield s
    s.close()


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_pinned_checksums_match_the_shared_copies(shared_data):
    for s in src.SOURCES.values():
        for f in s.files:
            path = shared_data / SHARED[f.path]
            assert (src.sha256(path), path.stat().st_size) == (f.sha256, f.size), f.path


@pytest.mark.parametrize("name", list(IMPORTS))
def test_pull_equals_import(server, shared_data, tmp_path, name):
    cache = tmp_path / "cache"
    pulled = run("data", "pull", name, "--out", tmp_path / "pulled", "--cache", cache)
    assert pulled.exit_code == 0, pulled.output
    where, fmt = IMPORTS[name]
    imported = run("data", "import", shared_data / where, "--input-format", fmt,
                   "--out", tmp_path / "imported")
    assert imported.exit_code == 0, imported.output
    assert tree(tmp_path / "pulled") == tree(tmp_path / "imported")
    files = src.SOURCES[name].files
    assert len(server.requests) == len(files)
    assert all(f.cached(cache).is_file() for f in files)
    assert not list(cache.rglob("*.part"))


def test_cache_reuse_and_refresh(server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = run("data", "pull", "helm", "--out", tmp_path / "a", "--cache", cache)
    assert first.exit_code == 0, first.output
    assert len(server.requests) == 1
    second = run("data", "pull", "helm", "--out", tmp_path / "b", "--cache", cache)
    assert second.exit_code == 0, second.output
    assert len(server.requests) == 1  # served from the cache, no request
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    third = run("data", "pull", "helm", "--out", tmp_path / "c", "--cache", cache, "--refresh")
    assert third.exit_code == 0, third.output
    assert len(server.requests) == 2
    # The cache folder comes from CPPGRAPH_CACHE when --cache is not given.
    monkeypatch.setenv(src.CACHE_SETTING, str(cache))
    assert run("data", "pull", "helm", "--out", tmp_path / "d").exit_code == 0
    assert len(server.requests) == 2


def test_checksum_mismatch_names_the_file_and_keeps_nothing(server, tmp_path):
    server.mode = "corrupt"
    cache = tmp_path / "cache"
    res = run("data", "pull", "helm", "--out", tmp_path / "out", "--cache", cache)
    assert res.exit_code == 1
    assert "helm_core.csv" in res.stderr and "checksum mismatch" in res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].startswith("downloading Don-Joey/CPP_LLM/data/helm_core.csv")  # progress
    assert len(lines) == 2 and lines[1].startswith("error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_server_error_says_what_to_download_by_hand(server, tmp_path, monkeypatch):
    server.mode = "error"
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        src.pull("cpp-llm", tmp_path / "out", cache=cache, retries=2, backoff=0)
    message = str(err.value)
    assert "HTTP 500" in message and "after 3 tries" in message
    assert "https://github.com/Don-Joey/CPP_LLM/blob/" in message and "crowdsource" in message
    assert len(server.requests) == 3
    assert not (tmp_path / "out").exists()
    assert [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".part")] == []
    # From the command line: one error line, exit 1.
    monkeypatch.setattr(src, "BACKOFF", 0.0)
    res = run("data", "pull", "helm", "--out", tmp_path / "out", "--cache", cache)
    assert res.exit_code == 1 and res.stderr.startswith("error:")


def test_timeout_is_retried(server, tmp_path):
    server.mode, server.delay = "slow", 1.5
    cache = tmp_path / "cache"
    data = src.pull("helm", tmp_path / "out", cache=cache, timeout=0.3, backoff=0)
    assert len(data.tasks) > 0 and len(server.requests) == 2
    server.requests.clear()
    server.delay = 1.5
    with pytest.raises(DataError, match="after 1 tries"):
        src.fetch(src.SOURCES["obsscaling-base"].files[0], tmp_path / "other", timeout=0.3,
                  retries=0)


def test_interrupted_download_resumes(server, tmp_path):
    server.mode = "cut"
    cache = tmp_path / "cache"
    file = src.SOURCES["helm"].files[0]
    path = src.fetch(file, cache, backoff=0)
    assert src.sha256(path) == file.sha256
    assert len(server.requests) == 2
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={file.size // 2}-"  # resumed, not restarted
    assert not list(cache.rglob("*.part"))


def test_a_killed_download_leaves_only_a_part_file(server, tmp_path):
    """A half-written file stays ``.part`` (never a cache entry) and the next pull resumes it."""
    file = src.SOURCES["helm"].files[0]
    cache = tmp_path / "cache"
    body = (Path(server.root) / SHARED[file.path]).read_bytes()
    part = file.cached(cache).with_name(Path(file.path).name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])
    server.mode = "cut"
    assert src.fetch(file, cache) == file.cached(cache)
    assert server.requests == [(server.requests[0][0], "bytes=1000-")] and not part.exists()


def test_list_unknown_and_manual_sources(tmp_path):
    listed = run("data", "pull", "--list", "--format", "json")
    assert listed.exit_code == 0
    records = json.loads(listed.stdout)
    assert [r["name"] for r in records] == list(src.SOURCES)
    assert {"holds", "licence", "files"} <= set(records[0])
    assert "Apache-2.0" in run("data", "pull", "--list").stdout
    unknown = run("data", "pull", "cpp", "--out", tmp_path / "x")
    assert unknown.exit_code == 1 and "unknown source 'cpp'" in unknown.stderr
    manual = run("data", "pull", "open-llm-leaderboard-v2", "--out", tmp_path / "x")
    assert manual.exit_code == 1 and "--input-format open-llm-leaderboard" in manual.stderr
    assert run("data", "pull").exit_code == 2
    assert not (tmp_path / "x").exists()


def test_an_existing_output_is_refused_before_any_request(server, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "NOTES.txt").write_text("mine")
    res = run("data", "pull", "helm", "--out", out, "--cache", tmp_path / "cache", "--force")
    assert res.exit_code == 1 and server.requests == []
    assert (out / "NOTES.txt").read_text() == "mine"
