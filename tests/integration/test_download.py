import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memae.cli import main
from memae.data import download as dl
from memae.data.mnist import load_mnist
from tests.fixtures import write_mnist


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving the files of a folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    finally:
        httpd.shutdown()


@pytest.fixture
def mnist_files(tmp_path, monkeypatch) -> Path:
    """Tiny MNIST files, with the catalogue's checksums replaced by theirs."""
    write_mnist(tmp_path / "source")
    folder = tmp_path / "source" / "mnist"
    files = [
        dl.RemoteFile(f.name, "unused", "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sorted(folder.iterdir())
    ]
    monkeypatch.setitem(dl.DATASETS, "mnist", files)
    return folder


def test_download_verifies_and_places_files(server, mnist_files, tmp_path) -> None:
    url, served = server
    for f in mnist_files.iterdir():
        (served / f.name).write_bytes(f.read_bytes())
    root = tmp_path / "data"
    assert main(["download", "mnist", "--data-dir", str(root), "--mirror", url]) == 0
    X, _ = load_mnist(root)
    X_src, _ = load_mnist(tmp_path / "source")
    np.testing.assert_array_equal(X, X_src)


def test_corrupted_download_is_rejected_and_not_kept(server, mnist_files, tmp_path, capsys) -> None:
    url, served = server
    for f in mnist_files.iterdir():
        data = f.read_bytes()
        if f.name.startswith("t10k-images"):
            raw = bytearray(gzip.decompress(data))
            raw[-1] ^= 0xFF  # one flipped pixel
            data = gzip.compress(bytes(raw))
        (served / f.name).write_bytes(data)
    root = tmp_path / "data"
    assert main(["download", "mnist", "--data-dir", str(root), "--mirror", url]) == 1
    assert "the download is corrupt" in capsys.readouterr().err
    kept = sorted(p.name for p in (root / "mnist").iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in kept
    assert not [name for name in kept if name.endswith(".part")]


def test_unreachable_mirror_is_one_clear_error(mnist_files, tmp_path, capsys) -> None:
    assert main(["download", "mnist", "--data-dir", str(tmp_path), "--mirror", "http://127.0.0.1:9/"]) == 1
    assert capsys.readouterr().err.startswith("memae: error:")


def test_offline_or_missing_files_say_what_failed_and_how_to_proceed(
    server, mnist_files, tmp_path, capsys
) -> None:
    argv = ["download", "mnist", "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--mirror", "http://127.0.0.1:9/"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not download t10k-images-idx3-ubyte.gz from http://127.0.0.1:9/" in err[0]
    assert "the connection was refused" in err[0] and "--mirror" in err[0] and "[Errno" not in err[0]
    assert main([*argv, "--mirror", "http://no-such-host.invalid/"]) == 1
    assert "the host name could not be resolved (offline?)" in capsys.readouterr().err
    url, _ = server  # serves nothing: every file is a 404
    assert main([*argv, "--mirror", url]) == 1
    assert "the server answered HTTP 404" in capsys.readouterr().err
    assert not [p for p in (tmp_path / "data" / "mnist").iterdir()]
