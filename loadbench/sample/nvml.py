"""GPU readings through NVML, for the sampler that runs beside a load test.

Consumes the NVML bindings (the ``pynvml`` module from ``nvidia-ml-py``, or any object with the same
names, e.g. the fake in the tests); produces static `GpuInfo` records once per device and, on every
`GpuReader.read`, one flat ``{"gpu<i>.<metric>_<unit>": value}`` dict. Every value is ``None`` when
the device does not give it, so the reader never raises and a host without a GPU simply reads ``{}``
(with a one-line `GpuReader.notice` saying why).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

# Keys every device reports on every read (prefixed with ``gpu<i>.``); per-process keys come on top.
DEVICE_FIELDS: tuple[str, ...] = (
    "util_percent",
    "mem_util_percent",
    "mem_used_bytes",
    "mem_total_bytes",
    "power_w",
    "power_limit_w",
    "temp_c",
    "sm_clock_mhz",
    "pcie_tx_bytes_per_s",
    "pcie_rx_bytes_per_s",
    "energy_j",
    "procs_mem_bytes",
    "server_mem_bytes",
)

_KIB = 1024  # NVML's PCIe throughput is in KB/s, with KB = 1024 bytes


@dataclass
class GpuInfo:
    """Static facts about one device, read once at start-up; ``None`` where NVML would not say."""

    index: int
    name: str
    uuid: str | None = None
    memory_total_bytes: int | None = None
    power_limit_w: float | None = None
    pci_bus_id: str | None = None
    driver_version: str | None = None  # driver-level: the same for every device
    cuda_driver_version: int | None = None  # e.g. 12040 for CUDA 12.4; driver-level too


@dataclass
class _Device:
    info: GpuInfo
    handle: Any  # None when NVML gave no handle at start-up
    lost: bool = False  # set once NVML says the GPU is lost; a lost handle never comes back
    energy_base_mj: int | None = None  # the counter at the first read that had it


class _DeviceLost(Exception):
    """Internal: NVML raised NVMLError_GpuIsLost for this device."""


def _text(value: Any) -> str:
    """NVML strings are ``str`` in current bindings and ``bytes`` in old ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def _sum_known(values: Iterable[int | None]) -> int | None:
    """Sum of the known values; 0 for no processes, ``None`` when processes exist but none is known."""
    listed = list(values)
    known = [v for v in listed if v is not None]
    if listed and not known:
        return None
    return sum(known)


class GpuReader:
    """Open NVML once; read every device each call.

    ``nvml`` is the ``pynvml`` module or a fake with the same API (the seam the tests use); ``None``
    imports ``pynvml``. Nothing here raises: failures become ``available=False`` plus `notice`, or
    ``None`` values in `read`.
    """

    def __init__(self, nvml: Any | None = None) -> None:
        self.available: bool = False
        self.notice: str | None = None
        self.gpus: list[GpuInfo] = []
        self._nvml: Any = nvml
        self._devices: list[_Device] = []
        self._initialized = False
        self._lost_error: tuple[type[BaseException], ...] = ()
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            lost = getattr(self._nvml, "NVMLError_GpuIsLost", None)
            if isinstance(lost, type) and issubclass(lost, BaseException):
                self._lost_error = (lost,)
            self._nvml.nvmlInit()
            self._initialized = True
            count = int(self._nvml.nvmlDeviceGetCount())
        except Exception as exc:  # a sampler must start even when NVML cannot
            self._fail(self._reason(exc))
            return
        if count <= 0:
            self._fail("no devices")
            return
        driver = self._static(lambda: _text(self._nvml.nvmlSystemGetDriverVersion()))
        cuda = self._static(lambda: int(self._nvml.nvmlSystemGetCudaDriverVersion()))
        for index in range(count):
            self._devices.append(self._open_device(index, driver, cuda))
        self.gpus = [device.info for device in self._devices]
        self.available = True

    def _open_device(self, index: int, driver: str | None, cuda: int | None) -> _Device:
        nvml = self._nvml
        handle = self._static(lambda: nvml.nvmlDeviceGetHandleByIndex(index))
        info = GpuInfo(index=index, name="unknown", driver_version=driver, cuda_driver_version=cuda)
        if handle is not None:
            info.name = self._static(lambda: _text(nvml.nvmlDeviceGetName(handle))) or "unknown"
            info.uuid = self._static(lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
            info.memory_total_bytes = self._static(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total))
            info.power_limit_w = self._static(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0)
            info.pci_bus_id = self._static(lambda: _text(nvml.nvmlDeviceGetPciInfo(handle).busId))
        return _Device(info=info, handle=handle)

    @staticmethod
    def _static(get: Callable[[], Any]) -> Any:
        """One start-up fact, or ``None`` when NVML will not give it."""
        try:
            return get()
        except Exception:
            return None

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, ImportError):
            return "pynvml not installed"
        for name, reason in (
            ("NVMLError_LibraryNotFound", "NVML library not found (no NVIDIA driver installed)"),
            ("NVMLError_DriverNotLoaded", "driver not loaded"),
        ):
            cls = getattr(self._nvml, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return reason
        text = str(exc).strip() or type(exc).__name__
        nvml_error = getattr(self._nvml, "NVMLError", None)
        if not (isinstance(nvml_error, type) and isinstance(exc, nvml_error)):
            text = f"{type(exc).__name__}: {text}"
        return text

    def _fail(self, reason: str) -> None:
        self.available = False
        self.notice = " ".join(f"no NVIDIA GPU visible on {socket.gethostname()}: {reason}".split())
        self.close()

    def read(self, server_pids: Collection[int] = ()) -> dict[str, float | None]:
        """One sample of every device; ``{}`` when NVML is not available. Never raises."""
        if not self.available or not self._initialized:
            return {}
        pids = frozenset(server_pids)
        sample: dict[str, float | None] = {}
        for device in self._devices:
            prefix = f"gpu{device.info.index}."
            for key, value in self._read_device(device, pids).items():
                sample[prefix + key] = value
        return sample

    def _read_device(self, device: _Device, server_pids: frozenset[int]) -> dict[str, float | None]:
        values: dict[str, float | None] = dict.fromkeys(DEVICE_FIELDS)
        if device.handle is None or device.lost:
            return values
        readers: tuple[Callable[[], dict[str, float | None]], ...] = (
            lambda: self._utilization(device),
            lambda: self._memory(device),
            lambda: {"power_w": self._call(device, "nvmlDeviceGetPowerUsage") / 1000.0},
            lambda: {"power_limit_w": self._call(device, "nvmlDeviceGetEnforcedPowerLimit") / 1000.0},
            lambda: {
                "temp_c": float(
                    self._call(device, "nvmlDeviceGetTemperature", self._nvml.NVML_TEMPERATURE_GPU)
                )
            },
            lambda: {
                "sm_clock_mhz": float(self._call(device, "nvmlDeviceGetClockInfo", self._nvml.NVML_CLOCK_SM))
            },
            lambda: {"pcie_tx_bytes_per_s": self._pcie(device, self._nvml.NVML_PCIE_UTIL_TX_BYTES)},
            lambda: {"pcie_rx_bytes_per_s": self._pcie(device, self._nvml.NVML_PCIE_UTIL_RX_BYTES)},
            lambda: self._energy(device),
            lambda: self._processes(device, server_pids),
        )
        for reader in readers:
            try:
                values.update(reader())
            except _DeviceLost:
                device.lost = True
                return dict.fromkeys(DEVICE_FIELDS)
            except Exception:  # NotSupported and friends, or odd data: this field stays None
                continue
        return values

    def _call(self, device: _Device, name: str, *args: Any) -> Any:
        """Call ``nvml.<name>(handle, *args)``, turning a lost GPU into `_DeviceLost`."""
        try:
            return getattr(self._nvml, name)(device.handle, *args)
        except self._lost_error as exc:
            raise _DeviceLost from exc

    def _utilization(self, device: _Device) -> dict[str, float | None]:
        rates = self._call(device, "nvmlDeviceGetUtilizationRates")
        return {"util_percent": float(rates.gpu), "mem_util_percent": float(rates.memory)}

    def _memory(self, device: _Device) -> dict[str, float | None]:
        memory = self._call(device, "nvmlDeviceGetMemoryInfo")
        return {"mem_used_bytes": int(memory.used), "mem_total_bytes": int(memory.total)}

    def _pcie(self, device: _Device, counter: int) -> float:
        return float(self._call(device, "nvmlDeviceGetPcieThroughput", counter) * _KIB)

    def _energy(self, device: _Device) -> dict[str, float | None]:
        # The counter runs since the driver loaded; the run only cares about energy since its start.
        total_mj = int(self._call(device, "nvmlDeviceGetTotalEnergyConsumption"))
        if device.energy_base_mj is None:
            device.energy_base_mj = total_mj
        return {"energy_j": (total_mj - device.energy_base_mj) / 1000.0}

    def _processes(self, device: _Device, server_pids: frozenset[int]) -> dict[str, float | None]:
        memory: dict[int, int | None] = {}
        listed = False
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                processes = self._call(device, name)
            except _DeviceLost:
                raise
            except Exception:  # one list unsupported: the other still tells something
                continue
            listed = True
            for process in processes:
                pid = int(process.pid)
                used = process.usedGpuMemory
                used = None if used is None else int(used)
                # A process in both lists is reported with its whole usage in each: keep it once.
                previous = memory.get(pid)
                memory[pid] = used if previous is None else max(previous, used or 0)
        if not listed:
            return {}
        values: dict[str, float | None] = {
            "procs_mem_bytes": _sum_known(memory.values()),
            "server_mem_bytes": _sum_known(used for pid, used in memory.items() if pid in server_pids),
        }
        for pid in sorted(memory):
            values[f"pid{pid}_mem_bytes"] = memory[pid]
        return values

    def close(self) -> None:
        """Shut NVML down; safe to call twice. `read` returns ``{}`` afterwards."""
        if not self._initialized:
            return
        self._initialized = False
        with contextlib.suppress(Exception):  # shutting down is best effort
            self._nvml.nvmlShutdown()

    def __enter__(self) -> GpuReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
