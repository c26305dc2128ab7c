"""qmp: a small client for QEMU's machine protocol (JSON over a unix socket).

QMP sends one JSON object per line: a greeting, then for each command either
{"return": ...} or {"error": ...}, with asynchronous {"event": ...} objects
interleaved anywhere. This client keeps the events it reads past so callers
can wait for them later (wait_event).
"""
import json
import socket
import threading
import time


class QMPError(Exception):
    """QEMU answered a command with an error, or the connection failed."""


class QMP:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"could not connect to QMP socket {path} in {timeout}s")
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        # One command and its answer at a time: a sampler thread and the
        # main thread may both ask.
        self.lock = threading.RLock()
        # QEMU can broadcast an event (RESUME, as the guest starts) to a
        # monitor that has just connected, ahead of the greeting: keep it.
        greeting = self._read()
        while "event" in greeting and "QMP" not in greeting:
            self.events.append(greeting)
            greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed by QEMU")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, **arguments):
        """Run a command and return its "return" value; raise QMPError on "error"."""
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        with self.lock:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            while True:
                reply = self._read()
                if "event" in reply:
                    self.events.append(reply)
                elif "return" in reply:
                    return reply["return"]
                elif "error" in reply:
                    raise QMPError(f"{command}: {reply['error'].get('desc', reply['error'])}")

    def wait_event(self, name, timeout=30.0):
        """Return the first (oldest unseen) event called `name`, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no QMP event {name} within {timeout}s")
            with self.lock:
                self.sock.settimeout(min(remaining, 0.2))
                try:
                    reply = self._read()
                except socket.timeout:
                    continue
                finally:
                    self.sock.settimeout(timeout)
            if "event" in reply:
                self.events.append(reply)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
