"""The listening sockets of the instance slots, kept open across an instance's death (README.md).

`slots.py hold SOCKET` (a PM2 app) binds a slot's port when first asked and keeps it; `slots.py
exec SOCKET PORT CMD...` (each instance's app) takes the port's socket over the Unix socket
SOCKET (SCM_RIGHTS) and execs CMD with LISTEN_FD set, so PM2's pid is the instance's: while
held, connections to a dead instance wait in the accept queue for the next. `slots.py release
SOCKET PORT...` (scale-in) closes the held copy, so the port closes with its instance.
"""
import os
import signal
import socket
import sys


def hold(path):
    held = {}
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)
    while True:
        client, _ = server.accept()
        with client:
            verb, port = client.recv(64).decode().split()
            port = int(port)
            if verb == "release":
                # A port never taken (its instance died before) has nothing to let go.
                if port in held:
                    held.pop(port).close()
                client.sendall(b"ok")
                continue
            try:
                if port not in held:
                    held[port] = socket.create_server(("127.0.0.1", port))
                socket.send_fds(client, [b"ok"], [held[port].fileno()])
            except OSError as error:
                client.sendall(f"cannot bind 127.0.0.1:{port}: {error}".encode())


def ask(path, verb, port):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        client.sendall(f"{verb} {port}".encode())
        message, fds, _, _ = socket.recv_fds(client, 256, 1)
    return message.decode(), fds


def take(path, port, command):
    message, fds = ask(path, "take", port)
    if not fds:
        sys.exit(f"slots.py: {message}")
    # Not fd 3 itself: that is PM2's IPC channel, which Node would take over (NODE_CHANNEL_FD).
    os.set_inheritable(fds[0], True)
    os.execvpe(command[0], command, {**os.environ, "LISTEN_FD": str(fds[0])})


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        # SIGINT is how PM2 stops it: no traceback.
        signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
        hold(sys.argv[2])
    elif sys.argv[1] == "release":
        for port in sys.argv[3:]:
            ask(sys.argv[2], "release", int(port))
    else:
        take(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
