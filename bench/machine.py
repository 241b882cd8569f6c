"""The machine and the versions of every tool, for the results page."""

from __future__ import annotations

import os
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .lab import tool_version


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    distribution = ""
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    distribution = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory": memory,
        "cpu": model,
        "kernel": platform.release(),
        "os": distribution or platform.platform(),
    }


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions(s3_label: str) -> dict[str, str]:
    ssh = tool_version(["ssh", "-V"])
    rclone = tool_version(["rclone", "version"])
    cp = tool_version(["cp", "--version"])
    return {
        "Python": platform.python_version(),
        "ftrack-transfer": _package("ftrack-transfer"),
        "ftrack-python-api": _package("ftrack-python-api"),
        "paramiko": _package("paramiko"),
        "boto3": _package("boto3"),
        "botocore": _package("botocore"),
        "s3transfer": _package("s3transfer"),
        "OpenSSH (sshd, sftp)": re.sub(r",.*", "", ssh),
        "rclone": rclone.replace("rclone ", ""),
        "cp": cp,
        "S3 server": s3_label,
    }
