"""One line naming the CPU a figure was measured on (benchmarks, the `timing` stage), so that every
figure carries its machine.

Speed on a CPU depends most on its matrix units: bf16 runs on AMX tiles (recent Intel Xeon),
on AVX-512 bf16 dot products (e.g. AMD Zen 4), or is emulated; the same 2 cores differ up to 3× between them.
"""

import ctypes
import ctypes.util
import functools
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    fields = {
        key.strip(): value.strip() for key, value in (line.split(":", 1) for line in text.splitlines() if ":" in line)
    }
    return fields.get("model name", ""), set(fields.get("flags", "").split())


def describe() -> str:
    """E.g. 'Intel(R) Xeon(R) Processor, x86_64, 2 cores, bf16 on AMX'."""
    name, flags = _cpuinfo()
    if "amx_bf16" in flags:
        bf16 = "bf16 on AMX"
    elif "avx512_bf16" in flags:
        bf16 = "bf16 on AVX-512"
    else:
        bf16 = "no bf16 instructions" if flags else "bf16 support unknown"
    return f"{name or platform.processor() or 'CPU'}, {platform.machine()}, {os.cpu_count()} cores, {bf16}"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux counts ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


def peak_memory_mb(device: str) -> tuple[float, str]:
    """(MB, kind) of this process's peak memory: CUDA's largest allocation on a GPU, resident set on a CPU."""
    if device == "cuda":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1), "cuda_max_allocated"
    return peak_rss_mb(), "process_peak_rss"


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library is another (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Hand the free pages inside the heap back to the system (glibc's `malloc_trim(0)`); False where
    there is no glibc. Training steps of varying shapes leave freed blocks scattered through the heap,
    which glibc keeps: resident memory then grows over a run although live memory does not."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
