"""Encoded publisher media to HLS (live LL-HLS, DVR, VOD), thumbnails, cues, upload, repair.

The SFU feeds `Recorder.on_rtp`; the HTTP layer serves `playlist_text`, `wait_for` and
`resolve`; the composition root calls `finish`, then hands `RecordingResult.files` to an
`UploadQueue`, and runs `repair` on unfinished recordings at startup.
"""

from .config import DVR_CAP_SECONDS, RecorderConfig
from .cue import PRODUCT_CLASS, Cue
from .recorder import Recorder, RecorderState
from .repair import needs_repair, repair
from .result import RecordingResult
from .tally import RecordingTally
from .track import TrackInfo
from .upload import UploadQueue, UploadTarget

__all__ = [
    "DVR_CAP_SECONDS",
    "PRODUCT_CLASS",
    "Cue",
    "Recorder",
    "RecorderConfig",
    "RecorderState",
    "RecordingResult",
    "RecordingTally",
    "TrackInfo",
    "UploadQueue",
    "UploadTarget",
    "needs_repair",
    "repair",
]
