"""The machine a measurement ran on, for the header of a results file."""
import datetime
import os
import platform
from pathlib import Path
from typing import List


def machine() -> List[str]:
    """Date, CPU, cores, load and versions, as markdown list items."""
    import torch
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.exists():
        names = [
            line.split(':', 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith('model name')
        ]
        cpu = names[0] if names else cpu
    lines = [
        f'- date: {datetime.datetime.now():%Y-%m-%d %H:%M}',
        f'- machine: {cpu}, {os.cpu_count()} cores, load average '
        f'{os.getloadavg()[0]:.1f} at the start',
        f'- torch {torch.__version__}, Python {platform.python_version()}'
    ]
    return lines
