"""Records shipped from workers to a distributed master, without processes or sockets: two
workers' recorders ship their lines through `RecordShipper` as Locust messages (serialised as
they go over the wire), the master's `RECORDS_MSG` handler takes them in, and its ``requests.csv``
holds every record exactly once, byte for byte the lines one process writes of the same requests
(order aside), with per-worker counts equal to the lines written. In a child process: locust stays
out of pytest. The end-to-end runs are test_distributed.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, sys
from pathlib import Path

import pytest
from types import SimpleNamespace
from locust.rpc.protocol import Message
from loadbench.drive.distributed import RECORDS_MSG, Master, RecordShipper, WorkerInfo
from loadbench.drive.openloop import INTENDED_KEY
from loadbench.drive.recorder import Recorder
from loadbench.record.records import EXTRAS_KEY

class WorkerEnd:
    # A WorkerRunner's send_message: each message as it goes over the wire (msgpack).
    def __init__(self, node_id):
        self.node_id, self.wire = node_id, []
    def send_message(self, msg_type, data=None, client_id=None):
        self.wire.append(Message(msg_type, data, self.node_id).serialize())

class MasterEnd:
    def __init__(self):
        self.handlers = {}
    def register_message(self, msg_type, listener, concurrent=False):
        self.handlers[msg_type] = listener

def send(recorder, worker, count, flush_every):
    # Plain successes (the hot path), failures whose text holds a comma (a quoted field), LLM
    # answers with token timings, and a name with a comma and a quote.
    for i in range(count):
        t = 1765000000.0 + worker * 0.5 + i * 0.01
        failed = i % 10 == 3
        extras = {"ttft_ms": 41.5 + i, "output_tokens": 4, "itl_ms": [8.25, 9.0, 7.125]} if i % 7 == 0 else None
        context = {INTENDED_KEY: round(t - 0.002, 6), **({EXTRAS_KEY: extras} if extras else {})}
        recorder.on_request(
            "POST", '/v1/chat, "x"' if i % 13 == 0 else "/v1/chat", 5.0 + i * 0.137, 0 if failed else 600 + i,
            ConnectionResetError(104, "Connection reset by peer, retry") if failed else None,
            start_time=t, response=SimpleNamespace(status_code=0 if failed else 200, headers={}), context=context,
        )
        if flush_every and i % flush_every == flush_every - 1:
            recorder.flush()

out = Path(sys.argv[1])
(out / "single").mkdir()
(out / "master").mkdir()
counts = {"w0": 230, "w1": 170}
single = Recorder(out / "single")
for worker, count in enumerate(counts.values()):
    send(single, worker, count, 0)
single.close()

ends = {node: WorkerEnd(node) for node in counts}
for worker, (node, count) in enumerate(counts.items()):
    recorder = Recorder(None, [], RecordShipper(ends[node]))
    send(recorder, worker, count, 50)
    recorder.close()
    recorder.close()  # a second close ships nothing again
    recorder.flush()  # nor does a flush with nothing pending
master_end = MasterEnd()
master = Master(master_end)
master.recorder = Recorder(out / "master")
master.workers = {node: WorkerInfo(index, node) for index, node in enumerate(counts)}
queues = [list(end.wire) for end in ends.values()]
while any(queues):  # the workers' batches arrive interleaved
    for queue in queues:
        if queue:
            msg = Message.unserialize(queue.pop(0))
            master_end.handlers[msg.type](environment=None, msg=msg)
master.recorder.close()
print(json.dumps({
    "messages": {node: [Message.unserialize(m).type for m in end.wire] for node, end in ends.items()},
    "records": {node: info.records for node, info in master.workers.items()},
    "last": {node: info.last_record_unix_s for node, info in master.workers.items()},
    "total": master.recorder.total,
    "errors": master.recorder.errors,
    "records_msg": RECORDS_MSG,
}))
"""


def test_every_record_reaches_the_master_once_as_one_process_writes_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    # 230 and 170 records, shipped every 50: 5 and 4 batches, and nothing more.
    assert got["messages"] == {"w0": [got["records_msg"]] * 5, "w1": [got["records_msg"]] * 4}
    single = (tmp_path / "single" / "requests.csv").read_bytes().splitlines(keepends=True)
    master = (tmp_path / "master" / "requests.csv").read_bytes().splitlines(keepends=True)
    assert master[0] == single[0]  # the header
    assert len(master) == len(single) == 1 + 230 + 170
    assert sorted(master[1:]) == sorted(single[1:])
    assert b'"/v1/chat, ""x"""' in master[1] and b'Connection reset by peer, retry"' in master[4]
    assert got["records"] == {"w0": 230, "w1": 170}
    assert got["total"] == 400 and got["errors"] == 23 + 17
    # Each worker's last record is its last request: started at 0.5 s × worker + 0.01 s × (count - 1).
    assert got["last"] == {
        "w0": pytest.approx(1765000002.29, abs=1e-6),
        "w1": pytest.approx(1765000002.19, abs=1e-6),
    }
