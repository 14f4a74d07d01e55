"""Which fan-out forwards media: the native one (sfu/_fanout.c) or the pure-Python one.

``configure(mode)`` is called once per process (by :class:`~sfu.sfu.Sfu` and each worker)
with ``SfuSettings.native``: ``"on"`` needs the compiled extension, ``"off"`` never uses it,
``"auto"`` uses it when it was built (``pip install`` compiles it with the machine's C
compiler, see hatch_build.py) and otherwise logs a warning and forwards in Python. Lanes and
producers made afterwards follow the choice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from .aiortc_hooks import srtp_context_address, srtp_protect_address
from .lane import ForwardLane, Lane, Route, drop

if TYPE_CHECKING:
    from .producer import Entry

Mode = Literal["auto", "on", "off"]
Forwarders = tuple[Callable[["Entry"], None], ...]
FanOut = Callable[["Entry", tuple[ForwardLane, ...], Forwarders], None]
logger = logging.getLogger(__name__)


def _load() -> ModuleType | None:
    try:
        from . import _fanout
    except ImportError:
        return None
    _fanout.set_protect(srtp_protect_address())
    return _fanout


_module = _load()
_active: ModuleType | None = _module


def configure(mode: Mode) -> bool:
    """Choose the path for this process; True if it is the native one."""
    global _active  # one choice per process, like aiortc's codec list
    if mode == "on" and _module is None:
        raise RuntimeError("SHOPCAST_SFU_NATIVE=on but sfu._fanout was not built (no compiler?)")
    if mode == "auto" and _module is None and _active is None:
        logger.warning("sfu._fanout was not built: forwarding on the pure-Python path")
    _active = _module if mode != "off" else None
    return _active is not None


def active() -> bool:
    return _active is not None


def new_lane(history: int) -> ForwardLane:
    """A lane of the chosen path, keeping ``history`` packets for NACKs (a power of two)."""
    if _active is None:
        return Lane(history)
    assert _NATIVE_LANE is not None
    lane: ForwardLane = _NATIVE_LANE(history)
    return lane


def fan_out() -> FanOut | None:
    """The native fan-out function (None: the producer loops over its consumers in Python)."""
    if _active is None:
        return None
    function: FanOut = _active.fan_out
    return function


def _native_lane_type(module: ModuleType) -> type:
    class NativeLane(module.Lane):  # type: ignore[name-defined,misc]
        """``sfu._fanout.Lane`` with Python's ``route``: cffi pointers become addresses."""

        __slots__ = ()

        def route(self, route: Route) -> None:
            context = route.context
            sock = getattr(route, "socket", None)
            # Without a socket (tests' in-memory routes) the lane calls the route's sendto.
            sendto = None if sock is not None or route.sendto is drop else route.sendto
            self.bind_route(
                route.session,
                None if context is None else srtp_context_address(context),
                sock,
                sendto,
                route.address,
            )

    return NativeLane


_NATIVE_LANE = None if _module is None else _native_lane_type(_module)
