"""How many GPUs this process may use, without importing torch where there can be none.

A sweep's driver checks that a trial fits the machine before it starts anything; on a host with
no NVIDIA driver (or with CUDA_VISIBLE_DEVICES="") the answer is 0 at once, and torch, whose
import costs seconds, is asked only where a GPU may really be.
"""

from __future__ import annotations

import os


def local_gpu_count() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        found = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except Exception:  # no NVIDIA driver, or no nvidia-ml-py: no GPU either way
        return 0
    if not found:
        return 0
    import torch  # it applies CUDA_VISIBLE_DEVICES and the driver's view

    return torch.cuda.device_count()
