"""The listening sockets of the instance slots, kept open across an instance's death.

Caddy 2.6 cannot retry a request with a body after a refused connection (Go
closes the body when the dial fails; fixed upstream by caddy#7547), so a
killed instance whose port refused connections would fail the POSTs Caddy
sends it until its next health check. PM2 cannot hand a socket to the process
it restarts, so this does, in two halves:

  slots.py hold SOCKET          (a PM2 app) binds each slot's port on first
                                request, keeps its copy, and sends it over the
                                Unix socket SOCKET (SCM_RIGHTS); "release PORT"
                                closes its copy (scale-in: the port then closes
                                with the instance).
  slots.py exec SOCKET PORT CMD (each instance's PM2 app) takes the port's
                                socket and execs CMD with LISTEN_FD=<its fd>,
                                so PM2's pid is the instance's.

While a slot is held, connections that arrive with its instance dead wait in
the kernel's accept queue for the one PM2 starts next.
"""
import os
import socket
import sys


def hold(path):
    held = {}
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    while True:
        client, _ = server.accept()
        with client:
            verb, port = client.recv(64).decode().split()
            port = int(port)
            if verb == "release":
                slot = held.pop(port, None)
                if slot:
                    slot.close()
                client.sendall(b"ok")
                continue
            try:
                if port not in held:
                    slot = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    slot.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    slot.bind(("127.0.0.1", port))
                    held[port] = slot
                socket.send_fds(client, [b"ok"], [held[port].fileno()])
            except OSError as error:
                client.sendall(f"cannot bind 127.0.0.1:{port}: {error}".encode())


def take(path, port, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(path)
        client.sendall(f"take {port}".encode())
        message, fds, _, _ = socket.recv_fds(client, 256, 1)
    if not fds:
        sys.exit(f"slots.py: {message.decode()}")
    # Not fd 3 itself: that is PM2's IPC channel, which Node would take over (NODE_CHANNEL_FD).
    os.set_inheritable(fds[0], True)
    os.environ["LISTEN_FD"] = str(fds[0])
    os.execvp(command[0], command)


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        hold(sys.argv[2])
    else:
        take(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
