"""A WHIP publisher built on GStreamer's webrtcbin, as an independent client for interop tests.

Run it with the system interpreter (``/usr/bin/python3``), which has GStreamer's ``gi``
bindings; the project's venv does not. It sends a test pattern (VP8, or H.264 from x264 or
OpenH264) and a sine tone (Opus) the way a non-browser client does: one non-trickle offer with
``a=setup:actpass``, sent once ICE gathering is complete, then the DELETE after ``--seconds``.
It prints one JSON object per line on stdout, for the test:

- ``{"event": "answer", "status": 201, "location": ..., "sdp": ...}`` after the POST;
- ``{"event": "state", "connection": ...}`` on each change of the connection state;
- ``{"event": "deleted", "status": 200}`` after the DELETE that ends the session;
- ``{"event": "error", "message": ...}`` on a failure (exit status 1).

``--setup passive`` sends the offer with ``a=setup:passive`` instead (webrtcbin's own local
description keeps ``actpass``, so it takes whatever role the answer leaves it).
``--ecdsa-certificate`` gives webrtcbin's DTLS an ECDSA certificate instead of its own RSA
one, and names it in the offer's fingerprint: as the DTLS server of an aiortc client, which
offers only ECDHE-ECDSA cipher suites, webrtcbin needs one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

# Packetization mode 1 is stated: an offer made before the first buffer has no fmtp otherwise.
H264_PAYLOADER = (
    " ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay pt=102 mtu=1200 config-interval=-1 aggregate-mode=zero-latency"
    " ! application/x-rtp,media=video,encoding-name=H264,payload=102"
    ",packetization-mode=(string)1"
)
VIDEO = {
    "vp8": (
        "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 mtu=1200"
        " ! application/x-rtp,media=video,encoding-name=VP8,payload=96"
    ),
    # x264's caps carry profile-level-id=42c015 (constrained baseline, level 2.1); openh264's
    # carry none, and an offer without one means 42e01f.
    "x264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=600"
    + H264_PAYLOADER,
    "openh264": "openh264enc gop-size=30 bitrate=600000" + H264_PAYLOADER,
}
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc"
    " ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
)
HTTP_TIMEOUT = 10


def report(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def ecdsa_certificate() -> tuple[str, str]:
    """A self-signed P-256 certificate and its key (PEM, as GStreamer's DTLS takes them),
    and the certificate's SHA-256 fingerprint as SDP writes it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whip-gst")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pem = (certificate.public_bytes(serialization.Encoding.PEM) + pem_key).decode()
    return pem, ":".join(f"{byte:02X}" for byte in certificate.fingerprint(hashes.SHA256()))


class WhipClient:
    """One WHIP session. States: gathering -> posted -> connected -> deleted (or failed).

    GStreamer calls back on its own threads; the HTTP requests run on the GLib main loop.
    """

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.loop = GLib.MainLoop()
        self.failed = False
        self.posted = False
        self.location = ""
        self.certificate = ecdsa_certificate() if options.ecdsa_certificate else None
        self.pipeline = Gst.parse_launch(
            "webrtcbin name=send bundle-policy=max-bundle"
            " videotestsrc is-live=true pattern=ball"
            " ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert"
            f" ! {VIDEO[options.codec]} ! send. {AUDIO} ! send."
        )
        self.webrtc = self.pipeline.get_by_name("send")
        for index in range(2):
            transceiver = self.webrtc.emit("get-transceiver", index)
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        if self.certificate is not None:
            self.webrtc.connect("deep-element-added", self._on_element_added)
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering_state)
        self.webrtc.connect("notify::connection-state", self._on_connection_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    def run(self) -> int:
        self.pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add_seconds(self.options.seconds + 20, self._fail, "timed out")
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        return 1 if self.failed else 0

    def _fail(self, message: str) -> bool:
        report("error", message=message)
        self.failed = True
        self.loop.quit()
        return False

    def _on_error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        self._fail(f"{error.message} ({debug})")

    def _on_element_added(self, _bin: Gst.Bin, _parent: Gst.Bin, element: Gst.Element) -> None:
        factory = element.get_factory()
        if self.certificate is not None and factory and factory.get_name() == "dtlssrtpdec":
            element.set_property("pem", self.certificate[0])

    def _on_negotiation_needed(self, webrtc: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self._on_offer_created, webrtc)
        webrtc.emit("create-offer", None, promise)

    def _on_offer_created(self, promise: Gst.Promise, webrtc: Gst.Element) -> None:
        reply = promise.get_reply()  # owns the offer: keep it alive while the offer is used
        offer = reply.get_value("offer")
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering_state(self, webrtc: Gst.Element, _spec: Any) -> None:
        state = webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.posted:
            self.posted = True  # non-trickle: the offer carries every candidate
            GLib.idle_add(self._post_offer)

    def _on_connection_state(self, webrtc: Gst.Element, _spec: Any) -> None:
        state = webrtc.get_property("connection-state")
        report("state", connection=state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self._fail("the peer connection failed")

    def _post_offer(self) -> bool:
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        if self.options.setup != "actpass":
            sdp = sdp.replace("a=setup:actpass", f"a=setup:{self.options.setup}")
        if self.certificate is not None:
            # webrtcbin's offer still names its own RSA certificate, not the one it presents.
            sdp = re.sub(
                r"a=fingerprint:[^\r\n]*", f"a=fingerprint:sha-256 {self.certificate[1]}", sdp
            )
        try:
            status, headers, answer = self._request("POST", self.options.url, sdp)
        except (OSError, urllib.error.URLError) as exc:
            return self._fail(f"POST failed: {exc}")
        report("answer", status=status, location=headers.get("Location"), sdp=answer)
        if status != 201 or "Location" not in headers:
            return self._fail(f"POST answered {status} (Location: {headers.get('Location')})")
        self.location = urllib.parse.urljoin(self.options.url, headers["Location"])
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(
            GstWebRTC.WebRTCSDPType.ANSWER, message
        )
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        GLib.timeout_add_seconds(self.options.seconds, self._delete)
        return False

    def _delete(self) -> bool:
        try:
            status, _, _ = self._request("DELETE", self.location, None)
        except (OSError, urllib.error.URLError) as exc:
            return self._fail(f"DELETE failed: {exc}")
        report("deleted", status=status)
        self.loop.quit()
        return False

    def _request(self, method: str, url: str, body: str | None) -> tuple[int, Any, str]:
        request = urllib.request.Request(
            url,
            data=body.encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.options.token}"}
            | ({"Content-Type": "application/sdp"} if body is not None else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the WHIP endpoint, http://host:port/whip/<stream id>")
    parser.add_argument("token", help="the stream's publish token")
    parser.add_argument("--codec", choices=sorted(VIDEO), default="vp8")
    parser.add_argument("--seconds", type=int, default=10, help="how long to publish")
    parser.add_argument("--setup", choices=("actpass", "passive"), default="actpass")
    parser.add_argument("--ecdsa-certificate", action="store_true")
    Gst.init(None)
    return WhipClient(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
