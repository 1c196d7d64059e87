"""Reaching a Ray cluster: token authentication as Ray 2.60 sets it up, and one clear line when a
cluster can't be reached or refuses the token. Never imports ray (an import contract):
`use_token_auth` must run before ray is imported, since Ray reads RAY_AUTH_MODE once, at import."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..errors import FmnistRayError

WHERE_RAY_LOOKS = (
    "$RAY_AUTH_TOKEN, the file named by $RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token "
    "(`ray get-auth-token` on the head node prints the cluster's token)"
)
REACH_TIMEOUT_S = 5.0
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this package's code, shipped to a cluster
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"  # a local head's Ray Jobs API (`submit --address`)


class ClusterError(FmnistRayError, RuntimeError):
    """A cluster that can't be reached or won't let us in, said in one line."""


def token_source() -> str | None:
    """Where Ray will find a token, in Ray's own order of precedence; None if nowhere."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "$RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path if _readable(Path(path).expanduser()) else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if _readable(default) else None


def _readable(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def use_token_auth() -> None:
    """Send the token to a cluster started by `ray start` (token auth on since Ray 2.59) when
    one is where Ray looks, without the user setting RAY_AUTH_MODE. Auth is never turned off:
    an explicit RAY_AUTH_MODE is left as the user set it."""
    if "ray" in sys.modules:
        return  # too late for this process: Ray has read the mode already
    if not os.environ.get("RAY_AUTH_MODE") and token_source():
        os.environ["RAY_AUTH_MODE"] = "token"


def auth_problem(detail: str, address: str) -> ClusterError:
    """The one line for a refused token: what happened and where Ray looks for the token."""
    found = token_source()
    what = f"the token from {found} was refused" if found else "no token was found"
    return ClusterError(
        f"the Ray cluster at {address} requires token authentication and {what} "
        f"({detail.strip().splitlines()[0][:160]}). Ray looks in {WHERE_RAY_LOOKS}."
    )


def check_reachable(address: str) -> None:
    """Fail within seconds when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", ray:// and other forms: Ray resolves them itself
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as error:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address} ({error.strerror or error}); start one "
            f"with `ray start --head` or check the address"
        ) from None


def recorded_address() -> str | None:
    """The address `ray start` last recorded on this machine, as `--address auto` would use."""
    try:
        return (ray_temp_dir() / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def ray_temp_dir() -> Path:
    """Where Ray keeps its sessions and that record: $RAY_TMPDIR/ray, else $TMPDIR/ray (Linux),
    else /tmp/ray (Ray's own rule, `ray._common.utils.get_default_ray_temp_dir`)."""
    if "RAY_TMPDIR" in os.environ:
        return Path(os.environ["RAY_TMPDIR"]) / "ray"
    if sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        return Path(os.environ["TMPDIR"]) / "ray"
    return Path("/tmp/ray")
