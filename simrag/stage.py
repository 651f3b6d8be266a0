"""What every stage script shares: logging set-up, a start/end line, and user errors as exit 1."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from simrag.errors import SimragError

F = TypeVar("F", bound=Callable[..., Any])


def is_main_process() -> bool:
    """False in the other processes of a multi-process run (`accelerate launch`): only the main one writes."""
    return int(os.environ.get("RANK", "0")) == 0


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "chromadb", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage(name: str) -> Callable[[F], F]:
    """Wrap a stage's main function: log its start and end, and turn SimragError into a clean exit 1."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            setup_logging()
            log = logging.getLogger(f"simrag.stages.{name}")
            log.info("%s: start", name)
            started = time.perf_counter()
            try:
                summary = fn(*args, **kwargs)
            except SimragError as exc:
                log.error("%s failed: %s", name, exc)
                raise click.ClickException(str(exc)) from None
            log.info("%s: done in %.1f s%s", name, time.perf_counter() - started, f" ({summary})" if summary else "")
            return summary

        return run  # type: ignore[return-value]

    return wrap
