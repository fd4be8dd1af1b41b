import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from memae.paths import OutputPathError, atomic_write, check_output_folder, check_outputs


def _write(text: str):  # type: ignore[no-untyped-def]
    return lambda tmp: Path(tmp).write_text(text)


def test_a_fifo_a_symlink_or_a_folder_is_never_replaced(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = tmp_path / "target.txt"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    folder = tmp_path / "folder"
    folder.mkdir()
    for path, kind in ((fifo, "a FIFO"), (link, "a symbolic link"), (folder, "a folder")):
        with pytest.raises(OutputPathError, match=f"refusing to write {path}: it is {kind}"):
            atomic_write(path, _write("new"))
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink() and folder.is_dir()
    assert target.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "link", "pipe", "target.txt"]


def test_a_character_device_is_never_replaced() -> None:
    before = os.stat("/dev/null")
    with pytest.raises(OutputPathError, match="it is a character device"):
        atomic_write("/dev/null", _write("x"))
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        new = atomic_write(tmp_path / "new.txt", _write("a"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    kept = tmp_path / "kept.txt"
    kept.write_text("a")
    kept.chmod(0o604)
    atomic_write(kept, _write("b"))
    assert kept.read_text() == "b" and stat.S_IMODE(kept.stat().st_mode) == 0o604


def test_temporary_files_of_killed_writers_are_removed(tmp_path) -> None:
    script = (
        "import os, sys; from pathlib import Path; from memae.paths import atomic_write\n"
        "def die(tmp):\n    Path(tmp).write_text('half')\n    os._exit(9)\n"
        "atomic_write(sys.argv[1], die)\n"
    )
    out = tmp_path / "scores.csv"
    done = subprocess.run([sys.executable, "-c", script, str(out)], check=False)
    assert done.returncode == 9
    orphans = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(orphans) == 1 and orphans[0].startswith(".scores.csv.")
    mine = tmp_path / f".scores.csv.{os.getpid()}.x.tmp"  # a live writer's file stays
    mine.write_text("busy")
    atomic_write(out, _write("whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "scores.csv"]
    assert out.read_text() == "whole"


def test_an_output_that_is_an_input_is_refused(tmp_path) -> None:
    data = tmp_path / "x.npy"
    data.write_bytes(b"data")
    alias = tmp_path / "alias.npy"
    alias.symlink_to(data)
    for out in (data, tmp_path / "." / "x.npy", alias):
        with pytest.raises(OutputPathError, match=r"--out .* is the data file .*refusing to overwrite it"):
            check_outputs({"--out": out}, {"the data file": data, "the checkpoint": None})
    with pytest.raises(OutputPathError, match=r"--state .* is --out"):
        check_outputs({"--out": tmp_path / "m", "--state": tmp_path / "m"}, {})
    check_outputs({"--out": tmp_path / "other.csv"}, {"the data file": data})
    with pytest.raises(OutputPathError, match=r"would overwrite the data file \(.*scores\.png\)"):
        check_output_folder("--out", tmp_path, ["*.png"], {"the data file": tmp_path / "scores.png"})
    check_output_folder("--out", tmp_path, ["memory.json", "*.png"], {"the data file": data})
    with pytest.raises(OutputPathError, match="is a file; expected a folder"):
        check_output_folder("--out", data, ["memory.json"], {})
    assert data.read_bytes() == b"data"
