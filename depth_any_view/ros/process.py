"""The node as a child process: started with its output in a log file, stopped as Ctrl-C.

One implementation for everything that runs the real node beside itself: the demo
(`depth_any_view/demo.py`), the DDS benchmark (`bench/dds.py`) and the tests that talk to
the node over DDS. The child imports rclpy, this module does not (the caller may have no
ROS graph of its own).

    node = NodeProcess(node_module_command(["--ros-args", "-p", "threads:=1"]), log, env)
    node.wait_ready(60.0)          # until the node logs "ready:" (NodeStartError if not)
    ...
    status = node.stop()           # SIGINT, then SIGTERM, then SIGKILL

Stopping sends SIGINT first because that is what the node handles as a clean shutdown
(its `main` destroys the node and shuts rclpy down); SIGTERM and SIGKILL follow only when
it does not exit in time. Times are seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

NODE_MODULE = "depth_any_view.ros.node"  # `python -m` this runs the node
READY_MARKER = "ready:"  # the node logs this once its topics exist and the network is loaded


def localhost_dds_env(domain_id: int | str, base: Mapping[str, str] | None = None
                      ) -> dict[str, str]:
    """Environment of a process whose DDS must stay on this machine: `base` (default
    os.environ) with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID `domain_id`,
    and Fast DDS as the RMW unless one is chosen."""
    env = dict(os.environ if base is None else base)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(int(domain_id)))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return env


class NodeStartError(RuntimeError):
    """The node exited or did not become ready; the message ends with its log's tail."""


def node_module_command(args: Sequence[str] = ()) -> list[str]:
    """`python -m depth_any_view.ros.node <args>` with this interpreter (no install needed)."""
    return [sys.executable, "-m", NODE_MODULE, *args]


def log_tail(path: str | os.PathLike[str], lines: int = 40, indent: str = "") -> str:
    """The last `lines` lines of a log file, each prefixed with `indent`; '(no log)' when
    it cannot be read, '(empty log)' when it is empty."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"{indent}(no log)"
    return "\n".join(indent + line for line in text[-lines:]) or f"{indent}(empty log)"


class NodeProcess:
    """The node (or any command) as a child process writing stdout and stderr to `log`."""

    def __init__(self, cmd: Sequence[str], log: str | os.PathLike[str],
                 env: Mapping[str, str] | None = None, *,
                 cwd: str | os.PathLike[str] | None = None, new_session: bool = True,
                 tail_lines: int = 40, tail_indent: str = "") -> None:
        """Start `cmd` at once.

        Args:
            cmd: the command line (see `node_module_command`, or an installed executable).
            log: file that receives the child's stdout and stderr (overwritten).
            env: the child's environment; None = this process's. PYTHONUNBUFFERED=1 is
                added either way so the log is current while the node runs.
            cwd: the child's working directory; None = this process's.
            new_session: start the child in a session of its own, so a Ctrl-C in the
                terminal reaches only this process, which then stops the node itself.
            tail_lines, tail_indent: how much of the log error messages quote, and how.
        """
        self.cmd = [str(c) for c in cmd]
        self.log = Path(log)
        self.tail_lines, self.tail_indent = int(tail_lines), str(tail_indent)
        child_env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        self._file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=self._file, stderr=subprocess.STDOUT,
                                         env=child_env, cwd=cwd,
                                         start_new_session=new_session)
        except BaseException:
            self._file.close()
            raise

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once it has exited (negative: killed by that signal), else None."""
        return self.proc.returncode

    def poll(self) -> int | None:
        """The exit status if the child has exited, else None (does not wait)."""
        return self.proc.poll()

    def tail(self, lines: int | None = None) -> str:
        """The last lines of the log (`tail_lines` unless given), as error messages quote."""
        return log_tail(self.log, self.tail_lines if lines is None else lines,
                        self.tail_indent)

    def wait_ready(self, timeout_s: float, marker: str = READY_MARKER,
                   poll_s: float = 0.2) -> None:
        """Wait until the log contains `marker` (the node's 'ready:' line).

        Raises NodeStartError, quoting the log's tail, when the child exits first or the
        marker has not appeared after `timeout_s` seconds.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeStartError(f"the node exited with status {self.proc.returncode} "
                                     f"before it was ready; last lines of {self.log}:\n"
                                     f"{self.tail()}")
            if marker in self.log.read_text(errors="replace"):
                return
            time.sleep(poll_s)
        raise NodeStartError(f"the node was not ready after {timeout_s:.0f} s; last lines of "
                             f"{self.log}:\n{self.tail()}")

    def stop(self, interrupt_s: float = 20.0, terminate_s: float = 5.0,
             kill_s: float = 5.0) -> int | None:
        """SIGINT (as Ctrl-C), then SIGTERM, then SIGKILL, each followed by a wait of that
        many seconds while the child is still running; returns the exit status (None if
        even SIGKILL did not end it in time). Closes the log; safe to call again."""
        try:
            for sig, wait_s in ((signal.SIGINT, interrupt_s), (signal.SIGTERM, terminate_s),
                                (signal.SIGKILL, kill_s)):
                if self.proc.poll() is not None:
                    break
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait_s)
                except subprocess.TimeoutExpired:
                    continue
            return self.proc.poll()
        finally:
            self._file.close()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
