"""Local HTTP servers that speak the providers' APIs, quirks and failures included.

Used by the provider tests, the worker's end-to-end tests and `pgbars demo`.
Standard library (and numpy); data comes from `worker.emulator.synthetic`, corporate
actions from `worker.emulator.actions`.
"""

from ..emulator import actions, synthetic
from ..emulator.faults import Fault, InvalidBar
from ..emulator.polygon import PolygonServer
from ..emulator.server import EmulatorServer, RecordedRequest, Reply
from ..emulator.tradier import TradierServer
from ..emulator.yahoo import YahooServer

__all__ = [
    "EmulatorServer",
    "Fault",
    "InvalidBar",
    "PolygonServer",
    "RecordedRequest",
    "Reply",
    "TradierServer",
    "YahooServer",
    "actions",
    "synthetic",
]
