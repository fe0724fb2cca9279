#!/usr/bin/env python3
"""An application on the box using `edgefit serve` through shared memory, with Python's standard
library only (issue 19): the input and output live in one /dev/shm file that this process maps
(mmap), registered once as two regions; each request is a small JSON body naming them, and the
server's session worker maps the same pages, so no tensor bytes cross the socket or get copied
by a read or a write call. See docs/serving.md ("Large inputs: shared memory").

  python3 examples/shm-client.py --input x.f32 --shape 1,3,640,640 --output-bytes 1638400
      [--url http://127.0.0.1:8551 | --socket /run/edgefit/serve.sock] [--model default]
      [--token T] [--save y.f32] [--repeat N]

--input is the preprocessed tensor as raw little-endian bytes of the model's input datatype (an
application would write its preprocessing straight into `mem`); the model's first input and
first output are used. Prints one JSON line: model version, output shape, bytes, the first
values (FP32), and per-request milliseconds.
"""
import argparse
import http.client
import json
import mmap
import os
import socket
import struct
import sys
import time
import urllib.parse


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the serve Unix socket (http.client speaks TCP only)."""

    def __init__(self, path):
        super().__init__("localhost")
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8551")
    ap.add_argument("--socket")
    ap.add_argument("--model", default="default")
    ap.add_argument("--token")
    ap.add_argument("--input", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--output-bytes", type=int, required=True)
    ap.add_argument("--save")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()

    if a.socket:
        conn = UnixConnection(a.socket)
    else:
        u = urllib.parse.urlparse(a.url)
        conn = http.client.HTTPConnection(u.hostname, u.port)
    headers = {"content-type": "application/json"}
    if a.token:
        headers["authorization"] = "Bearer " + a.token

    def call(method, path, body=None):
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"shm-client: {method} {path} answered {r.status}: {data[:200].decode(errors='replace')}")
        return json.loads(data)

    meta = call("GET", f"/v2/models/{a.model}")
    inp, out = meta["inputs"][0], meta["outputs"][0]
    data = open(a.input, "rb").read()
    in_bytes, out_bytes = len(data), a.output_bytes

    # one file, input then output; the key "/name" is /dev/shm/name
    key = f"/shm-client-{os.getpid()}"
    fd = os.open("/dev/shm" + key, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, in_bytes + out_bytes)
        mem = mmap.mmap(fd, in_bytes + out_bytes)
        try:
            call("POST", f"/v2/systemsharedmemory/region/{key[1:]}-in/register", {"key": key, "offset": 0, "byte_size": in_bytes})
            call("POST", f"/v2/systemsharedmemory/region/{key[1:]}-out/register", {"key": key, "offset": in_bytes, "byte_size": out_bytes})
            body = {
                "inputs": [
                    {
                        "name": inp["name"],
                        "datatype": inp["datatype"],
                        "shape": [int(d) for d in a.shape.split(",")],
                        "parameters": {"shared_memory_region": f"{key[1:]}-in", "shared_memory_byte_size": in_bytes},
                    }
                ],
                "outputs": [
                    {"name": out["name"], "parameters": {"shared_memory_region": f"{key[1:]}-out", "shared_memory_byte_size": out_bytes}}
                ],
            }
            mem[0:in_bytes] = data  # the input, in place (an application would preprocess into mem directly)
            ms = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                ans = call("POST", f"/v2/models/{a.model}/infer", body)
                ms.append(round((time.perf_counter() - t0) * 1000, 2))
            o = ans["outputs"][0]
            n = o["parameters"]["shared_memory_byte_size"]
            view = memoryview(mem)[in_bytes : in_bytes + n]  # the output, in place
            first = list(struct.unpack_from("<4f", view)) if o["datatype"] == "FP32" and n >= 16 else []
            if a.save:
                with open(a.save, "wb") as f:
                    f.write(view)
            view.release()
            print(json.dumps({"version": ans["model_version"], "shape": o["shape"], "bytes": n, "first": first, "ms": ms}))
            call("POST", f"/v2/systemsharedmemory/region/{key[1:]}-in/unregister")
            call("POST", f"/v2/systemsharedmemory/region/{key[1:]}-out/unregister")
        finally:
            mem.close()
    finally:
        os.close(fd)
        os.unlink("/dev/shm" + key)


if __name__ == "__main__":
    main()
