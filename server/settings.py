"""Shopcast settings: environment (``SHOPCAST_*``), ``.env``, then command-line flags."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recorder import DVR_CAP_SECONDS, RecorderConfig
from server.cpus import usable_cpus
from sfu.ports import PortRange

JWT_SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name)
VAPID_KEY_FILE = "vapid_private_key"
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class Settings(BaseSettings):
    """Every knob an operator can turn. Defaults are the embedded, single-machine setup."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPCAST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    data_dir: Path = Field(Path("data"), description="Where SQLite, secrets and media live.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite in the data dir. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db",
    )
    redis_url: str = Field("", description="Redis URL for scale-out; empty means in-process.")
    media_dir: Path | None = Field(None, description="Local media storage; unset means data/media.")
    public_url: str = Field(
        "", description="Base URL clients use to reach this node; empty means http://host:port."
    )
    jwt_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key for access tokens; empty: generated in the data dir."
    )
    jwt_ttl_seconds: int = Field(12 * 3600, gt=0, description="Lifetime of an access token.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed to call the API and to embed the player "
        "(/embed/<id> in an iframe, CSP frame-ancestors); empty: neither.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks of this node's reverse proxies, whose "
        "X-Forwarded-For names the client (rate limits are per client); empty: none.",
    )
    ice_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated STUN/TURN URLs handed to clients (stun:host:3478,turn:...).",
    )
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses the SFU gathers ICE candidates on; empty means "
        "every address of the machine except loopback (tests use 127.0.0.1).",
    )
    ice_announced_address: str = Field(
        "", description="Address written into SDP answers instead of the gathered one (1:1 NAT)."
    )
    ice_port_range: str = Field(
        "",
        description="UDP ports of the SFU's ICE sockets, e.g. 50000-50999, split evenly over "
        "the SFU processes (publish them all from a container); empty means random ports.",
    )
    ice_udp_mux: bool = Field(
        False,
        description="Each SFU process serves all its sessions on one UDP port (of its slice of "
        "the port range, or a random one), told apart by ICE username and remote address.",
    )
    publisher_grace_seconds: float = Field(
        30, ge=0, description="How long a stream waits for its publisher to come back."
    )
    media_timeout_seconds: float = Field(
        5, gt=0, description="No media for this long means the publisher is gone."
    )
    max_sessions: int = Field(
        500, gt=0, description="WebRTC sessions this node accepts before answering 503."
    )
    cascade: bool = Field(
        False,
        description="Edge node: pull shows carried by other nodes over WHEP and serve their "
        "viewers here, instead of redirecting those viewers (307).",
    )
    sfu_workers: int = Field(
        0,
        ge=0,
        description="Processes forwarding media to viewers; 0 means one per CPU this process "
        "may use (its affinity, capped by the container's CPU quota).",
    )
    sfu_native: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The SFU's fan-out: auto uses the native one (compiled at install) if it "
        "was built and otherwise Python's with a warning; on requires it; off forwards in Python.",
    )
    hls_dvr_seconds: float = Field(
        DVR_CAP_SECONDS,
        ge=RecorderConfig().min_dvr_seconds,
        le=DVR_CAP_SECONDS,
        description="Seconds of the show the live HLS playlist keeps (rewind and late joiners); "
        "the replay keeps the whole show. Default and maximum: 4 hours.",
    )
    hls_ladder: bool = Field(
        True,
        description="Record each simulcast H.264 layer as an HLS rendition of its own, listed "
        "by /hls/<id>/master.m3u8 (no transcoding). Off: the largest layer only.",
    )
    s3_bucket: str = Field("", description="S3 bucket for recordings; empty keeps them local.")
    s3_endpoint_url: str = Field(
        "", description="S3-compatible endpoint (B2, SeaweedFS, MinIO); empty means AWS."
    )
    s3_region: str = Field("", description="S3 region, where the service needs one.")
    s3_access_key: str = Field("", description="S3 access key id.")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret access key.")
    s3_public_url: str = Field(
        "", description="Public base URL of the bucket (CDN); empty means presigned URLs."
    )
    media_max_image_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest product photo a seller may upload."
    )
    media_max_video_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest product video a seller may upload."
    )
    media_upload_expiry_seconds: int = Field(
        300, gt=0, le=300, description="How long a presigned upload stays valid."
    )
    media_worker: bool = Field(
        True, description="Process uploaded videos in this server (else run `shopcast worker`)."
    )
    media_job_timeout_seconds: float = Field(
        1800, gt=0, description="One try at processing a video is stopped after this long."
    )
    media_job_attempts: int = Field(3, ge=1, description="Tries before a media job fails.")
    media_job_lease_seconds: float = Field(
        30, gt=0, description="A running job whose worker is silent this long is retried."
    )
    media_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle media worker looks for jobs."
    )
    turn_secret: SecretStr = Field(
        SecretStr(""), description="coturn use-auth-secret key for time-limited TURN credentials."
    )
    turn_ttl_seconds: int = Field(3600, gt=0, description="Lifetime of TURN credentials.")
    auth_attempts_per_minute: float = Field(
        20, gt=0, description="Sign-up and sign-in attempts per client address per minute."
    )
    auth_burst: int = Field(20, gt=0, description="Attempts allowed at once before the limit.")
    sales_gate_seconds: float = Field(
        1.0,
        ge=0,
        description="How long a node repeats the database's 'sold out' or 'sale ended' to new "
        "buyers of that offer without asking it again (0: ask every time).",
    )
    signaling_attempts_per_second: float = Field(
        5, gt=0, description="WHIP and WHEP offers per client address per second."
    )
    signaling_burst: int = Field(
        20, gt=0, description="WHIP and WHEP offers allowed at once before that rate applies."
    )
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="Largest accepted request body.")
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port a standalone `shopcast worker` serves /metrics on, at the HTTP "
        "server's host (its media jobs and its process); 0: none.",
    )
    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token /metrics asks of scrapers; empty: /metrics is open and names "
        "only shows for everyone.",
    )
    webhook_private_networks: bool = Field(
        False,
        description="Let webhooks reach loopback, private and link-local addresses (a shop on "
        "this machine or network); off, they reach public addresses only.",
    )
    stripe_secret_key: SecretStr = Field(
        SecretStr(""),
        description="Secret API key (sk_...) of the platform's Stripe account; empty: Stripe "
        "Checkout is unavailable.",
    )
    stripe_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Signing secret (whsec_...) of the Stripe webhook endpoint that sends "
        "/api/v1/stripe/webhook its events; required with a secret key.",
    )
    stripe_api_base: str = Field(
        "", description="Base URL of Stripe's API; empty: Stripe's own (tests use a stand-in)."
    )
    vapid_public_key: str = Field(
        "",
        description="Web Push application server key (base64url P-256 point); empty: derived "
        "from the private key.",
    )
    vapid_private_key: SecretStr = Field(
        SecretStr(""),
        description="VAPID signing key (base64url of the raw 32-byte P-256 key); empty: "
        "generated in the data dir.",
    )
    vapid_subject: str = Field(
        "",
        description="VAPID contact (mailto: or https: URL) push services may write to; empty: "
        "mailto: the SMTP sender, else the public URL when https, else mailto:admin@localhost.",
    )
    push_private_networks: bool = Field(
        False,
        description="Let Web Push reach push services on loopback and private addresses (tests, "
        "a push service on this network); off, public addresses only.",
    )
    smtp_host: str = Field("", description="SMTP server for emails; empty: no emails are sent.")
    smtp_port: int = Field(587, gt=0, le=65535, description="SMTP port.")
    smtp_username: str = Field("", description="SMTP user name; empty: no authentication.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    smtp_from: str = Field(
        "", description="From address of emails; empty: shopcast@ the public URL's host."
    )
    smtp_starttls: bool = Field(
        True, description="Require STARTTLS on the SMTP connection (off: plain, for a relay)."
    )
    log_level: str = Field("INFO", description="Logging level.")
    log_format: Literal["json", "console"] = Field(
        "json",
        description="`json`: one JSON object per log line; `console`: text for a terminal.",
    )

    @field_validator(
        "cors_origins", "ice_servers", "ice_host_addresses", "trusted_proxies", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # Exact origins: they are matched against Origin headers and written into the embed
        # page's CSP, where a path would never match and a ';' would add a directive.
        for origin in value:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path")
        return value

    @field_validator("ice_host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("ice_port_range")
    @classmethod
    def _port_range(cls, value: str) -> str:
        if value.strip():
            PortRange.parse(value)
        return value.strip()

    @model_validator(mode="after")
    def _port_range_fits_processes(self) -> Settings:
        """Each SFU process needs its own slice of the range, of at least one port."""
        if self.resolved_port_range is not None:
            self.resolved_port_range.split(self.resolved_sfu_workers)
        return self

    @model_validator(mode="after")
    def _stripe_events_verifiable(self) -> Settings:
        """Stripe confirms payments only by signed events: a key without their secret would
        take payments that no order ever records."""
        if self.stripe_secret_key.get_secret_value() and not (
            self.stripe_webhook_secret.get_secret_value()
        ):
            raise ValueError("stripe_webhook_secret is required with stripe_secret_key")
        return self

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (RFC 7518 section 3.2)")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'shopcast.db'}"

    @property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def resolved_sfu_workers(self) -> int:
        return self.sfu_workers or usable_cpus()

    @property
    def resolved_port_range(self) -> PortRange | None:
        return PortRange.parse(self.ice_port_range) if self.ice_port_range else None

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        # A wildcard bind address is no address a client can use; loopback is the honest default.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def resolved_smtp_from(self) -> str:
        return self.smtp_from or f"shopcast@{urlsplit(self.resolved_public_url).hostname}"

    @property
    def resolved_vapid_subject(self) -> str:
        if self.vapid_subject:
            return self.vapid_subject
        if self.smtp_host:
            return f"mailto:{self.resolved_smtp_from}"
        if self.resolved_public_url.startswith("https://"):
            return self.resolved_public_url
        return "mailto:admin@localhost"

    def ensure_vapid_key(self) -> str:
        """Return the VAPID private key, creating and keeping one in the data dir on first use."""
        if not self.vapid_private_key.get_secret_value():
            self.vapid_private_key = SecretStr(self._kept(VAPID_KEY_FILE, _new_vapid_key))
        return self.vapid_private_key.get_secret_value()

    def ensure_jwt_secret(self) -> str:
        """Return the JWT key, creating and keeping one in the data dir on first use."""
        if not self.jwt_secret.get_secret_value():
            self.jwt_secret = SecretStr(
                self._kept(JWT_SECRET_FILE, lambda: secrets.token_urlsafe(48))
            )
        return self.jwt_secret.get_secret_value()

    def _kept(self, name: str, make: Callable[[], str]) -> str:
        """The secret in the data dir's file ``name``, made by ``make`` (only its owner may read
        it) the first time."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(make())
        return path.read_text().strip()


def _new_vapid_key() -> str:
    """A P-256 private key as VAPID tools write it: base64url of its 32 raw bytes."""
    number = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()
