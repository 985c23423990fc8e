"""A test-owned GitHub Actions cache service (the v2 "results" service sccache speaks).

Two hosts, as on GitHub: the cache service itself (twirp at
`/twirp/github.actions.results.api.v1.CacheService/{CreateCacheEntry, FinalizeCacheEntryUpload,
GetCacheEntryDownloadURL}`, JSON or protobuf bodies) and the blob store its signed URLs point at.
The blob store is azurite, reached through a front on a port of its own so that the store can
fail apart from the service.

    python3 gha_cache.py --azurite http://127.0.0.1:PORT --ready FILE --control FILE

It binds two kernel-picked loopback ports and writes {"service": N, "blob": M} to the ready file
once both listen. The control file (JSON, re-read on every request and every 50 ms) says how
each host behaves: {"service": MODE, "blob": MODE}, MODE one of
  ok       serve normally
  refuse   stop listening (connections are refused) until told otherwise
  5xx      answer 503 to everything
  429      answer 429 to everything
  429-writes  answer 429 to CreateCacheEntry only (the service) or to PUTs (the blob store)
  silent   accept connections and never answer
A missing or unreadable control file means "ok" for both. Every request is logged, one line,
to stderr.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import azure_sas  # noqa: E402

CONTAINER = "gha-cache"
PREFIX = "/twirp/github.actions.results.api.v1.CacheService/"
STOP = threading.Event()


def mode(control, host):
    try:
        with open(control) as f:
            return json.load(f).get(host, "ok")
    except (OSError, ValueError):
        return "ok"


# Protobuf, just the field kinds these messages use: varints (bools, int64) and
# length-delimited strings.


def pb_decode(data):
    fields = {}
    i = 0
    while i < len(data):
        key, i = pb_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = pb_varint(data, i)
        elif wire == 2:
            length, i = pb_varint(data, i)
            value = data[i : i + length]
            i += length
        elif wire == 1:
            value = data[i : i + 8]
            i += 8
        elif wire == 5:
            value = data[i : i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
        fields[number] = value
    return fields


def pb_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def pb_put_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_encode(fields):
    """fields: list of (number, value) with bool/int as varints and str as strings."""
    out = bytearray()
    for number, value in fields:
        if isinstance(value, (bool, int)):
            out += pb_put_varint(number << 3) + pb_put_varint(int(value))
        else:
            raw = value.encode()
            out += pb_put_varint(number << 3 | 2) + pb_put_varint(len(raw)) + raw
    return bytes(out)


# Field numbers and JSON names of the messages (github.actions.results.api.v1).
FIELDS = {
    "CreateCacheEntry": {"key": 2, "version": 3},
    "FinalizeCacheEntryUpload": {"key": 2, "size_bytes": 3, "version": 4},
    # restore_keys is field 3.
    "GetCacheEntryDownloadURL": {"key": 2, "version": 4},
}


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}  # (key, version) -> {"blob": name, "done": bool}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A reply goes out as two writes (head, then body); with Nagle's algorithm on, the body of a
    # reply on a kept-alive connection waits for the client's delayed ACK, about 40 ms on Linux,
    # a stall no real service shows and which would land on whichever client reused the
    # connection.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{self.server.host_name}: {fmt % args}\n")

    def common(self):
        m = mode(self.server.control, self.server.host_name)
        if m == "silent":
            # Never answer; the connection is held until the server stops.
            STOP.wait()
            self.close_connection = True
            return True
        status = {"5xx": 503, "429": 429}.get(m)
        if m == "429-writes" and self.is_write():
            status = 429
        if status:
            self.drain()
            self.reply(status, b'{"code":"unavailable","msg":"told to fail"}', "application/json")
            return True
        return False

    def drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ServiceHandler(Handler):
    def is_write(self):
        return self.path.endswith("/CreateCacheEntry")

    def do_POST(self):
        if self.common():
            return
        body = self.drain()
        if not self.path.startswith(PREFIX):
            return self.reply(404, b"{}", "application/json")
        method = self.path[len(PREFIX) :]
        proto = "protobuf" in (self.headers.get("Content-Type") or "")
        names = FIELDS.get(method, {})
        if proto:
            raw = pb_decode(body)
            req = {name: raw.get(num) for name, num in names.items()}
            req = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in req.items()}
        else:
            req = json.loads(body or b"{}")
        key, version = req.get("key") or "", req.get("version") or ""
        sys.stderr.write(f"service: {method} key={key!r} version={version!r} protobuf={proto}\n")
        store = self.server.store
        answer = None
        with store.lock:
            entry = store.entries.get((key, version))
            if method == "CreateCacheEntry":
                if entry and entry["done"]:
                    return self.twirp_error(409, "already_exists", "cache entry exists")
                blob = hashlib.sha256(f"{key}\0{version}".encode()).hexdigest()
                store.entries[(key, version)] = {"blob": blob, "done": False}
                answer = [("ok", 1, True), ("signed_upload_url", 2, self.signed(blob))]
            elif method == "FinalizeCacheEntryUpload":
                if not entry:
                    return self.twirp_error(404, "not_found", "no such upload")
                entry["done"] = True
                answer = [("ok", 1, True), ("entry_id", 2, len(store.entries))]
            elif method == "GetCacheEntryDownloadURL":
                if not entry or not entry["done"]:
                    # What GitHub's service answers for a miss: 200 with ok false.
                    answer = [("ok", 1, False)]
                else:
                    answer = [
                        ("ok", 1, True),
                        ("signed_download_url", 2, self.signed(entry["blob"])),
                        ("matched_key", 3, key),
                    ]
            else:
                return self.twirp_error(404, "bad_route", "no such method")
        if proto:
            out = pb_encode([(num, value) for _, num, value in answer if value is not False])
            self.reply(200, out, "application/protobuf")
        else:
            out = json.dumps({name: value for name, _, value in answer}).encode()
            self.reply(200, out, "application/json")

    def twirp_error(self, status, code, msg):
        self.reply(status, json.dumps({"code": code, "msg": msg}).encode(), "application/json")

    def signed(self, blob):
        return (
            f"http://127.0.0.1:{self.server.blob_port}/{azure_sas.ACCOUNT}/{CONTAINER}/{blob}"
            f"?{azure_sas.account_sas()}"
        )

    do_GET = do_POST
    do_PUT = do_POST


class BlobHandler(Handler):
    """Forwards every request, as it came, to azurite."""

    def is_write(self):
        return self.command == "PUT"

    def forward(self):
        if self.common():
            return
        body = self.drain()
        up = urllib.parse.urlsplit(self.server.azurite)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward


class Front:
    """One host: listens while its mode is not "refuse", on the same port throughout."""

    def __init__(self, name, handler, args, store):
        self.name, self.handler, self.args, self.store = name, handler, args, store
        self.port = 0
        self.server = None
        self.blob_port = 0

    def listening(self):
        return self.server is not None

    def open(self):
        server = Server(("127.0.0.1", self.port), self.handler)
        server.host_name = self.name
        server.control = self.args.control
        server.azurite = self.args.azurite
        server.store = self.store
        server.blob_port = self.blob_port
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def follow(self):
        refuse = mode(self.args.control, self.name) == "refuse"
        if refuse and self.listening():
            self.close()
        elif not refuse and not self.listening():
            self.open()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--azurite", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--control", required=True)
    args = p.parse_args()
    azure_sas.create_container(args.azurite, CONTAINER)
    store = Store()
    blob = Front("blob", BlobHandler, args, store)
    service = Front("service", ServiceHandler, args, store)
    # Both ports are taken first, so the ready file can name them even if one starts refused.
    blob.open()
    service.blob_port = blob.port
    service.open()
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"service": service.port, "blob": blob.port}, f)
    os.replace(tmp, args.ready)
    while True:
        for front in (service, blob):
            front.follow()
        time.sleep(0.05)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
