"""What ``kappa``'s exit codes mean: the same for every command, so scripts can rely on them.

README.md has the same table; a test keeps the two equal.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    PARTIAL = 3
    REFUSED = 4
    DIFFERENT = 5


MEANING = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "the command failed; stderr says why and what to do (an invalid setting"
    " or pipeline spec, a missing or unreadable file, Kafka unreachable, a worker that"
    " stopped on an error, an unknown pipeline or version: then nothing was changed)",
    ExitCode.USAGE: "usage error: an unknown command or option, or a bad argument",
    ExitCode.PARTIAL: "partly done: `kappa status` reached some workers of the group but"
    " not all; `kappa kafka status` found some local nodes down; `kappa replay` found more"
    " bad rows than `--max-bad-rows` allows and produced nothing; `kappa verify` compared"
    " a version still catching up on what it had processed, and found no difference",
    ExitCode.REFUSED: "refused, nothing changed, because acting would count events twice,"
    " leave readers without a version or delete records unseen: `kappa replay` was"
    " given a file already replayed into the same topic (without `--force`), the id of a"
    " complete replay, or an id to resume"
    " with other files or options; `kappa promote` of a version that is behind, has no"
    " workers, fails `--verify`, or whose sink tables are behind or unreachable;"
    " `kappa retire` of the active version, of the one a sink's views show, of one whose"
    " workers still run, or of one whose dead letters or late events neither `--export`"
    " nor `--yes` provides for",
    ExitCode.DIFFERENT: "`kappa verify` found a difference between a version's tables or"
    " results and the batch answer (windows that an `idle_timeout` closed before some of"
    " their events came are compared as the worker closed them and listed apart: they"
    " alone never give 5)",
}
FORCED_EXIT = (
    "128+N",
    "`kappa worker` exited at once on signal N (a second Ctrl-C or SIGTERM, or a clean"
    " stop that outlasted KAPPA_SHUTDOWN_TIMEOUT): 130 for SIGINT, 143 for SIGTERM",
)


def rows() -> list[tuple[str, str]]:
    """(code, meaning) for every exit code, in order, as ``--help`` and README list them."""
    return [(str(int(code)), text) for code, text in MEANING.items()] + [FORCED_EXIT]
