"""Fetch the canonical dataset files and verify their checksums before they are kept.

Each file is downloaded to a temporary name beside its target, its digest is checked,
and only then is it renamed into place: a failed or corrupted download never leaves a
file the loaders would read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memae.data.paths import data_dir


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    digest: str  # "sha256:<hex>" or "md5:<hex>"


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_KDD = "http://kdd.ics.uci.edu/databases/kddcup99/"

DATASETS: dict[str, list[RemoteFile]] = {
    "mnist": [
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            _MNIST + "train-images-idx3-ubyte.gz",
            "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            _MNIST + "train-labels-idx1-ubyte.gz",
            "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            _MNIST + "t10k-images-idx3-ubyte.gz",
            "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            _MNIST + "t10k-labels-idx1-ubyte.gz",
            "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    ],
    "kddcup99": [
        RemoteFile(
            "kddcup.data_10_percent.gz",
            _KDD + "kddcup.data_10_percent.gz",
            "sha256:8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
        ),
        # The names file's bytes (line endings) vary between copies: it is checked by parsing.
        RemoteFile("kddcup.names", _KDD + "kddcup.names", ""),
    ],
    "cifar10": [
        RemoteFile(
            "cifar-10-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "md5:c58f30108f718f92721af3b95e74349a",
        ),
    ],
}


class ChecksumError(ValueError):
    """A downloaded file whose digest differs from the published one."""


class DownloadError(OSError):
    """A file that could not be fetched (offline, refused, not found, timed out)."""


def file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, digest: str) -> None:
    if not digest:
        return
    algorithm, expected = digest.split(":", 1)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f"{path.name}: {algorithm} is {actual}, expected {expected}; the download is corrupt"
        )


def fetch(
    remote: RemoteFile, folder: Path, mirror: str | None = None, log: Callable[[str], None] = print
) -> Path:
    """Download one file into ``folder`` (skipped when a verified copy exists)."""
    target = folder / remote.name
    if target.is_file():
        try:
            verify(target, remote.digest)
            return target
        except ChecksumError:
            log(f"{target} fails its checksum; downloading it again")
    url = (mirror.rstrip("/") + "/" + remote.name) if mirror else remote.url
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        log(f"downloading {url}")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DownloadError(
                f"could not download {remote.name} from {url}: {_reason(err)}; check the network "
                f"connection (and any proxy), or fetch the file elsewhere and place it at {target}, "
                "or give --mirror with a URL that serves the same file names"
            ) from err
        verify(tmp, remote.digest)
        if remote.name == "kddcup.names":
            from memae.data.kddcup import read_names

            if len(read_names(tmp)) != 41:
                raise ChecksumError(f"{remote.name}: expected 41 feature lines")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _reason(err: BaseException) -> str:
    """What went wrong, in words: urllib wraps the cause (a socket error) in ``reason``."""
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code} {err.reason}"
    cause = getattr(err, "reason", None) or err
    if isinstance(cause, TimeoutError | socket.timeout):
        return "no answer within 60 s"
    if isinstance(cause, socket.gaierror):
        return "the host name could not be resolved (offline?)"
    if isinstance(cause, ConnectionRefusedError):
        return "the connection was refused"
    return str(cause).strip() or type(cause).__name__


def download(
    dataset: str,
    root: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch ``dataset`` ("mnist", "kddcup99", "cifar10") into ``<data root>/<dataset>/``."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; downloadable: {', '.join(DATASETS)}")
    folder = data_dir(root) / dataset
    for remote in DATASETS[dataset]:
        path = fetch(remote, folder, mirror, log)
        if path.name.endswith(".tar.gz"):
            _extract(path, folder)
    log(f"{dataset} is ready in {folder}")
    return folder


def _extract(archive: Path, folder: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(folder, filter="data")
