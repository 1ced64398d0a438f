"""Readings of this machine through psutil: the host, a process tree, the load generator.

Consumes process ids and a target URL; produces flat dicts of values keyed
``<group>.<metric>`` (units in the names) for the sampler and the agent, and finds the model
server's process. No I/O beyond psutil's reads of /proc.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

from loadbench.errors import UsageError
from loadbench.redact import redact_argv
from loadbench.values import is_inprocess_url

CHILDREN_REFRESH_S = 2.0  # a process-tree walk costs ~1.5 ms: do it every few seconds, not every sample

Values = dict[str, float | None]


@dataclass
class ServerProcess:
    """The model server's main process and how it was found (shown in the report)."""

    pid: int
    name: str
    cmdline: str
    how: str


def _describe(proc: psutil.Process, how: str) -> ServerProcess:
    try:
        cmdline = " ".join(redact_argv(proc.cmdline()))[:300]  # e.g. vLLM's --api-key KEY
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmdline, name = "", "?"
    return ServerProcess(proc.pid, name, cmdline, how)


def _is_local_host(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    local = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    for info in infos:
        address = str(info[4][0])
        if ipaddress.ip_address(address).is_loopback or address in local:
            return True
    return False


def find_server_process(
    target: str, server_pid: int | None = None, server_name: str | None = None
) -> tuple[ServerProcess | None, str | None]:
    """The model server's process: given by pid or name, or the local process listening on the
    target's port. Returns (process or None, a notice when none could be found)."""
    if server_pid is not None:
        try:
            return _describe(psutil.Process(server_pid), "given with --server-pid"), None
        except psutil.NoSuchProcess:
            raise UsageError(f"--server-pid {server_pid}: no such process") from None
    if server_name is not None:
        me = os.getpid()
        found = []
        for proc in psutil.process_iter(["pid", "name", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["pid"] != me and (server_name == proc.info["name"] or server_name in cmd):
                found.append(proc)
        if not found:
            raise UsageError(
                f"--server-name {server_name!r}: no running process has that name or command line"
            )
        # Several matches (workers of one server): sample the oldest, its children come along.
        oldest = min(found, key=lambda p: p.create_time())
        return _describe(oldest, f"matched --server-name {server_name!r} ({len(found)} process(es))"), None
    if is_inprocess_url(target):  # the model runs in the load generator: sample this process
        return _describe(psutil.Process(os.getpid()), "this process: the in-process target runs in it"), None
    parts = urlsplit(target)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _is_local_host(host):
        return None, f"the target {host} is not on this machine: no server process sampled (see --agent)"
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None, "cannot list listening sockets (permission denied): pass --server-pid"
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return _describe(psutil.Process(conn.pid), f"listening on port {port} of the target"), None
            except psutil.NoSuchProcess:
                break
    return None, f"no visible process listens on port {port}: pass --server-pid or --server-name"


class ProcessTree:
    """CPU, memory, threads and file descriptors of a process and all its descendants.

    CPU and RSS are read at every sample. Threads and open files change slowly and cost about
    as much again (a /proc status file and a directory listing per process), so they are read
    at most every `slow_every_s`, as the host's slow fields are; the samples between carry
    only CPU, RSS and the process count.
    """

    def __init__(
        self, pid: int, clock: Callable[[], float] = time.monotonic, slow_every_s: float = 0.5
    ) -> None:
        self.root = psutil.Process(pid)
        self.clock = clock
        self.slow_every_s = slow_every_s
        self.next_slow = 0.0  # the first sample reads everything
        self.procs: dict[int, psutil.Process] = {}
        self.next_refresh = 0.0
        self.refresh()

    def refresh(self) -> None:
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        known = self.procs
        self.procs = {p.pid: known.get(p.pid, p) for p in members}
        for pid, proc in self.procs.items():
            if pid not in known:
                proc.cpu_percent(None)  # prime: the first call has no interval to measure
        self.next_refresh = self.clock() + CHILDREN_REFRESH_S

    def read(self, prefix: str) -> Values:
        now = self.clock()
        if now >= self.next_refresh:
            self.refresh()
        slow = now >= self.next_slow
        if slow:
            self.next_slow = now + self.slow_every_s
        cpu = rss = threads = fds = 0.0
        alive = 0
        for proc in list(self.procs.values()):
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    if slow:
                        threads += proc.num_threads()
                        fds += proc.num_fds() if hasattr(proc, "num_fds") else 0
                alive += 1
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                self.procs.pop(proc.pid, None)
            except psutil.AccessDenied:
                alive += 1
        if not alive:
            return dict.fromkeys(
                (f"{prefix}.cpu_percent", f"{prefix}.rss_bytes", f"{prefix}.threads", f"{prefix}.open_fds")
            ) | {f"{prefix}.processes": 0.0}
        out: Values = {
            f"{prefix}.cpu_percent": round(cpu, 2),
            f"{prefix}.rss_bytes": rss,
            f"{prefix}.processes": float(alive),
        }
        if slow:
            out |= {f"{prefix}.threads": threads, f"{prefix}.open_fds": fds}
        return out


class Generator:
    """The load generator's processes, each on its own: saturation is per process (one core each)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
                self.procs.append(proc)
            except psutil.NoSuchProcess:
                pass

    def read(self) -> Values:
        values: list[float] = []
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                values.append(proc.cpu_percent(None))
        return {"generator.cpu_percent": round(max(values), 2) if values else None}


class Host:
    """Host-wide CPU, load, memory, swap, network and disk through psutil; rates per second.

    CPU is read at every sample. Memory, swap, load, network and disk change slowly and cost
    most of a sample's time (each is a /proc file to parse), so they are read at most every
    `slow_every_s`; the samples between carry only the CPU.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, slow_every_s: float = 0.5) -> None:
        self.clock = clock
        self.slow_every_s = slow_every_s
        psutil.cpu_percent(None, percpu=True)
        self.last_t = clock()
        self.next_slow = self.last_t  # the first sample reads everything
        self.last_net = psutil.net_io_counters(nowrap=True)
        self.last_disk = psutil.disk_io_counters(nowrap=True)

    def read(self) -> Values:
        per_core = psutil.cpu_percent(None, percpu=True)
        out: Values = {"host.cpu_percent": round(sum(per_core) / max(len(per_core), 1), 2)}
        for i, value in enumerate(per_core):
            out[f"host.cpu{i}_percent"] = value
        now = self.clock()
        if now >= self.next_slow:
            out |= self._read_slow(now)
            self.next_slow = now + self.slow_every_s
        return out

    def _read_slow(self, now: float) -> Values:
        dt = max(now - self.last_t, 1e-9)
        out: Values = {}
        try:
            load1, load5, load15 = psutil.getloadavg()
            out |= {"host.load1": load1, "host.load5": load5, "host.load15": load15}
        except OSError:
            out |= {"host.load1": None, "host.load5": None, "host.load15": None}
        mem = psutil.virtual_memory()
        out["host.mem_used_bytes"] = float(mem.total - mem.available)
        out["host.mem_available_bytes"] = float(mem.available)
        out["host.mem_total_bytes"] = float(mem.total)
        out["host.swap_used_bytes"] = float(psutil.swap_memory().used)
        net = psutil.net_io_counters(nowrap=True)
        if net is not None and self.last_net is not None:
            out["host.net_sent_bytes_per_s"] = round((net.bytes_sent - self.last_net.bytes_sent) / dt, 1)
            out["host.net_recv_bytes_per_s"] = round((net.bytes_recv - self.last_net.bytes_recv) / dt, 1)
        disk = psutil.disk_io_counters(nowrap=True)
        if disk is not None and self.last_disk is not None:
            out["host.disk_read_bytes_per_s"] = round((disk.read_bytes - self.last_disk.read_bytes) / dt, 1)
            out["host.disk_write_bytes_per_s"] = round(
                (disk.write_bytes - self.last_disk.write_bytes) / dt, 1
            )
        else:
            out["host.disk_read_bytes_per_s"] = out["host.disk_write_bytes_per_s"] = None
        self.last_t, self.last_net, self.last_disk = now, net, disk
        return out
