"""What the figures were measured on: machine, library versions, date."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess

# Distributions whose versions the report lists, in this order.
LIBRARIES = (
    "ebmlang", "numpy", "scipy", "torch", "jax", "jaxlib", "thrml", "blackjax", "numpyro", "pgmax",
    "scikit-learn", "PyMaxflow", "ortools", "psutil", "rich",
)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, macOS sysctl, else platform)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        return subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()


def total_memory_gib() -> float | None:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, str]:
    """CPU model, core counts, RAM, OS, Python, thread settings, date (UTC)."""
    logical = os.cpu_count() or 0
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    memory = total_memory_gib()
    info = {
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "cores": f"{logical} logical" + (f", {physical} physical" if physical else ""),
        "usable cores": str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?",
        "RAM": f"{memory:.1f} GiB" if memory is not None else "?",
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        # Other work on the machine slows every contender, multi-threaded ones most.
        info["load average at start (1/5/15 min)"] = " / ".join(f"{load:.2f}" for load in os.getloadavg())
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    try:
        import jax

        info["JAX devices"] = ", ".join(sorted({str(d.platform) for d in jax.devices()}))
    except ImportError:
        pass
    return info


def library_versions() -> dict[str, str]:
    """Installed version of each of `LIBRARIES`, or 'not installed'."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
