"""How a trainer process stops: SIGTERM/SIGINT ask for a checkpoint and a clean exit within a deadline,
and the processes it starts (DataLoader workers) die with it."""
from __future__ import annotations

import ctypes
import os
import signal
import threading
from typing import Any, Optional


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between steps and checkpoints before leaving.

    With a deadline, the first stop signal also arms a real-time timer whose SIGALRM (left at its
    default action) makes the kernel end the process `deadline_s` later if it is still there: a stop
    must end even when the checkpoint cannot be written (a hung disk) or the exit waits on something
    that never comes. The kernel does it because Python code cannot be relied on then: torch writes
    checkpoints in native code that holds the interpreter lock.
    """

    def __init__(self, deadline_s: Optional[float] = None) -> None:
        self.requested = False
        self.deadline_s = deadline_s
        self._armed = threading.Lock()

    def install(self) -> None:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._handle)
        if self.deadline_s is None:
            return
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        # Python runs signal handlers on the main thread between bytecodes, so a long native call would
        # delay _handle; the wakeup fd is written by the C-level handler at once, and a thread arms the timer.
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(read_fd,), name="stop-deadline", daemon=True).start()

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self._arm()

    def _watch(self, read_fd: int) -> None:
        stop_numbers = {int(s) for s in _STOP_SIGNALS}
        while not stop_numbers.intersection(os.read(read_fd, 64)):
            pass  # other signals with Python handlers (the DataLoader's SIGCHLD) are written here too
        self._arm()

    def _arm(self) -> None:
        if self.deadline_s is not None and self._armed.acquire(blocking=False):  # the first stop signal counts
            signal.setitimer(signal.ITIMER_REAL, self.deadline_s)


def worker_dies_with(parent_pid: int, _worker_id: int) -> None:
    """DataLoader worker_init_fn: the worker dies with the trainer, and leaves stopping to it.

    SIGTERM/SIGINT are ignored because a cancel signals the whole process group and the trainer owns
    the stop: a worker killed by it would make the DataLoader raise in the middle of the checkpoint.
    So that an ignored SIGTERM can never keep a worker alive, the kernel sends it SIGKILL when the
    trainer dies (PR_SET_PDEATHSIG), however that happens; multiprocessing would otherwise wait for
    such workers at exit forever.
    """
    signal.set_wakeup_fd(-1)  # the fd inherited from the trainer is the trainer's stop watchdog's
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the DataLoader's own watchdog notices a dead parent within seconds
    if os.getppid() != parent_pid:  # the trainer died before prctl took effect
        os._exit(0)
