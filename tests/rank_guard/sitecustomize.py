"""Loaded at start-up by every process of a multi-process test run (this folder is put on PYTHONPATH).

In a process whose RANK is not 0, any write, creation, rename or removal of a file under the folders named
by SIMRAG_RANK_GUARD (separated by os.pathsep) raises PermissionError: a stage that lets another rank than
the main one write its outputs then fails every time, not only when two writers happen to collide. One
exception: each process saves its own random-number state into a checkpoint (`rng_state_<rank>.pth`, making
the `checkpoint-<step>` folder if it gets there first), which a resumed run needs to continue every process
as it was.
"""

import builtins
import io
import os

_GUARDED = os.environ.get("SIMRAG_RANK_GUARD")

if _GUARDED and os.environ.get("RANK", "0") != "0":
    _roots = [os.path.realpath(p) for p in _GUARDED.split(os.pathsep) if p]
    _own_rng_state = f"rng_state_{os.environ['RANK']}.pth"

    def _inside(path: object) -> bool:
        if isinstance(path, int):  # a file descriptor: opened elsewhere, checked there
            return False
        try:
            full = os.path.realpath(os.fspath(path))  # type: ignore[arg-type]
        except TypeError:
            return False
        if os.path.basename(full) == _own_rng_state:
            return False
        return any(full == root or full.startswith(root + os.sep) for root in _roots)

    def _refuse(what: str, path: object) -> None:
        raise PermissionError(f"rank {os.environ['RANK']} may not {what} {path}: only the main process writes")

    _open = builtins.open

    def _guarded_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(flag in mode for flag in "wax+") and _inside(file):
            _refuse("open for writing", file)
        return _open(file, mode, *args, **kwargs)

    builtins.open = _guarded_open
    io.open = _guarded_open

    _os_open = os.open

    def _guarded_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC) and _inside(path):
            _refuse("open for writing", path)
        return _os_open(path, flags, *args, **kwargs)

    os.open = _guarded_os_open

    def _wrap(name: str, what: str) -> None:
        original = getattr(os, name)

        def guarded(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            folder = isinstance(path, (str, os.PathLike)) and (
                os.path.isdir(path) or os.path.basename(os.fspath(path)).startswith("checkpoint-")
            )
            if what == "create" and folder:
                return original(path, *args, **kwargs)  # an existing folder, or the one for its RNG state
            if _inside(path):
                _refuse(what, path)
            return original(path, *args, **kwargs)

        setattr(os, name, guarded)

    for _name, _what in (
        ("mkdir", "create"),
        ("makedirs", "create"),
        ("remove", "remove"),
        ("unlink", "remove"),
        ("rmdir", "remove"),
        ("rename", "rename"),
        ("replace", "replace"),
    ):
        _wrap(_name, _what)
