"""Artifacts are written whole or not at all."""

import pytest


def test_atomic_directory_is_whole_or_absent_with_normal_modes(tmp_path):
    import os

    from polyadapt.fileio import atomic_directory

    target = tmp_path / "adapter"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("crash while writing")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("whole")
    umask = os.umask(0)
    os.umask(umask)
    assert (target / "weights").read_text() == "whole"
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (target / "weights").stat().st_mode & 0o777 == 0o666 & ~umask
