"""Where results live: a local folder or any URI that `pyarrow.fs` opens (s3://, gs://, hdfs://,
file://), behind one small `Location` type, with durable atomic writes on every store."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import FmnistRayError


class StorageError(FmnistRayError, OSError):
    """A destination that cannot be opened, read or written, said in one line."""


@dataclass(frozen=True)
class Location:
    """A file or folder on some filesystem; `uri` is how it is shown to the user."""

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        path, uri = self.path.rstrip("/"), self.uri.rstrip("/")
        return Location(self.fs, path.rsplit("/", 1)[0] or "/", uri.rsplit("/", 1)[0] or "/")

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    def __truediv__(self, part: str) -> Location:
        return Location(
            self.fs, f"{self.path.rstrip('/')}/{part}", f"{self.uri.rstrip('/')}/{part}"
        )

    def __str__(self) -> str:
        return self.uri

    def kind(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self.kind() != pafs.FileType.NotFound

    def files(self, suffix: str = "", recursive: bool = False) -> list[Location]:
        """Files below this folder whose names end with `suffix`, sorted; none if it is missing."""
        selector = pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True)
        found = sorted(
            info.path
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
        )
        base = self.path.rstrip("/")
        return [self / path[len(base) + 1 :] for path in found]

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.readall()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Durable and atomic: readers see the old content or all of the new, never a part.

        Local: a temporary file in the same folder (usual permissions), fsynced, renamed into
        place, then the folder fsynced. Object stores: one object is one put, atomic by itself.
        """
        if not self.local:
            if self.fs.type_name != "s3":  # object stores need no folders; HDFS and others do
                self.fs.create_dir(self.path.rstrip("/").rsplit("/", 1)[0], recursive=True)
            with self.fs.open_output_stream(self.path) as stream:
                stream.write(data)
            return
        _write_local(Path(self.path), data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def delete(self) -> None:
        if self.exists():
            self.fs.delete_file(self.path)

    def move_to(self, target: Location) -> None:
        if self.fs.type_name != "s3":
            self.fs.create_dir(target.path.rstrip("/").rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path, target.path)


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    # O_CREAT with 0o666: the process umask decides, as for any file (mkstemp would force 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power loss
    finally:
        os.close(folder)


PROBE_BYTES = 256 * 1024  # room for about ten run files: a nearly full disk fails here, not later


def preflight(root: Location) -> None:
    """Before anything starts: create the destination, then write and remove a probe file, so a
    read-only, full or missing destination is one clear error instead of a failure mid-grid."""
    try:
        if root.fs.type_name != "s3":
            root.fs.create_dir(root.path, recursive=True)
        probe = root / f".fmnist-ray-probe-{os.getpid()}"
        probe.write_bytes(b"\0" * PROBE_BYTES)
        probe.delete()
    except OSError as error:
        raise StorageError(f"{root}: cannot write results here: {describe(error)}") from None


def describe(error: OSError) -> str:
    """An OSError in a few words a user can act on."""
    reasons = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "the disk quota is exceeded",
    }
    text = str(error)
    if error.errno in reasons:
        return reasons[error.errno]
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return "the bucket does not exist (create it first)"
    if "ACCESS_DENIED" in text or "AccessDenied" in text:
        return "access denied by the object store"
    return first_line(error)


def is_uri(where: str | os.PathLike) -> bool:
    return "://" in str(where)


def locate(where: str | os.PathLike | Location) -> Location:
    """A Location for a local path or a URI such as s3://bucket/prefix?endpoint_override=HOST:PORT.

    S3 options go in the URI's query (as pyarrow reads them); credentials come the usual way for
    each store (environment variables, config files, instance roles).
    """
    if isinstance(where, Location):
        return where
    text = str(where)
    if not is_uri(text):
        return Location(pafs.LocalFileSystem(), os.path.abspath(text), text)
    try:
        fs, path = _from_uri(text)
    except (ValueError, OSError) as error:  # ArrowInvalid (a ValueError): unknown scheme, bad URI
        raise StorageError(f"{text}: cannot open this location ({first_line(error)})") from None
    parts = urlsplit(text)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme != "file" else path
    return Location(fs, path.rstrip("/") or path, shown.rstrip("/") or shown)


REQUESTS_AT_ONCE = 64  # to an object store: each waits a round trip; see tree.REMOTE_READERS


def _from_uri(text: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for a URI. On S3: as many connections as requests at once (its
    client sizes its pool from Arrow's I/O threads, 8 by default, and takes at least 25), and
    small files in one PutObject instead of a multipart upload's three requests
    (`allow_delayed_open`, in recent pyarrow; a write's errors then come at its close, which
    write_bytes waits for), unless the URI says otherwise."""
    parts = urlsplit(text)
    if parts.scheme == "s3" and pa.io_thread_count() < REQUESTS_AT_ONCE:
        pa.set_io_thread_count(REQUESTS_AT_ONCE)  # before the client is made
    if parts.scheme == "s3" and "allow_delayed_open" not in parts.query:
        delayed = f"{text}{'&' if parts.query else '?'}allow_delayed_open=true"
        try:
            return pafs.FileSystem.from_uri(delayed)
        except ValueError:  # an older pyarrow does not know the option
            pass
    return pafs.FileSystem.from_uri(text)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
