"""One Claude CLI child process: read its output line by line as it runs, and kill its whole process group.

The child is started in a session of its own, so killing its group (`providers.processes.stop_group`, after
`KILL_GRACE_S`) reaches every tool the agent started. A
line handler may stop the run the moment a line says so (an `api_retry` the provider will not wait for); the
child is then killed and the handler's verdict is what the run ends with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from providers.processes import stop_group

# After SIGTERM, how long the CLI gets to exit before the group gets SIGKILL.
KILL_GRACE_S = 1.0
_READ_CHUNK = 1 << 16

V = TypeVar("V")
# Handed each complete stdout line as it arrives; a non-None answer stops the run.
LineHandler = Callable[[str], V | None]


@dataclass(frozen=True, slots=True)
class Finished(Generic[V]):
    """What the child printed, and the handler's verdict if a line stopped it (then `returncode` is the kill's)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    stopped_by: V | None = None


async def communicate(
    proc: asyncio.subprocess.Process, stdin: bytes | None, on_line: LineHandler[V] | None
) -> Finished[V]:
    """`proc.communicate()`, but each complete stdout line also goes to `on_line` the moment it arrives; the
    first non-None answer kills the process group and ends the run with that verdict."""

    async def feed() -> None:
        if stdin is None or proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a CLI that exits early stops reading
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()

    async def read_stdout() -> tuple[bytes, V | None]:
        assert proc.stdout is not None
        whole, pending = bytearray(), bytearray()
        while chunk := await proc.stdout.read(_READ_CHUNK):
            whole += chunk
            if on_line is None:
                continue
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = bytearray(rest)
            for line in lines:
                verdict = on_line(line.decode(errors="replace"))
                if verdict is not None:
                    return bytes(whole), verdict
        return bytes(whole), None

    async def read_stderr() -> bytes:
        assert proc.stderr is not None
        return await proc.stderr.read()

    tasks = [asyncio.ensure_future(c) for c in (read_stderr(), feed())]
    try:
        out, verdict = await read_stdout()
        if verdict is not None:
            await kill_group(proc)
        err = await tasks[0]
        await tasks[1]
        await proc.wait()
    finally:
        for task in tasks:
            task.cancel()  # on cancellation or a timeout (the caller kills the group); a no-op once done
    return Finished(proc.returncode or 0, out, err, verdict)


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    await stop_group(proc, KILL_GRACE_S)
