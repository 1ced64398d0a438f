"""Tests of loadbench.sample.nvml: the real pynvml on this host, and `fake_nvml.FakeNvml` for the rest.

The fake raises the real ``pynvml.NVMLError_*`` classes, so every ``except`` in the reader is tested
against the types the real bindings raise.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import pynvml
import pytest
from fake_nvml import (
    DRIVER_NOT_LOADED,
    GPU_IS_LOST,
    LIBRARY_NOT_FOUND,
    NO_PERMISSION,
    NOT_SUPPORTED,
    UNKNOWN,
    FakeGpu,
    FakeNvml,
)

from loadbench.sample.nvml import DEVICE_FIELDS, GpuInfo, GpuReader

GIB = 2**30
SERVER_PID, OTHER_PID, HIDDEN_PID = 4242, 777, 999


def two_gpus() -> list[FakeGpu]:
    """Device 0 runs the server (and a stranger); device 1 is a smaller card, idle but for a viewer."""
    return [
        FakeGpu(
            compute_procs=[(SERVER_PID, 20 * GIB), (OTHER_PID, 2 * GIB)],
            graphics_procs=[(SERVER_PID, 20 * GIB), (HIDDEN_PID, None)],
            energy_step_mj=50_000,
        ),
        FakeGpu(
            name="NVIDIA L4",
            uuid="GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            bus_id="00000000:41:00.0",
            util_gpu=3,
            util_memory=1,
            mem_used=1 * GIB,
            mem_total=24 * GIB,
            power_mw=17_250,
            power_limit_mw=72_000,
            temp_c=38,
            sm_clock_mhz=210,
            pcie_tx_kbps=0,
            pcie_rx_kbps=8,
            energy_mj=123_456,
            energy_step_mj=1_500,
            graphics_procs=[(OTHER_PID, 512 * 2**20)],
        ),
    ]


EXPECTED_GPU0: dict[str, float | None] = {
    "util_percent": 87.0,
    "mem_util_percent": 41.0,
    "mem_used_bytes": 30 * GIB,
    "mem_total_bytes": 80 * GIB,
    "power_w": 312.5,
    "power_limit_w": 700.0,
    "temp_c": 64.0,
    "sm_clock_mhz": 1980.0,
    "pcie_tx_bytes_per_s": 1500 * 1024.0,
    "pcie_rx_bytes_per_s": 250 * 1024.0,
    "energy_j": 0.0,
    "procs_mem_bytes": 22 * GIB,  # the server once although it is in both lists; the unknown adds nothing
    "server_mem_bytes": 20 * GIB,
    f"pid{OTHER_PID}_mem_bytes": 2 * GIB,
    f"pid{HIDDEN_PID}_mem_bytes": None,
    f"pid{SERVER_PID}_mem_bytes": 20 * GIB,
}
EXPECTED_GPU1: dict[str, float | None] = {
    "util_percent": 3.0,
    "mem_util_percent": 1.0,
    "mem_used_bytes": 1 * GIB,
    "mem_total_bytes": 24 * GIB,
    "power_w": 17.25,
    "power_limit_w": 72.0,
    "temp_c": 38.0,
    "sm_clock_mhz": 210.0,
    "pcie_tx_bytes_per_s": 0.0,
    "pcie_rx_bytes_per_s": 8192.0,
    "energy_j": 0.0,
    "procs_mem_bytes": 512 * 2**20,
    "server_mem_bytes": 0,  # the server has nothing on this device
    f"pid{OTHER_PID}_mem_bytes": 512 * 2**20,
}
ALL_NONE: dict[str, float | None] = dict.fromkeys(DEVICE_FIELDS)


def prefixed(index: int, values: dict[str, float | None]) -> dict[str, float | None]:
    return {f"gpu{index}.{key}": value for key, value in values.items()}


def device(sample: dict[str, float | None], index: int) -> dict[str, float | None]:
    prefix = f"gpu{index}."
    return {key[len(prefix) :]: value for key, value in sample.items() if key.startswith(prefix)}


def open_reader(fake: FakeNvml) -> GpuReader:
    reader = GpuReader(nvml=fake)
    assert reader.available, reader.notice
    assert reader.notice is None
    return reader


# ---- the real pynvml on this host ---------------------------------------------------------------


def test_real_pynvml_never_raises() -> None:
    reader = GpuReader()
    if reader.available:  # a GPU host: every device gives the standard keys
        sample = reader.read([12345])
        for info in reader.gpus:
            assert set(prefixed(info.index, ALL_NONE)) <= set(sample)
        assert reader.notice is None
    else:
        assert reader.notice is not None
        assert reader.notice.startswith(f"no NVIDIA GPU visible on {socket.gethostname()}: ")
        reason = reader.notice.split(": ", 1)[1]
        assert reason  # e.g. "NVML library not found (no NVIDIA driver installed)"
        assert "\n" not in reader.notice
        assert reader.gpus == []
        assert reader.read() == {}
        assert reader.read([1, 2, 3]) == {}
    reader.close()
    reader.close()
    assert reader.read() == {}


def test_real_pynvml_raises_library_not_found_without_a_driver() -> None:
    # Pins down the assumption the notice text rests on, on hosts without the NVIDIA library.
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        reader = GpuReader()
        assert reader.notice is not None
        assert reader.notice.endswith(": NVML library not found (no NVIDIA driver installed)")
    except pynvml.NVMLError:
        pytest.skip("the NVIDIA library is installed here")
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML works here")


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    reader = GpuReader()
    assert not reader.available
    assert reader.notice == f"no NVIDIA GPU visible on {socket.gethostname()}: pynvml not installed"
    assert reader.read() == {}
    reader.close()


# ---- start-up -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver installed)"),
        (DRIVER_NOT_LOADED, "driver not loaded"),
        (NO_PERMISSION, "Insufficient Permissions"),
        (UNKNOWN, "Unknown Error"),
        (
            OSError("libnvidia-ml.so.1: cannot open\nshared object"),
            "OSError: libnvidia-ml.so.1: cannot open shared object",
        ),
    ],
)
def test_init_failure_gives_a_one_line_notice(error: Any, reason: str) -> None:
    fake = FakeNvml(two_gpus(), init_error=error)
    reader = GpuReader(nvml=fake)
    assert not reader.available
    assert reader.notice == f"no NVIDIA GPU visible on {socket.gethostname()}: {reason}"
    assert reader.gpus == []
    assert reader.read() == {}
    assert fake.shutdown_calls == 0  # never initialized, so nothing to shut down
    reader.close()
    assert fake.shutdown_calls == 0


def test_device_count_failure_shuts_nvml_down() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetCount", DRIVER_NOT_LOADED)
    reader = GpuReader(nvml=fake)
    assert not reader.available
    assert reader.notice is not None and reader.notice.endswith(": driver not loaded")
    assert not fake.initialized and fake.shutdown_calls == 1
    assert reader.read() == {}


def test_zero_devices() -> None:
    fake = FakeNvml([])
    reader = GpuReader(nvml=fake)
    assert not reader.available
    assert reader.notice == f"no NVIDIA GPU visible on {socket.gethostname()}: no devices"
    assert reader.read() == {}
    assert not fake.initialized and fake.shutdown_calls == 1
    reader.close()
    assert fake.shutdown_calls == 1


def test_static_info() -> None:
    reader = open_reader(FakeNvml(two_gpus()))
    assert reader.gpus == [
        GpuInfo(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            uuid="GPU-00000000-1111-2222-3333-444444444444",
            memory_total_bytes=80 * GIB,
            power_limit_w=700.0,
            pci_bus_id="00000000:01:00.0",
            driver_version="550.54.15",
            cuda_driver_version=12040,
        ),
        GpuInfo(
            index=1,
            name="NVIDIA L4",
            uuid="GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            memory_total_bytes=24 * GIB,
            power_limit_w=72.0,
            pci_bus_id="00000000:41:00.0",
            driver_version="550.54.15",
            cuda_driver_version=12040,
        ),
    ]


def test_bytes_strings_from_old_bindings_are_decoded() -> None:
    gpu = FakeGpu(name=b"Tesla V100-SXM2-16GB", uuid=b"GPU-12345678-abcd", bus_id=b"00000000:3B:00.0")
    reader = open_reader(FakeNvml([gpu], driver_version=b"470.82.01"))
    info = reader.gpus[0]
    assert info.name == "Tesla V100-SXM2-16GB"
    assert info.uuid == "GPU-12345678-abcd"
    assert info.pci_bus_id == "00000000:3B:00.0"
    assert info.driver_version == "470.82.01"


def test_static_facts_nvml_will_not_give_are_none() -> None:
    fake = FakeNvml(two_gpus())
    for function in (
        "nvmlSystemGetDriverVersion",
        "nvmlSystemGetCudaDriverVersion",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetPciInfo",
    ):
        fake.fail(function, NOT_SUPPORTED)
    fake.fail("nvmlDeviceGetMemoryInfo", NO_PERMISSION, device=1, calls=[1])
    fake.fail("nvmlDeviceGetEnforcedPowerLimit", NOT_SUPPORTED, device=1, calls=[1])
    reader = open_reader(fake)
    assert reader.gpus[0] == GpuInfo(0, "unknown", None, 80 * GIB, 700.0, None, None, None)
    assert reader.gpus[1] == GpuInfo(1, "unknown", None, None, None, None, None, None)
    # Only the start-up calls failed: the readings still come.
    assert reader.read([SERVER_PID]) == prefixed(0, EXPECTED_GPU0) | prefixed(1, EXPECTED_GPU1)


def test_device_without_handle_reads_none_and_others_still_read() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetHandleByIndex", NO_PERMISSION, device=1)
    reader = open_reader(fake)
    assert reader.gpus[1] == GpuInfo(1, "unknown", driver_version="550.54.15", cuda_driver_version=12040)
    assert reader.read([SERVER_PID]) == prefixed(0, EXPECTED_GPU0) | prefixed(1, ALL_NONE)


# ---- readings -----------------------------------------------------------------------------------


def test_every_key_with_units_converted() -> None:
    reader = open_reader(FakeNvml(two_gpus()))
    sample = reader.read([SERVER_PID])
    assert sample == prefixed(0, EXPECTED_GPU0) | prefixed(1, EXPECTED_GPU1)
    # Byte counts stay integers (exact in JSON); rates and physical quantities are floats.
    assert isinstance(sample["gpu0.mem_used_bytes"], int)
    assert isinstance(sample["gpu0.power_w"], float)
    assert isinstance(sample["gpu0.pcie_tx_bytes_per_s"], float)


def test_energy_is_relative_to_the_first_read() -> None:
    fake = FakeNvml(two_gpus())
    reader = open_reader(fake)
    energies = [(s["gpu0.energy_j"], s["gpu1.energy_j"]) for s in (reader.read() for _ in range(3))]
    assert energies == [(0.0, 0.0), (50.0, 1.5), (100.0, 3.0)]


def test_energy_counter_not_supported_is_none_and_baseline_waits_for_it() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetTotalEnergyConsumption", NOT_SUPPORTED, device=0, calls=[1])
    fake.fail("nvmlDeviceGetTotalEnergyConsumption", NOT_SUPPORTED, device=1)
    reader = open_reader(fake)
    first, second, third = reader.read(), reader.read(), reader.read()
    assert first["gpu0.energy_j"] is None and first["gpu1.energy_j"] is None
    assert second["gpu0.energy_j"] == 0.0  # the first read that had the counter is the baseline
    assert third["gpu0.energy_j"] == 50.0
    assert third["gpu1.energy_j"] is None
    assert third["gpu1.power_w"] == 17.25  # the analyzer integrates power instead


FUNCTION_KEYS = [
    ("nvmlDeviceGetUtilizationRates", {"util_percent", "mem_util_percent"}),
    ("nvmlDeviceGetMemoryInfo", {"mem_used_bytes", "mem_total_bytes"}),
    ("nvmlDeviceGetPowerUsage", {"power_w"}),
    ("nvmlDeviceGetEnforcedPowerLimit", {"power_limit_w"}),
    ("nvmlDeviceGetTemperature", {"temp_c"}),
    ("nvmlDeviceGetClockInfo", {"sm_clock_mhz"}),
    ("nvmlDeviceGetPcieThroughput", {"pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s"}),
    ("nvmlDeviceGetTotalEnergyConsumption", {"energy_j"}),
]


@pytest.mark.parametrize("error", [NOT_SUPPORTED, NO_PERMISSION, UNKNOWN, RuntimeError("odd binding")])
@pytest.mark.parametrize(("function", "keys"), FUNCTION_KEYS)
def test_a_failing_field_is_none_only_for_that_field(function: str, keys: set[str], error: Any) -> None:
    fake = FakeNvml(two_gpus())
    reader = open_reader(fake)  # start-up reads memory and power limit fine
    fake.fail(function, error, device=0)
    sample = reader.read([SERVER_PID])
    expected = EXPECTED_GPU0 | dict.fromkeys(keys)
    assert sample == prefixed(0, expected) | prefixed(1, EXPECTED_GPU1)


def test_a_field_failing_on_one_call_comes_back() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetPowerUsage", UNKNOWN, device=1, calls=[2])
    reader = open_reader(fake)
    powers = [reader.read()["gpu1.power_w"] for _ in range(3)]
    assert powers == [17.25, None, 17.25]


def test_pcie_counters_fail_separately() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetPcieThroughput", NOT_SUPPORTED, device=0, calls=[2])  # the RX call
    reader = open_reader(fake)
    sample = reader.read()
    assert sample["gpu0.pcie_tx_bytes_per_s"] == 1500 * 1024.0
    assert sample["gpu0.pcie_rx_bytes_per_s"] is None


def test_gpu_lost_mid_run() -> None:
    fake = FakeNvml(two_gpus())
    reader = open_reader(fake)
    assert reader.read([SERVER_PID]) == prefixed(0, EXPECTED_GPU0) | prefixed(1, EXPECTED_GPU1)
    fake.lose(0)
    second = reader.read([SERVER_PID])
    assert device(second, 0) == ALL_NONE
    assert device(second, 1) == EXPECTED_GPU1 | {"energy_j": 1.5}
    calls_after_loss = fake.device_calls(0)
    third = reader.read([SERVER_PID])
    assert device(third, 0) == ALL_NONE
    assert fake.device_calls(0) == calls_after_loss  # a lost GPU is not asked again
    reader.close()
    assert fake.shutdown_calls == 1


def test_gpu_lost_in_the_last_call_of_a_read_drops_the_whole_device() -> None:
    # Half a sample from a device that went away would be half from a dead card: all None instead.
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetGraphicsRunningProcesses", GPU_IS_LOST, device=1)
    reader = open_reader(fake)
    sample = reader.read([SERVER_PID])
    assert device(sample, 0) == EXPECTED_GPU0
    assert device(sample, 1) == ALL_NONE


# ---- GPU memory per process ---------------------------------------------------------------------


def test_process_memory_server_share_and_unknown_memory() -> None:
    gpu = FakeGpu(
        compute_procs=[(1, 3 * GIB), (2, 5 * GIB), (3, None)],
        graphics_procs=[(3, 1 * GIB), (4, None)],  # pid 3's memory is known from the graphics list
    )
    reader = open_reader(FakeNvml([gpu]))
    sample = device(reader.read([2, 3, 4, 99]), 0)
    assert sample["procs_mem_bytes"] == 9 * GIB
    assert sample["server_mem_bytes"] == 6 * GIB
    assert {k: v for k, v in sample.items() if k.startswith("pid")} == {
        "pid1_mem_bytes": 3 * GIB,
        "pid2_mem_bytes": 5 * GIB,
        "pid3_mem_bytes": 1 * GIB,
        "pid4_mem_bytes": None,
    }


def test_process_memory_all_unknown_is_none_and_no_processes_is_zero() -> None:
    busy = FakeGpu(compute_procs=[(10, None), (11, None)])
    idle = FakeGpu()
    reader = open_reader(FakeNvml([busy, idle]))
    sample = reader.read([10])
    assert sample["gpu0.procs_mem_bytes"] is None
    assert sample["gpu0.server_mem_bytes"] is None
    assert sample["gpu0.pid10_mem_bytes"] is None and sample["gpu0.pid11_mem_bytes"] is None
    assert sample["gpu1.procs_mem_bytes"] == 0
    assert sample["gpu1.server_mem_bytes"] == 0
    assert not any(key.startswith("gpu1.pid") for key in sample)


def test_process_lists_unsupported() -> None:
    fake = FakeNvml(two_gpus())
    fake.fail("nvmlDeviceGetComputeRunningProcesses", NOT_SUPPORTED, device=0)
    fake.fail("nvmlDeviceGetGraphicsRunningProcesses", NOT_SUPPORTED, device=0)
    fake.fail("nvmlDeviceGetComputeRunningProcesses", NO_PERMISSION, device=1)  # graphics still listed
    reader = open_reader(fake)
    sample = reader.read([SERVER_PID])
    gpu0_standard = {k: v for k, v in EXPECTED_GPU0.items() if not k.startswith("pid")}
    assert device(sample, 0) == gpu0_standard | {"procs_mem_bytes": None, "server_mem_bytes": None}
    assert device(sample, 1) == EXPECTED_GPU1


# ---- closing and the fake itself ----------------------------------------------------------------


def test_close_is_safe_twice_and_stops_reading() -> None:
    fake = FakeNvml(two_gpus())
    with GpuReader(nvml=fake) as reader:
        assert reader.read()
    assert fake.shutdown_calls == 1 and not fake.initialized
    reader.close()
    assert fake.shutdown_calls == 1
    assert reader.read() == {}


def test_shutdown_error_is_swallowed() -> None:
    fake = FakeNvml(two_gpus())
    reader = open_reader(fake)
    fake.initialized = False  # the real library raises Uninitialized here
    reader.close()
    assert fake.shutdown_calls == 1


def test_fake_only_offers_names_the_real_pynvml_has() -> None:
    public = [name for name in vars(FakeNvml) if name.startswith(("nvml", "NVML"))]
    assert public
    for name in public:
        assert hasattr(pynvml, name), name
        if name.startswith("NVMLError"):
            assert getattr(FakeNvml, name) is getattr(pynvml, name)
        elif name.startswith("NVML_"):
            assert getattr(FakeNvml, name) == getattr(pynvml, name)
    assert type(pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)) is pynvml.NVMLError_NotSupported


def test_reader_uses_the_fake_constants_correctly() -> None:
    # The fake rejects any other sensor, clock or PCIe counter, so these readings prove the arguments.
    fake = FakeNvml(two_gpus())
    reader = open_reader(fake)
    sample = reader.read()
    assert sample["gpu1.temp_c"] == 38.0
    assert sample["gpu1.sm_clock_mhz"] == 210.0
    assert sample["gpu1.pcie_rx_bytes_per_s"] == 8192.0
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetTemperature(reader_handle(fake, 1), 99)


def reader_handle(fake: FakeNvml, index: int) -> Any:
    return fake.nvmlDeviceGetHandleByIndex(index)
