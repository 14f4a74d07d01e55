"""A recorder process for the crash test: records until the parent SIGKILLs it."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from recorder.cue import Cue
from recorder.recorder import Recorder

from .media import interleave, opus_rtp, video_rtp
from .test_recording import H264_TRACKS


async def main(directory: Path) -> None:
    packets = interleave(video_rtp(6.0, "H264", width=320, height=180), opus_rtp(6.0))
    recorder = Recorder(directory, H264_TRACKS)
    loop = asyncio.get_running_loop()
    start = loop.time()
    announced = False
    for index, packet in enumerate(packets):
        recorder.on_rtp(packet.kind, packet.data)
        if index % 10 == 9:
            await asyncio.sleep(max(0.0, start + packet.at / 2 - loop.time()))
        if not announced and recorder.playlist.next_msn >= 3:
            recorder.add_cue(Cue("pin-crash", datetime.now(UTC), attributes={"X-ACTION": "pin"}))
            await asyncio.sleep(0.2)
            print("ready", flush=True)
            announced = True
    await asyncio.sleep(60)  # never finishes: the parent kills us


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
