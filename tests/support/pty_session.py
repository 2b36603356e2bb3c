"""Drives a command on a real pseudo-terminal, the way a person at a terminal would.

Usage: pty_session.py SCRIPT -- COMMAND...
SCRIPT is a list of steps separated by ';;': 'send:TEXT' types TEXT (with \\n as Enter),
'size:ROWSxCOLS' resizes the terminal (the kernel sends SIGWINCH), 'wait:SECONDS' pauses,
'until:TEXT' waits (at most 30 s) until TEXT appears in what the command has printed so far,
so a step that depends on an answer does not race it on a busy machine.
Everything the command prints is copied to stdout; the exit code is the command's.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


def main():
    script, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    out = bytearray()

    def pump(seconds, until=None):
        end = time.time() + seconds
        while True:
            if until is not None and until in out:
                return
            left = end - time.time()
            if left <= 0:
                return
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                out.extend(data)

    def resize(rows, cols):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    resize(24, 80)
    pump(1.0)
    for step in script.split(";;"):
        kind, _, arg = step.partition(":")
        if kind == "send":
            os.write(fd, arg.replace("\\n", "\r").encode())
            pump(1.0)
        elif kind == "size":
            rows, cols = arg.split("x")
            resize(int(rows), int(cols))
            pump(0.5)
        elif kind == "wait":
            pump(float(arg))
        elif kind == "until":
            pump(30.0, arg.encode())
    pump(5.0)
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(bytes(out))
    sys.exit(os.waitstatus_to_exitcode(status))


main()
