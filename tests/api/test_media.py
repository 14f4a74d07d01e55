"""Product media: presigned uploads (a real SeaweedFS, and the local twin), checks, video jobs."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import av
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.catalog.product_media import MEDIA_UPLOADS
from peers.video import write_test_video
from server.app import build_app
from server.database import SQLITE_BUSY_TIMEOUT_MS, create_engine
from server.settings import Settings
from tests.api.test_metrics import promtool_problems, samples, scraped
from tests.conftest import Account, Shop, eventually, expect_error
from tests.nodes import free_port
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, seaweed
from twins.objectstore import PresignedPost, S3Storage

__all__ = ["seaweed"]

Client = TestClient[Any, Any]
BUCKET = "shopcast-media"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two seconds of 640x360 H.264 and AAC in MP4."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_test_video(path, width=640, height=360, seconds=2.0).read_bytes()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Twelve seconds of 1280x720: long enough to kill a worker in the middle of it."""
    path = tmp_path_factory.mktemp("clip") / "long.mp4"
    return write_test_video(path, width=1280, height=720, seconds=12.0).read_bytes()


@pytest.fixture
def fast_jobs(settings: Settings) -> Settings:
    settings.media_poll_seconds = 0.1
    settings.media_job_lease_seconds = 3
    return settings


def form_data(fields: dict[str, str], data: bytes, content_type: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", io.BytesIO(data), content_type=content_type, filename="upload")
    return form


async def upload_url(
    client: Client, seller: Account, product_id: str, kind: str, content_type: str, size: int
) -> dict[str, Any]:
    body = {"product_id": product_id, "kind": kind, "content_type": content_type, "size": size}
    response = await client.post("/api/v1/media/upload-url", json=body, headers=seller.auth)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def local_post(
    client: Client, url: str, fields: dict[str, str], data: bytes, content_type: str
) -> Any:
    """Post an upload form to this server (its URLs name the public host, not the test's)."""
    return await client.post(urlsplit(url).path, data=form_data(fields, data, content_type))


async def local_upload(
    client: Client, seller: Account, product_id: str, kind: str, content_type: str, data: bytes
) -> str:
    grant = await upload_url(client, seller, product_id, kind, content_type, len(data))
    response = await local_post(client, grant["url"], grant["fields"], data, content_type)
    assert response.status == 204, await response.text()
    return str(grant["upload_key"])


async def wait_for_job(client: Client, seller: Account, job_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        response = await client.get(f"/api/v1/media/status/{job_id}", headers=seller.auth)
        job = dict(await response.json())
        return job if job["state"] in ("done", "failed") else None

    return dict(await eventually(finished, 60, "the job never finished"))


async def decode_hls(client: Client, master_url: str, directory: Path) -> list[tuple[int, int]]:
    """Fetch every rendition of a master playlist from the server; decode each with PyAV."""
    base = urlsplit(master_url).path.rsplit("/", 1)[0]
    master = await (await client.get(urlsplit(master_url).path)).text()
    sizes = []
    for playlist in [line for line in master.splitlines() if line and line[0] != "#"]:
        folder = playlist.rsplit("/", 1)[0]
        text = await (await client.get(f"{base}/{playlist}")).text()
        assert "#EXT-X-ENDLIST" in text
        names = ["init.mp4"] + [x for x in text.splitlines() if x and x[0] != "#"]
        joined = directory / f"{folder}.mp4"
        with joined.open("wb") as out:
            for name in names:
                response = await client.get(f"{base}/{folder}/{name}")
                assert response.status == 200, name
                out.write(await response.read())
        with av.open(str(joined)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 60
        sizes.append((frames[0].width, frames[0].height))
    return sizes


# S3: the store itself refuses what the presigned form does not allow.


@pytest.fixture
async def s3_settings(seaweed: Seaweed, fast_jobs: Settings) -> Settings:
    store = S3Storage(
        bucket=BUCKET, endpoint_url=seaweed.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY
    )
    await store.create_bucket()
    fast_jobs.s3_bucket = BUCKET
    fast_jobs.s3_endpoint_url = seaweed.endpoint
    fast_jobs.s3_access_key = ACCESS_KEY
    fast_jobs.s3_secret_key = SecretStr(SECRET_KEY)
    return fast_jobs


@pytest.fixture
async def s3_client(s3_settings: Settings, aiohttp_client: Any) -> Client:
    return await aiohttp_client(build_app(s3_settings))  # type: ignore[no-any-return]


async def s3_post(form: PresignedPost | dict[str, Any], data: bytes, content_type: str) -> int:
    url, fields = (form.url, form.fields) if isinstance(form, PresignedPost) else form.values()
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form_data(fields, data, content_type)) as response,
    ):
        return response.status


async def test_presigned_upload_to_s3(
    s3_client: Client, database_url: str, seaweed: Seaweed
) -> None:
    shop = Shop(s3_client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    grant = await upload_url(s3_client, seller, product["id"], "image", "image/png", len(PNG))
    assert grant["upload_key"].startswith(f"uploads/{seller.id}/{product['id']}/")
    assert grant["url"] == f"{seaweed.endpoint}/{BUCKET}"
    form = {"url": grant["url"], "fields": grant["fields"]}
    assert await s3_post(form, PNG + b"extra", "image/png") == 400, "larger than declared"
    tampered = {**grant["fields"], "Content-Type": "text/html"}
    assert await s3_post({"url": grant["url"], "fields": tampered}, PNG, "text/html") == 403
    signature = grant["fields"]["x-amz-signature"]
    forged = {**grant["fields"], "x-amz-signature": signature[::-1]}
    assert await s3_post({"url": grant["url"], "fields": forged}, PNG, "image/png") == 403
    store = s3_client.app[MEDIA_UPLOADS].store
    expired = await store.presigned_post(grant["upload_key"], "image/png", len(PNG), -60)
    assert await s3_post(expired, PNG, "image/png") == 403
    assert not await store.exists(grant["upload_key"]), "no refused upload was stored"

    assert await s3_post(form, PNG, "image/png") == 204
    attached = await s3_client.post(
        "/api/v1/media/image", json={"upload_key": grant["upload_key"]}, headers=seller.auth
    )
    assert attached.status == 201, await attached.text()
    image = await attached.json()
    assert (image["kind"], image["state"]) == ("image", "ready")
    async with aiohttp.ClientSession() as http, http.get(image["url"]) as response:
        assert await response.read() == PNG
    listed = await (await s3_client.get(f"/api/v1/products/{product['id']}")).json()
    assert [m["id"] for m in listed["media"]] == [image["id"]]
    # S3 takes the same form again (it cannot count uses), but no URL names what it writes.
    assert await s3_post(form, b"<html>swapped</html>", "image/png") == 204
    async with aiohttp.ClientSession() as http, http.get(image["url"]) as response:
        assert await response.read() == PNG, "the verified photo was replaced"


async def test_video_processed_from_and_to_s3(
    s3_client: Client, database_url: str, clip: bytes, tmp_path: Path
) -> None:
    shop = Shop(s3_client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    grant = await upload_url(s3_client, seller, product["id"], "video", "video/mp4", len(clip))
    assert await s3_post({"url": grant["url"], "fields": grant["fields"]}, clip, "video/mp4") == 204
    started = await s3_client.post(
        "/api/v1/media/video/process", json={"upload_key": grant["upload_key"]}, headers=seller.auth
    )
    job = await wait_for_job(s3_client, seller, (await started.json())["id"])
    assert job["state"] == "done", job
    store = s3_client.app[MEDIA_UPLOADS].store
    prefix = f"media/{job['media_id']}"
    assert "360p/index.m3u8" in (await store.get_bytes(f"{prefix}/master.m3u8")).decode()
    playlist = (await store.get_bytes(f"{prefix}/360p/index.m3u8")).decode()
    names = ["init.mp4"] + [x for x in playlist.splitlines() if x and x[0] != "#"]
    joined = tmp_path / "360p.mp4"
    joined.write_bytes(b"".join([await store.get_bytes(f"{prefix}/360p/{n}") for n in names]))
    with av.open(str(joined)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60


# Keys are the server's: a caller can name only its own uploads.


async def test_foreign_and_escaping_keys_are_refused(client: Client, shop: Shop) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    product = await shop.product(seller)
    theirs = await shop.product(other)
    key = await local_upload(client, other, theirs["id"], "image", "image/png", PNG)
    bad_keys = [
        "../../etc/passwd",
        "/etc/passwd",
        f"uploads/{seller.id}/{product['id']}/../../{key}",
        f"uploads/{seller.id}/{product['id']}/%2e%2e.png",
        "",
    ]
    async with shop.unchanged():
        for bad in bad_keys:
            for path in ("/api/v1/media/image", "/api/v1/media/video/process"):
                response = await client.post(path, json={"upload_key": bad}, headers=seller.auth)
                assert response.status == 422, (path, bad)
        stolen = await client.post(
            "/api/v1/media/image", json={"upload_key": key}, headers=seller.auth
        )
        await expect_error(stolen, 403, "forbidden")
        body = {"product_id": theirs["id"], "kind": "image", "content_type": "image/png"}
        foreign = await client.post(
            "/api/v1/media/upload-url", json={**body, "size": 10}, headers=seller.auth
        )
        await expect_error(foreign, 403, "forbidden")


async def test_keys_must_be_uploaded_and_of_their_kind(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    photo = await local_upload(client, seller, product["id"], "image", "image/png", PNG)
    grant = await upload_url(client, seller, product["id"], "video", "video/mp4", 100)
    pending = grant["upload_key"]  # issued, never uploaded
    cases = [
        ("/api/v1/media/video/process", photo, 422, "invalid_upload_key"),
        ("/api/v1/media/image", pending, 422, "invalid_upload_key"),
        ("/api/v1/media/video/process", pending, 409, "not_uploaded"),
    ]
    async with shop.unchanged():
        for path, key, status, code in cases:
            response = await client.post(path, json={"upload_key": key}, headers=seller.auth)
            await expect_error(response, status, code)


async def test_upload_url_refusals(client: Client, shop: Shop, settings: Settings) -> None:
    seller, viewer = await shop.account("seller"), await shop.account("viewer")
    product = await shop.product(seller)
    cases = [
        ({"kind": "image", "content_type": "image/gif", "size": 10}, 415, "unsupported_media_type"),
        ({"kind": "video", "content_type": "image/png", "size": 10}, 415, "unsupported_media_type"),
        ({"kind": "image", "content_type": "image/png", "size": 0}, 422, "invalid"),
        (
            {
                "kind": "image",
                "content_type": "image/png",
                "size": settings.media_max_image_bytes + 1,
            },
            413,
            "payload_too_large",
        ),
        ({"kind": "audio", "content_type": "audio/mpeg", "size": 10}, 422, "invalid"),
    ]
    async with shop.unchanged():
        for body, status, code in cases:
            response = await client.post(
                "/api/v1/media/upload-url",
                json={"product_id": product["id"], **body},
                headers=seller.auth,
            )
            await expect_error(response, status, code)
        missing = {"product_id": "nope", "kind": "image", "content_type": "image/png", "size": 9}
        await expect_error(
            await client.post("/api/v1/media/upload-url", json=missing, headers=seller.auth),
            404,
            "not_found",
        )
        await expect_error(
            await client.post("/api/v1/media/upload-url", json=missing, headers=viewer.auth),
            404,
            "not_found",
        )


async def test_upload_forms_are_rate_limited(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    body = {"product_id": product["id"], "kind": "image", "content_type": "image/png", "size": 9}
    for _ in range(200):
        response = await client.post("/api/v1/media/upload-url", json=body, headers=seller.auth)
        if response.status != 200:
            break
    await expect_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


# The local twin: the same form, posted to Shopcast itself, with the same refusals.


async def test_local_upload_form_and_refusals(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    grant = await upload_url(client, seller, product["id"], "image", "image/png", len(PNG))
    assert grant["url"] == "http://shopcast.test/api/v1/media/uploads"
    fields, url = grant["fields"], grant["url"]
    await expect_error(
        await local_post(client, url, fields, PNG + b"x", "image/png"), 413, "payload_too_large"
    )
    wrong_type = {**fields, "Content-Type": "text/html"}
    await expect_error(
        await local_post(client, url, wrong_type, PNG, "text/html"), 403, "upload_refused"
    )
    forged = {**fields, "signature": fields["signature"][::-1]}
    await expect_error(
        await local_post(client, url, forged, PNG, "image/png"), 403, "upload_refused"
    )
    other_key = {**fields, "key": fields["key"].replace(".png", "0.png")}
    await expect_error(
        await local_post(client, url, other_key, PNG, "image/png"), 403, "upload_refused"
    )
    store = client.app[MEDIA_UPLOADS].store
    expired = await store.presigned_post(grant["upload_key"], "image/png", len(PNG), -60)
    await expect_error(
        await local_post(client, url, expired.fields, PNG, "image/png"), 403, "upload_refused"
    )
    assert not await store.exists(grant["upload_key"]), "no refused upload was stored"
    assert (await local_post(client, url, fields, PNG, "image/png")).status == 204
    assert await store.get_bytes(grant["upload_key"]) == PNG


async def test_images_are_checked_and_limited(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    fake = await local_upload(
        client, seller, product["id"], "image", "image/png", b"<html>not a png</html>"
    )
    async with shop.unchanged():
        refused = await client.post(
            "/api/v1/media/image", json={"upload_key": fake}, headers=seller.auth
        )
        body = await expect_error(refused, 415, "not_an_image")
        assert "unknown data" in body["message"]
    assert not await client.app[MEDIA_UPLOADS].store.exists(fake), "the fake was deleted"
    for _ in range(10):
        key = await local_upload(client, seller, product["id"], "image", "image/png", PNG)
        attached = await client.post(
            "/api/v1/media/image", json={"upload_key": key}, headers=seller.auth
        )
        assert attached.status == 201
    again = await client.post("/api/v1/media/image", json={"upload_key": key}, headers=seller.auth)
    await expect_error(again, 409, "already_used")
    body = {"product_id": product["id"], "kind": "image", "content_type": "image/png", "size": 9}
    full = await client.post("/api/v1/media/upload-url", json=body, headers=seller.auth)
    await expect_error(full, 409, "media_limit")
    product = await (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert len(product["media"]) == 10
    assert all(m["url"].startswith("http://shopcast.test/media/photos/") for m in product["media"])


async def test_a_verified_photo_cannot_be_replaced(client: Client, shop: Shop) -> None:
    # The attack: re-post the photo's form with HTML once the photo was checked and attached.
    seller = await shop.account("seller")
    product = await shop.product(seller)
    grant = await upload_url(client, seller, product["id"], "image", "image/png", len(PNG))
    fields, url = grant["fields"], grant["url"]
    assert (await local_post(client, url, fields, PNG, "image/png")).status == 204
    again = await local_post(client, url, fields, b"<html>", "image/png")
    await expect_error(again, 409, "already_uploaded")
    attached = await client.post(
        "/api/v1/media/image", json={"upload_key": grant["upload_key"]}, headers=seller.auth
    )
    assert attached.status == 201, await attached.text()
    photo = await attached.json()
    assert f"/media/photos/{product['id']}/{photo['id']}.png" in photo["url"]
    store = client.app[MEDIA_UPLOADS].store
    assert not await store.exists(grant["upload_key"]), "the upload was moved, not copied"
    # The form still verifies, and its key is free again: what it writes is served by no URL.
    assert (await local_post(client, url, fields, b"<html>", "image/png")).status == 204
    served = await client.get(urlsplit(photo["url"]).path)
    assert await served.read() == PNG
    reattach = await client.post(
        "/api/v1/media/image", json={"upload_key": grant["upload_key"]}, headers=seller.auth
    )
    await expect_error(reattach, 409, "already_used")


async def test_concurrent_attaches_keep_the_limit(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)

    async def attach(key: str) -> Any:
        return await client.post(
            "/api/v1/media/image", json={"upload_key": key}, headers=seller.auth
        )

    keys = [
        await local_upload(client, seller, product["id"], "image", "image/png", PNG)
        for _ in range(11)
    ]
    same = await asyncio.gather(attach(keys[0]), attach(keys[0]))
    assert sorted(r.status for r in same) == [201, 409]
    for key in keys[1:9]:
        assert (await attach(key)).status == 201
    last = await asyncio.gather(attach(keys[9]), attach(keys[10]))
    assert sorted(r.status for r in last) == [201, 409], "nine images, two at once: one fits"
    product = await (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert len(product["media"]) == 10


# Videos: a durable job, in-process worker by default.


async def test_video_becomes_hls_and_dash(
    fast_jobs: Settings, aiohttp_client: Any, database_url: str, clip: bytes, tmp_path: Path
) -> None:
    client = await aiohttp_client(build_app(fast_jobs))
    shop = Shop(client, database_url)
    seller, other = await shop.account("seller"), await shop.account("seller")
    product = await shop.product(seller)
    key = await local_upload(client, seller, product["id"], "video", "video/mp4", clip)
    started = await client.post(
        "/api/v1/media/video/process",
        json={"upload_key": key, "thumbnail_at": 1.0},
        headers=seller.auth,
    )
    assert started.status == 202, await started.text()
    job = await started.json()
    assert (job["state"], job["progress"]) == ("queued", 0)
    await expect_error(
        await client.get(f"/api/v1/media/status/{job['id']}", headers=other.auth), 403, "forbidden"
    )
    await expect_error(
        await client.get("/api/v1/media/status/nope", headers=seller.auth), 404, "not_found"
    )
    job = await wait_for_job(client, seller, job["id"])
    assert (job["state"], job["progress"], job["attempts"], job["error"]) == ("done", 100, 1, None)

    async def tries(outcome: str) -> float:
        return await scraped(client, "shopcast_media_job_tries_total", outcome=outcome)

    await eventually(lambda: tries("done"), 10, "the try is not counted")
    assert await tries("done") == 1 and await tries("failed") == 0
    assert await scraped(client, "shopcast_media_upload_forms_total", kind="video") == 1
    assert await scraped(client, "shopcast_media_attached_total", kind="video") == 1
    outputs = job["outputs"]
    assert outputs["metadata"]["width"] == 640 and outputs["metadata"]["audio_codec"] == "aac"
    assert [r["name"] for r in outputs["renditions"]] == ["360p"]
    assert await decode_hls(client, outputs["master_url"], tmp_path) == [(640, 360)]
    # The DASH manifest names the same segments, and goes out with its own type.
    mpd = await client.get(urlsplit(outputs["dash_url"]).path)
    assert mpd.status == 200 and mpd.content_type == "application/dash+xml"
    text = await mpd.text()
    assert (
        'media="360p/segment-$Number%05d$.m4s"' in text
        and 'initialization="audio/init.mp4"' in text
    )
    segment = await client.get(
        urlsplit(outputs["master_url"]).path.replace("master.m3u8", "360p/segment-00000.m4s")
    )
    assert segment.content_type == "video/iso.segment"
    thumbnail = await client.get(urlsplit(outputs["thumbnail_url"]).path)
    assert thumbnail.content_type == "image/jpeg"
    listed = await (await client.get(f"/api/v1/products/{product['id']}")).json()
    video = listed["media"][0]
    assert (video["kind"], video["state"], video["url"]) == (
        "video",
        "ready",
        outputs["master_url"],
    )
    assert video["details"]["dash_url"] == outputs["dash_url"]
    body = {"product_id": product["id"], "kind": "video", "content_type": "video/mp4", "size": 9}
    async with shop.unchanged():
        refused = await client.post("/api/v1/media/upload-url", json=body, headers=seller.auth)
        await expect_error(refused, 409, "media_limit")


async def test_bad_videos_fail_clearly(
    fast_jobs: Settings, aiohttp_client: Any, database_url: str, clip: bytes
) -> None:
    client = await aiohttp_client(build_app(fast_jobs))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    store = client.app[MEDIA_UPLOADS].store
    cases = {
        b"": "the upload is empty (zero bytes)",
        PNG: "not a video file (its bytes are image/png)",
        clip[: len(clip) // 2]: "the video cannot be read",
    }
    for data, reason in cases.items():
        product = await shop.product(seller)
        key = await local_upload(client, seller, product["id"], "video", "video/mp4", b"x")
        await store.put_bytes(key, data, "video/mp4")  # past the store's own checks
        started = await client.post(
            "/api/v1/media/video/process", json={"upload_key": key}, headers=seller.auth
        )
        assert started.status == 202
        job = await wait_for_job(client, seller, (await started.json())["id"])
        assert job["state"] == "failed" and job["error"].startswith(reason), job
        assert job["attempts"] == 1, "a bad file is not retried"
        media = (await (await client.get(f"/api/v1/products/{product['id']}")).json())["media"]
        assert media[0]["state"] == "failed"


async def test_timeouts_are_retried_a_bounded_number_of_times(
    fast_jobs: Settings, aiohttp_client: Any, database_url: str, clip: bytes
) -> None:
    fast_jobs.media_job_timeout_seconds = 0.01
    fast_jobs.media_job_attempts = 2
    client = await aiohttp_client(build_app(fast_jobs))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    key = await local_upload(client, seller, product["id"], "video", "video/mp4", clip)
    started = await client.post(
        "/api/v1/media/video/process", json={"upload_key": key}, headers=seller.auth
    )
    job = await wait_for_job(client, seller, (await started.json())["id"])
    assert (job["state"], job["attempts"]) == ("failed", 2)
    assert job["error"] == "processing took longer than 0.01 s"

    async def both_tries_counted() -> bool:
        tries = await scraped(client, "shopcast_media_job_tries_total", outcome="timed_out")
        return tries == 2

    await eventually(both_tries_counted, 10, "not two timed-out tries counted")
    count = "shopcast_media_job_duration_seconds_count"
    assert await scraped(client, count, outcome="timed_out") == 2


# A worker process killed in the middle of a job: another one resumes it.


@pytest.fixture
def workers(fast_jobs: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def start_worker(
    settings: Settings, started: list[subprocess.Popen[bytes]], metrics_port: int = 0
) -> None:
    env = {
        **os.environ,
        "SHOPCAST_DATABASE_URL": settings.resolved_database_url,
        "SHOPCAST_DATA_DIR": str(settings.data_dir),
        "SHOPCAST_PUBLIC_URL": settings.public_url,
        "SHOPCAST_MEDIA_JOB_LEASE_SECONDS": "2",
        "SHOPCAST_MEDIA_POLL_SECONDS": "0.1",
        "SHOPCAST_WORKER_METRICS_PORT": str(metrics_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"], env=env, cwd=ROOT, start_new_session=True
    )
    started.append(process)


async def _job_for_workers(
    settings: Settings, aiohttp_client: Any, database_url: str, clip: bytes
) -> tuple[Client, Account, str, Callable[[], Awaitable[dict[str, Any]]]]:
    """A node that runs no worker of its own, and a video job of ``clip`` queued on it for
    standalone workers: (client, seller, job id, the job's status)."""
    settings.media_worker = False
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    key = await local_upload(client, seller, product["id"], "video", "video/mp4", clip)
    started = await client.post(
        "/api/v1/media/video/process", json={"upload_key": key}, headers=seller.auth
    )
    job_id = str((await started.json())["id"])

    async def status() -> dict[str, Any]:
        response = await client.get(f"/api/v1/media/status/{job_id}", headers=seller.auth)
        return dict(await response.json())

    return client, seller, job_id, status


@pytest.mark.timeout(120)
async def test_killed_worker_is_resumed_by_another(
    fast_jobs: Settings,
    aiohttp_client: Any,
    database_url: str,
    long_clip: bytes,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    client, seller, job_id, status = await _job_for_workers(
        fast_jobs, aiohttp_client, database_url, long_clip
    )
    start_worker(fast_jobs, workers)
    await eventually(lambda: _running(status()), 60, "the first worker never reported progress")
    first = workers[0]
    os.kill(first.pid, signal.SIGKILL)  # mid-job; its transcoder must not outlive it
    first.wait(10)
    await eventually(lambda: _group_gone(first.pid), 10, "the transcoder outlived its worker")
    assert (await status())["state"] == "running", "nobody noticed yet: the lease still holds"
    port = free_port()
    start_worker(fast_jobs, workers, metrics_port=port)
    job = await wait_for_job(client, seller, job_id)
    assert (job["state"], job["attempts"]) == ("done", 2), job
    sizes = [(r["width"], r["height"]) for r in job["outputs"]["renditions"]]
    assert sizes == [(1280, 720), (852, 480)]
    # The standalone worker that finished it counts it on its own /metrics (once committed).
    done = ("shopcast_media_job_duration_seconds_count", frozenset({("outcome", "done")}))

    async def counted() -> str | None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        return text if samples(text).get(done) == 1 else None

    exposition = await eventually(counted, 10, "the worker's /metrics never counted the job")
    assert promtool_problems(exposition) == ""
    figures = samples(exposition)
    assert ("process_open_fds", frozenset()) in figures


@pytest.mark.timeout(120)
async def test_stopped_worker_hands_its_job_back(
    fast_jobs: Settings,
    aiohttp_client: Any,
    database_url: str,
    long_clip: bytes,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    *_, status = await _job_for_workers(fast_jobs, aiohttp_client, database_url, long_clip)
    start_worker(fast_jobs, workers)
    await eventually(lambda: _running(status()), 60, "the worker never reported progress")
    workers[0].send_signal(signal.SIGTERM)  # a clean stop, as in a deploy
    # Waited for off the loop: the node's writers run on it, and one blocked mid-transaction
    # would hold SQLite's lock against the worker's hand-back.
    assert await asyncio.to_thread(workers[0].wait, 60) == 0
    job = await status()
    assert (job["state"], job["attempts"], job["progress"]) == ("queued", 0, 0), job


@pytest.mark.timeout(180)
async def test_a_stopping_worker_hands_its_job_back_once_the_database_lets_it(
    fast_jobs: Settings,
    aiohttp_client: Any,
    database_url: str,
    long_clip: bytes,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    _, _, job_id, status = await _job_for_workers(
        fast_jobs, aiohttp_client, database_url, long_clip
    )
    start_worker(fast_jobs, workers)
    await eventually(lambda: _running(status()), 60, "the worker never reported progress")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # Another process holds SQLite's write lock past the worker's 10 s busy timeout twice
        # over (its heartbeat's write fails first, then its first try at handing back).
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        held = 2 * SQLITE_BUSY_TIMEOUT_MS / 1000 + 2
    else:
        # PostgreSQL waits on a row lock instead of failing: the hand-back waits its turn.
        engine = create_engine(database_url)
        connection = await engine.connect()
        await connection.execute(
            text("SELECT id FROM media_jobs WHERE id = :id FOR UPDATE"), {"id": job_id}
        )
        held = 3.0
    try:
        workers[0].send_signal(signal.SIGTERM)
        await asyncio.sleep(held)
        assert workers[0].poll() is None, "the worker gave up while the database was held"
    finally:
        if url.get_backend_name() == "sqlite":
            holder.rollback()
            holder.close()
        else:
            await connection.rollback()
            await connection.close()
            await engine.dispose()
    assert await asyncio.to_thread(workers[0].wait, 60) == 0
    job = await status()
    assert (job["state"], job["attempts"], job["progress"]) == ("queued", 0, 0), job


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


async def _running(status: Any) -> bool:
    job = await status
    return bool(job["state"] == "running" and job["progress"] > 0)


async def test_local_upload_endpoint_needs_a_multipart_file(client: Client) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("key", "uploads/a/b/c.png")
    response = await client.post("/api/v1/media/uploads", data=form)
    await expect_error(response, 400, "no_file")
    plain = await client.post("/api/v1/media/uploads", data={"key": "uploads/a/b/c.png"})
    await expect_error(plain, 415, "unsupported_media_type")


async def test_local_upload_refuses_a_field_bomb(client: Client) -> None:
    # An anonymous form of 12,000 fields of 8 KB once grew the server by 64 MB before any check.
    form = aiohttp.FormData(default_to_multipart=True)
    for n in range(12_000):
        form.add_field(f"f{n % 3}", "x" * 8000)
    form.add_field("file", b"\x89PNG", filename="a.png", content_type="image/png")
    response = await client.post("/api/v1/media/uploads", data=form)
    await expect_error(response, 400, "form_too_large")
    assert (await client.get("/healthz")).status == 200
