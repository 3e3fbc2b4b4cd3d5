#!/usr/bin/env python3
"""Drives a command in a pseudo-terminal as a user at a keyboard would.

ptydrive.py ROWS COLS SCRIPT -- COMMAND...

SCRIPT is a JSON list of steps, run in order:
  ["wait", TEXT]          until TEXT has appeared in the output (since the start)
  ["send", TEXT]          type TEXT (JSON escapes for control keys: "\\u0010" is ctrl-p)
  ["resize", [ROWS, COLS]] change the terminal's size (SIGWINCH to the command)
  ["sleep", SECONDS]
The whole run is bounded by $PTYDRIVE_TIMEOUT seconds (default 30). Prints
the output, then a last line "[rc=N]" with the command's exit code, or
"[stuck at step K]" (exit 1) when a wait did not come true in time.
"""
import fcntl, json, os, pty, select, signal, struct, sys, termios, time


def main():
    rows, cols, script = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    argv = sys.argv[sys.argv.index("--") + 1:]
    limit = float(os.environ.get("PTYDRIVE_TIMEOUT", "30"))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out, step, t0, ended = b"", 0, time.time(), False
    while time.time() - t0 < limit:
        while step < len(script):
            kind, val = script[step]
            if kind == "wait" and val.encode() not in out:
                break
            if kind == "send":
                os.write(fd, val.encode())
            elif kind == "resize":
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", val[0], val[1], 0, 0))
                os.kill(pid, signal.SIGWINCH)
            elif kind == "sleep":
                time.sleep(val)
            step += 1
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the command and its terminal are gone
                data = b""
            if not data:
                ended = True
                break
            out += data
    sys.stdout.write(out.decode(errors="replace"))
    if not ended or step < len(script):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("\n[stuck at step %d]" % step)
        sys.exit(1)
    _, st = os.waitpid(pid, 0)
    print("\n[rc=%d]" % os.waitstatus_to_exitcode(st))


if __name__ == "__main__":
    main()
