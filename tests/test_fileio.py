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


def test_atomic_file_writes_get_normal_modes_and_keep_existing_ones(tmp_path):
    """mkstemp makes owner-only files; run files must be readable like any other file."""
    import os

    from polyadapt.fileio import atomic_write_text

    umask = os.umask(0o022)
    try:
        target = tmp_path / "run.json"
        atomic_write_text(target, "{}")
        assert target.stat().st_mode & 0o777 == 0o644
        target.chmod(0o600)  # a file someone made private stays private when rewritten
        atomic_write_text(target, "{}\n")
        assert target.stat().st_mode & 0o777 == 0o600 and target.read_text() == "{}\n"
    finally:
        os.umask(umask)
