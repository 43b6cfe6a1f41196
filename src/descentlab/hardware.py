"""What this machine is, as the kernel and thread choices see it: CPU model, instruction-set flags, cores, GPU.

``current()`` reads it once per process (``/proc/cpuinfo``, cross-checked with torch's own CPU probes);
``Hardware.fake(...)`` builds a description by hand, so a choice made from one can be tested for any machine kind.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Hardware", "current"]

# flags that matter to the choices here, as /proc/cpuinfo spells them
_KNOWN = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_fp16")


@dataclass(frozen=True)
class Hardware:
    """A machine description: ``flags`` are /proc/cpuinfo's names (only those in ``_KNOWN`` are kept)."""

    model_name: str = "unknown CPU"
    flags: frozenset[str] = field(default_factory=frozenset)
    cores: int = 1
    capability: str = "DEFAULT"
    gpu: str | None = None

    @property
    def amx(self) -> bool:
        """Intel AMX tiles with bf16 (Sapphire Rapids and later): bf16 matmuls on a matrix engine."""
        return "amx_bf16" in self.flags or "amx_tile" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def fast_bf16(self) -> bool:
        """bf16 matmuls run natively (AMX or AVX512-BF16); without them oneDNN emulates bf16 (6-60x slower)."""
        return self.amx or self.avx512_bf16

    @property
    def kind(self) -> str:
        """A short name for the CPU kind the measured rules distinguish."""
        if self.amx:
            return "AMX"
        if self.avx512_bf16:
            return "AVX-512 BF16"
        if "avx512f" in self.flags:
            return "AVX-512"
        if "avx2" in self.flags:
            return "AVX2"
        return "other"

    def describe(self) -> str:
        """One line: model, kind, flags, cores, torch's capability, GPU."""
        flags = " ".join(sorted(self.flags)) or "none"
        gpu = self.gpu or "no GPU"
        return (f"{self.model_name} ({self.kind}; flags: {flags}; {self.cores} cores; torch capability "
                f"{self.capability}; {gpu})")  # fmt: skip

    @classmethod
    def fake(
        cls,
        amx: bool = False,
        avx512_bf16: bool = False,
        avx512: bool | None = None,
        avx2: bool = True,
        cores: int = 2,
        gpu: str | None = None,
        model_name: str = "fake CPU",
    ) -> Hardware:
        """A hand-made description, e.g. ``Hardware.fake(amx=True, avx512_bf16=True)`` or ``Hardware.fake()``
        (AVX2 only). AMX and AVX512-BF16 imply AVX-512 unless ``avx512`` says otherwise."""
        flags = set()
        if avx2:
            flags |= {"avx2", "fma"}
        if avx512 or (avx512 is None and (amx or avx512_bf16)):
            flags.add("avx512f")
        if avx512_bf16:
            flags.add("avx512_bf16")
        if amx:
            flags |= {"amx_tile", "amx_bf16"}
        capability = "AVX512" if "avx512f" in flags else "AVX2" if avx2 else "DEFAULT"
        return cls(model_name, frozenset(flags), cores, capability, gpu)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Hardware:
        """``Hardware.fake(**spec)``: e.g. ``{"amx": True, "avx512_bf16": True}``."""
        return cls.fake(**spec)


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def _torch_probes() -> set[str]:
    """The same flags from torch's own CPU probes (used where /proc/cpuinfo is missing)."""
    probes = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
              "avx512_bf16": "_is_avx512_bf16_supported", "amx_tile": "_is_amx_tile_supported"}  # fmt: skip
    found = set()
    for flag, fn in probes.items():
        try:
            if getattr(torch.cpu, fn)():
                found.add(flag)
        except (AttributeError, RuntimeError):
            pass
    return found


@functools.lru_cache(maxsize=1)
def current() -> Hardware:
    """This machine, read once per process."""
    name, flags = _cpuinfo()
    if not flags:  # no /proc/cpuinfo: torch's probes (the tiles come with bf16 on every AMX part)
        flags = _torch_probes()
        if "amx_tile" in flags:
            flags.add("amx_bf16")
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = "DEFAULT"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Hardware(name, frozenset(f for f in flags if f in _KNOWN), os.cpu_count() or 1, capability, gpu)
