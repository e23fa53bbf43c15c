"""`--storage`: where checkpoints and searches live, as a pyarrow filesystem and a path in it.

    runs = check("s3://bucket/runs")                # or "/shared/runs", "file:///shared/runs", "runs"
    search = runs / "daif-tune"
    (search / "search.json").write_text(text)
    with local_copy("s3://bucket/runs/daif-1234/checkpoint_000003") as directory:
        load_checkpoint(directory)

A plain path is the local filesystem and its absolute path; a URI goes through `pyarrow.fs.FileSystem.from_uri`
(file://, s3://, gs://: whatever this pyarrow was built with), which is how Ray Train and Tune resolve their
`storage_path`, so daif and Ray read and write the same files. A `Location` keeps the URI as given (query
included), and every location below it is shown in that form: a checkpoint under `file:///x/runs` is
`file:///x/runs/<run>/checkpoint_000003`, which `daif train --resume` and `daif predict --model` accept.

A location that cannot be opened (a scheme this pyarrow lacks, no network, no credentials) is a `StorageError`:
one line naming the flag and the URI. No Ray here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from daif.errors import UsageError


class StorageError(UsageError):
    """A storage path or URI that cannot be opened; the message names the flag and the URI."""


@dataclasses.dataclass(frozen=True)
class Location:
    """A folder (or file) in a filesystem: `path` is pyarrow's path in `filesystem` ("/abs/runs",
    "bucket/runs"); `uri` is how it is shown and passed on (an absolute path, or the URI)."""

    filesystem: object  # pyarrow.fs.FileSystem
    path: str
    uri: str

    @property
    def is_local(self) -> bool:
        """On this machine's filesystem (a plain path or file://): readable without a download."""
        import pyarrow.fs

        return isinstance(self.filesystem, pyarrow.fs.LocalFileSystem)

    def __truediv__(self, name: str) -> Location:
        name = str(name).strip("/")
        if self.uri == self.path:  # a plain path
            return Location(self.filesystem, os.path.join(self.path, name), os.path.join(self.uri, name))
        base, question, query = self.uri.partition("?")
        return Location(self.filesystem, f"{self.path.rstrip('/')}/{name}", f"{base.rstrip('/')}/{name}{question}{query}")

    def at(self, path: str) -> Location:
        """The location of `path` in the same filesystem (a Ray `Checkpoint.path`), shown like this one."""
        path = str(path)
        if path == self.path:
            return self
        if path.startswith(self.path.rstrip("/") + "/"):
            return self / path[len(self.path.rstrip("/")) + 1:]
        if self.uri == self.path:
            return Location(self.filesystem, path, path)
        return Location(self.filesystem, path, f"{self.uri.split('://', 1)[0]}://{path}")

    def _type(self):
        return self.filesystem.get_file_info(self.path).type

    def exists(self) -> bool:
        import pyarrow.fs

        return self._type() != pyarrow.fs.FileType.NotFound

    def is_dir(self) -> bool:
        import pyarrow.fs

        return self._type() == pyarrow.fs.FileType.Directory

    def is_file(self) -> bool:
        import pyarrow.fs

        return self._type() == pyarrow.fs.FileType.File

    def subfolders(self) -> list[Location]:
        """The folders directly in this one, by name; none when it does not exist."""
        import pyarrow.fs

        infos = self.filesystem.get_file_info(pyarrow.fs.FileSelector(self.path, allow_not_found=True))
        return [self / info.base_name for info in sorted(infos, key=lambda i: i.base_name) if info.type == pyarrow.fs.FileType.Directory]

    def read_text(self) -> str:
        with self.filesystem.open_input_stream(self.path) as stream:
            return stream.read().decode()

    def write_text(self, text: str) -> Location:
        """Write the file whole (a local one through a renamed temporary sibling: never seen half-written)."""
        if self.is_local:
            from daif.files import write_text_atomic

            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, text)
            return self
        self.filesystem.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.filesystem.open_output_stream(self.path) as stream:
            stream.write(text.encode())
        return self

    def makedirs(self) -> Location:
        self.filesystem.create_dir(self.path, recursive=True)
        return self

    def upload(self, directory: str | os.PathLike) -> Location:
        """Copy the local folder `directory` (its files and subfolders) into this location."""
        import pyarrow.fs

        self.makedirs()
        pyarrow.fs.copy_files(str(directory), self.path, source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=self.filesystem)
        return self

    def delete(self) -> None:
        """Remove this folder and everything in it; nothing when it does not exist."""
        if self.exists():
            self.filesystem.delete_dir(self.path)


def resolve(value: str | os.PathLike | Location, flag: str = "--storage") -> Location:
    """The Location of a path or URI (as it is, without touching the filesystem). A relative path is made
    absolute against the working directory (Ray's workers have another). StorageError when pyarrow cannot
    open the URI's filesystem."""
    if isinstance(value, Location):
        return value
    import pyarrow
    import pyarrow.fs

    text = os.fspath(value)
    if not text:
        raise StorageError(f"{flag}: expected a path or a URI, got ''")
    if "://" not in text:
        path = str(Path(text).resolve())
        return Location(pyarrow.fs.LocalFileSystem(), path, path)
    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(text)
    except (pyarrow.ArrowException, OSError, ValueError, NotImplementedError) as error:
        raise StorageError(f"{flag}: {text}: pyarrow cannot open it ({_first_line(error)}); expected a path or a URI "
                           "of a filesystem this pyarrow supports (file://, s3://, gs://)") from None
    return Location(filesystem, path, text)


def check(value: str | os.PathLike | Location, flag: str = "--storage") -> Location:
    """`resolve(value)`, and one look at it: a store that cannot be reached (network, credentials, a bucket that
    is not there) is a StorageError now, before any run starts, rather than a traceback from Ray later."""
    place = resolve(value, flag)
    try:
        place.exists()
    except (OSError, ValueError, NotImplementedError) as error:
        raise StorageError(f"{flag}: {place.uri} cannot be read ({_first_line(error)})") from None
    return place


@contextlib.contextmanager
def local_copy(value: str | os.PathLike | Location) -> Iterator[str]:
    """The folder `value` as a local directory to read: itself when it is on this machine, else a temporary
    download that is removed on leaving the block."""
    place = resolve(value, "storage")
    if place.is_local:
        yield place.path
        return
    import pyarrow.fs

    with tempfile.TemporaryDirectory(prefix="daif-download-") as directory:
        target = os.path.join(directory, os.path.basename(place.path.rstrip("/")) or "download")
        os.mkdir(target)
        pyarrow.fs.copy_files(place.path, target, source_filesystem=place.filesystem,
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        yield target


@contextlib.contextmanager
def staged(place: Location) -> Iterator[Path]:
    """A local folder to write files into that end up at `place`: the folder itself when it is on this machine,
    else a temporary one uploaded when the block ends without an error."""
    if place.is_local:
        Path(place.path).mkdir(parents=True, exist_ok=True)
        yield Path(place.path)
        return
    with tempfile.TemporaryDirectory(prefix="daif-upload-") as directory:
        yield Path(directory)
        place.upload(directory)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]
