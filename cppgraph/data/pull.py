"""Public score matrices from their sources: pinned downloads, checked and cached.

Each source (:data:`SOURCES`) names raw files of a public GitHub repository
at a fixed commit, with their sha256. :func:`pull` downloads what the cache
lacks, checks every file's sha256, keeps the files in the cache and writes
the canonical folder through the source's reader (as ``cppgraph data
import`` would from the same files).

Cache
    ``<cache>/<owner>/<repo>/<commit>/<path>``; default
    ``platformdirs.user_cache_dir("cppgraph")/sources`` (or the folder named
    by ``CPPGRAPH_CACHE``). A file enters the cache only whole and checked: it
    is downloaded to ``<name>.part`` (kept across runs, so that the next try
    resumes it with an HTTP range request), then renamed once its sha256
    matches. A cached file is used without any request.
Where from
    ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``; the
    setting ``CPPGRAPH_PULL_URL`` replaces the first part (a mirror, or a local
    server in tests).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cppgraph.errors import CppGraphError, DataError

#: Where the raw files come from, unless ``CPPGRAPH_PULL_URL`` says otherwise.
RAW_URL = "https://raw.githubusercontent.com"
URL_SETTING = "CPPGRAPH_PULL_URL"
CACHE_SETTING = "CPPGRAPH_CACHE"
#: Seconds without data before a request is given up (then retried).
TIMEOUT = 30.0
#: Further tries after a failed download, waiting ``BACKOFF * 2**i`` seconds before try ``i``.
RETRIES = 3
BACKOFF = 1.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One raw file of a repository at a commit, with its expected sha256 and size."""

    repo: str
    commit: str
    path: str
    sha256: str
    size: int

    def url(self, base: str | None = None) -> str:
        return f"{(base or RAW_URL).rstrip('/')}/{self.repo}/{self.commit}/{self.path}"

    @property
    def page(self) -> str:
        """The file's page on GitHub, for a download by hand."""
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}"

    def cached(self, cache: Path) -> Path:
        return cache / self.repo / self.commit / self.path


@dataclass(frozen=True)
class Source:
    """A public score matrix: its files, and how the reader takes them.

    ``read`` is ``"folder"`` (the folder holding the files) or ``"file"``
    (the first file). A source without files has no pinned download;
    ``holds`` then says how to get it by hand.
    """

    name: str
    holds: str
    licence: str
    format: str
    files: tuple = ()
    read: str = "file"

    @property
    def origin(self) -> str:
        if not self.files:
            return "none pinned (by hand)"
        f = self.files[0]
        return f"github.com/{f.repo} @ {f.commit[:10]}"


_CPP = "Don-Joey/CPP_LLM"
_CPP_COMMIT = "a61190fe8268ed2cb9f794c22e09a3833776bf6c"
_OBS = "ryoungj/ObsScaling"
_OBS_COMMIT = "4d6e1e43fd2635d04654aa77d1df9d5266ea0382"
_OBS_BASE = RemoteFile(_OBS, _OBS_COMMIT, "eval_results/base_llm_benchmark_eval.csv",
                       "511996815735a4c46251dc585dcc525e370d148201f86561e6f927f9df2d0db8", 28155)

SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("cpp-llm", "the CPP paper's crowdsource matrix: 72 models x 29 tasks, 878 scores, "
                      "model and task factors",
           "no licence file in the repository", "cpp-llm", (
               RemoteFile(_CPP, _CPP_COMMIT, "data/crowdsource_performance.csv",
                          "cc8398bd025e4bbb498c2650a9f5f9f4a44299627c20055da757d3a43c415e1d", 6910),
               RemoteFile(_CPP, _CPP_COMMIT, "data/model_feature.csv",
                          "998da96e13e84e96759ee92805d7102b8eb6186cc750e433b055a87c407bf3d7", 4305),
               RemoteFile(_CPP, _CPP_COMMIT, "data/benchmark_feature.csv",
                          "da7f5cee65195ecdd4de6efaefc3fda9d2971df8f1839e3f2bdca8133b764797", 1535)),
           read="folder"),
    Source("helm", "HELM classic core leaderboard: 88 models x 56 metrics (no factors)",
           "no licence file in the repository", "helm", (
               RemoteFile(_CPP, "8f5a55c4f30d219c0aecf4c236a96d244e822b1d", "data/helm_core.csv",
                          "cf1abd1380309922a8b301e057bfd25c64a4f54ca807dc4c256f82c865d95ac4",
                          22852),)),
    Source("obsscaling-base", "observational scaling laws, base models: 148 models x 8 "
                              "benchmarks, family, size, data, FLOPs",
           "Apache-2.0", "obsscaling", (_OBS_BASE,)),
    Source("obsscaling-instruct", "observational scaling laws, instruction-tuned models: 27 "
                                  "models x 9 benchmarks (Arena-Elo, MTBench included)",
           "Apache-2.0", "obsscaling", (
               RemoteFile(_OBS, "43dad3252c7fab354de3ee2e197a0a467cb5d327",
                          "eval_results/instruct_llm_benchmark_eval.csv",
                          "9bc50f327f4e436b15a6d6e3edb8b4837e726b295a1c72d44fadb9c9d25a75ba", 4763),)),
    Source("obsscaling-leaderboard-v2", "observational scaling laws: 72 base models x the 6 "
                                        "Open LLM Leaderboard v2 tasks, factors of the base file",
           "Apache-2.0", "obsscaling", (
               RemoteFile(_OBS, _OBS_COMMIT, "eval_results/base_llm_leaderboard_v2_eval.csv",
                          "ace728c962dfb2b9133fe92081c818e3fba01391694c9590fa0198f850062563", 10098),
               _OBS_BASE)),
    Source("open-llm-leaderboard-v2",
           "Open LLM Leaderboard v2: about 4,500 models x 6 benchmarks. csv/huggingface_v2.csv "
           "was removed from github.com/fboulnois/llm-leaderboard-csv, so there is no pinned "
           "download: take that file from a commit of the repository's history and run "
           "`cppgraph data import FILE --input-format open-llm-leaderboard --out DIR`",
           "MPL-2.0 (the data comes from the leaderboard)", "open-llm-leaderboard"),
)}


def default_cache() -> Path:
    """``CPPGRAPH_CACHE``, else the user's cache directory (``platformdirs``) + ``sources``."""
    if os.environ.get(CACHE_SETTING):
        return Path(os.environ[CACHE_SETTING])
    import platformdirs

    return Path(platformdirs.user_cache_dir("cppgraph")) / "sources"


def source(name: str) -> Source:
    """The source called ``name``; an error listing the known ones otherwise."""
    if name not in SOURCES:
        raise CppGraphError(f"unknown source {name!r}; known: {', '.join(SOURCES)} "
                            "(`cppgraph data pull --list`)")
    return SOURCES[name]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


#: ``report(file, done_bytes, total_bytes)`` after each block of a download.
Report = Callable[[RemoteFile, int, int], None]


def fetch(file: RemoteFile, cache: Path, *, base_url: str | None = None, refresh: bool = False,
          timeout: float | None = None, retries: int | None = None, backoff: float | None = None,
          report: Report | None = None) -> Path:
    """The checked copy of ``file`` in ``cache``, downloaded unless already there.

    ``refresh`` downloads it again (the cached copy is replaced only by a
    checked new one). ``timeout``, ``retries`` and ``backoff`` default to
    :data:`TIMEOUT`, :data:`RETRIES` and :data:`BACKOFF`. Raises :class:`DataError` naming the URL on a checksum
    mismatch (the download is discarded) or when every try failed (saying
    where to download it by hand).
    """
    timeout = TIMEOUT if timeout is None else timeout
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF if backoff is None else backoff
    dest = file.cached(cache)
    if dest.is_file() and not refresh and sha256(dest) == file.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if refresh:
        part.unlink(missing_ok=True)
    elif part.is_file() and part.stat().st_size == file.size and sha256(part) == file.sha256:
        os.replace(part, dest)  # downloaded whole by a run stopped before the rename
        return dest
    url = file.url(base_url or os.environ.get(URL_SETTING))
    for attempt in range(retries + 1):
        try:
            _download(url, part, file, timeout, report)
            break
        except _Retry as exc:
            if attempt == retries:
                raise DataError(
                    f"could not download it after {retries + 1} tries ({exc}); download it by "
                    f"hand from {file.page} (raw: {file.url()}) and put it at {dest}",
                    file=url) from None
            time.sleep(backoff * 2 ** attempt)
    got = sha256(part)
    if got != file.sha256:
        part.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch: sha256 {got}, expected {file.sha256}; the "
                        "download was discarded", file=url)
    os.replace(part, dest)
    return dest


class _Retry(Exception):
    """A failure worth another try: network errors, timeouts, 5xx, 408, 429, short reads."""


def _download(url: str, part: Path, file: RemoteFile, timeout: float,
              report: Report | None) -> None:
    """Download ``url`` into ``part``, resuming what it holds when the server allows it."""
    have = part.stat().st_size if part.is_file() else 0
    if have >= file.size:  # complete (or too long): start over
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # the server sent the whole file
                have = 0
            with open(part, "ab" if have else "wb") as out:
                done = have
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    if report is not None:
                        report(file, done, file.size)
    except urllib.error.HTTPError as exc:
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise DataError(f"HTTP {exc.code} {exc.reason}; download it by hand from {file.page}",
                        file=url) from None
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError,
            ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise _Retry(str(reason) if str(reason) else exc.__class__.__name__) from None
    if part.stat().st_size < file.size:
        raise _Retry(f"connection closed after {part.stat().st_size} of {file.size} bytes")


def pull(name: str, out: str | os.PathLike, *, cache: str | os.PathLike | None = None,
         refresh: bool = False, overwrite: bool = False, base_url: str | None = None,
         timeout: float | None = None, retries: int | None = None, backoff: float | None = None,
         report: Report | None = None, out_of_range: str = "error"):
    """Download source ``name`` (what the cache lacks) and write its canonical folder ``out``.

    The output folder is checked first and written whole or not at all, as
    by :func:`~cppgraph.data.import_data`. Returns the
    :class:`~cppgraph.data.CollabData`.
    """
    from cppgraph.data.canonical import check_output_folder
    from cppgraph.data.readers import import_data

    src = source(name)
    if not src.files:
        raise CppGraphError(f"{name}: {src.holds}")
    check_output_folder(out, overwrite=overwrite)
    cache = Path(cache) if cache is not None else default_cache()
    paths = [fetch(f, cache, base_url=base_url, refresh=refresh, timeout=timeout,
                   retries=retries, backoff=backoff, report=report) for f in src.files]
    entry = paths[0].parent if src.read == "folder" else paths[0]
    return import_data(entry, src.format, out, overwrite=overwrite, out_of_range=out_of_range)
