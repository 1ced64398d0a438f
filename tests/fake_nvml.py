"""A fake of the ``pynvml`` API, as far as `loadbench.sample.nvml.GpuReader` uses it.

Consumes a list of `FakeGpu` (the values each device reports) and error rules set with
`FakeNvml.fail` / `FakeNvml.lose`; produces what the real bindings return: the real ctypes
structures for utilization, memory and PCI info, real ``nvmlFriendlyObject`` process records, and the
real ``pynvml.NVMLError_*`` exceptions, so the reader's ``except`` clauses meet the real types.
"""

from __future__ import annotations

import types
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import pynvml

# The error codes tests pass to `FakeNvml.fail` and friends.
NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
UNKNOWN = pynvml.NVML_ERROR_UNKNOWN

ErrorSpec = int | BaseException  # an NVML error code, or any exception to raise as is


@dataclass
class FakeGpu:
    """What one fake device reports, in NVML's own units (mW, mJ, KB/s)."""

    name: str | bytes = "NVIDIA H100 80GB HBM3"
    uuid: str | bytes = "GPU-00000000-1111-2222-3333-444444444444"
    bus_id: str | bytes = "00000000:01:00.0"
    util_gpu: int = 87
    util_memory: int = 41
    mem_used: int = 30 * 2**30
    mem_total: int = 80 * 2**30
    power_mw: int = 312_500
    power_limit_mw: int = 700_000
    temp_c: int = 64
    sm_clock_mhz: int = 1980
    pcie_tx_kbps: int = 1500
    pcie_rx_kbps: int = 250
    energy_mj: int = 9_000_000_000  # since the driver loaded: far from zero
    energy_step_mj: int = 0  # the counter advances by this after every read of it
    # (pid, usedGpuMemory or None) as nvmlDeviceGetComputeRunningProcesses / ...Graphics... list them
    compute_procs: list[tuple[int, int | None]] = field(default_factory=list)
    graphics_procs: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass(frozen=True)
class FakeHandle:
    """Stands for a ``c_nvmlDevice_t``."""

    index: int


@dataclass
class _Rule:
    error: ErrorSpec
    calls: frozenset[int] | None  # 1-based call numbers, None for every call


def _error(spec: ErrorSpec) -> BaseException:
    # pynvml.NVMLError(code) returns the matching NVMLError_* subclass, as the real bindings raise it.
    return pynvml.NVMLError(spec) if isinstance(spec, int) else spec


def _process(pid: int, used: int | None) -> Any:
    # Built the way pynvml builds them: a friendly object from the v3 struct, None for "not available".
    struct = pynvml.c_nvmlProcessInfo_v3_t(pid=pid, usedGpuMemory=0, gpuInstanceId=0, computeInstanceId=0)
    process = pynvml.nvmlStructToFriendlyObject(struct)
    process.usedGpuMemory = used
    return process


class FakeNvml:
    """Module-like stand-in for ``pynvml``; pass it as ``GpuReader(nvml=FakeNvml(...))``."""

    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_PCIE_UTIL_TX_BYTES = pynvml.NVML_PCIE_UTIL_TX_BYTES
    NVML_PCIE_UTIL_RX_BYTES = pynvml.NVML_PCIE_UTIL_RX_BYTES

    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVMLError_InvalidArgument = pynvml.NVMLError_InvalidArgument
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVMLError_Unknown = pynvml.NVMLError_Unknown

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: ErrorSpec | None = None,
        driver_version: str | bytes = "550.54.15",
        cuda_driver_version: int = 12040,
    ) -> None:
        self.gpus = [FakeGpu()] if gpus is None else gpus
        self.init_error = init_error
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.initialized = False
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[tuple[int | None, str], int] = {}  # (device or None, function) -> count
        self._rules: dict[tuple[int | None, str], _Rule] = {}

    # ---- configuration -------------------------------------------------------------------------

    def fail(
        self, function: str, error: ErrorSpec, device: int | None = None, calls: Collection[int] | None = None
    ) -> None:
        """Make ``function`` raise ``error`` on ``device`` (None: system-level or every device),
        on the given 1-based call numbers of that function on that device (None: on every call)."""
        self._rules[(device, function)] = _Rule(error, None if calls is None else frozenset(calls))

    def lose(self, device: int) -> None:
        """The device falls off the bus: every call with its handle raises NVMLError_GpuIsLost."""
        self._rules[(device, "*")] = _Rule(GPU_IS_LOST, None)

    def device_calls(self, device: int) -> int:
        """How many calls took this device's handle (handle lookup included)."""
        return sum(count for (index, _), count in self.calls.items() if index == device)

    # ---- plumbing ------------------------------------------------------------------------------

    def _enter(self, function: str, device: int | None = None) -> None:
        if not self.initialized:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        key = (device, function)
        self.calls[key] = number = self.calls.get(key, 0) + 1
        for rule_key in ((device, "*"), key, (None, function)):
            rule = self._rules.get(rule_key)
            if rule is not None and (rule.calls is None or number in rule.calls):
                raise _error(rule.error)

    def _gpu(self, function: str, handle: FakeHandle) -> FakeGpu:
        if not isinstance(handle, FakeHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._enter(function, handle.index)
        return self.gpus[handle.index]

    # ---- the pynvml API ------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise _error(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        if not self.initialized:  # the real library says so too
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str | bytes:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str | bytes:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> Any:
        bus_id = self._gpu("nvmlDeviceGetPciInfo", handle).bus_id
        if isinstance(bus_id, bytes):  # old bindings hand back the raw char array
            return types.SimpleNamespace(busId=bus_id)
        info = pynvml.nvmlPciInfo_t()
        info.busId = bus_id.encode()
        return info

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> Any:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        return pynvml.c_nvmlUtilization_t(gpu=gpu.util_gpu, memory=gpu.util_memory)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> Any:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        return pynvml.c_nvmlMemory_t(
            total=gpu.mem_total, free=gpu.mem_total - gpu.mem_used, used=gpu.mem_used
        )

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_mw

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temp_c

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        if clock != pynvml.NVML_CLOCK_SM:  # only the SM clock is faked
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.sm_clock_mhz

    def nvmlDeviceGetPcieThroughput(self, handle: FakeHandle, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetPcieThroughput", handle)
        if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES:
            return gpu.pcie_tx_kbps
        if counter == pynvml.NVML_PCIE_UTIL_RX_BYTES:
            return gpu.pcie_rx_kbps
        raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle)
        value = gpu.energy_mj
        gpu.energy_mj += gpu.energy_step_mj
        return value

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [_process(pid, used) for pid, used in gpu.compute_procs]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeHandle) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return [_process(pid, used) for pid, used in gpu.graphics_procs]
