"""Product photos and videos: presigned uploads straight to storage, checks, video jobs.

The browser asks for an upload form (`upload-url`), posts the file to the store itself (S3,
or this server's `/api/v1/media/uploads` with local storage: the same form either way),
then attaches the photo (its bytes are checked) or asks for the video to be processed (a
durable job; `status` follows it). Keys are chosen here, `uploads/<user>/<product>/<uuid>`,
so a caller can only ever name its own uploads. A verified photo is served from a key of its
own (`photos/<product>/<media id>`) that no upload form names, so re-posting a form cannot
replace what was checked; the local store also takes one file per form.
"""

from __future__ import annotations

import asyncio
import errno
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import filetype
from aiohttp import BodyPartReader, web
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.accounts.users import require_user
from api.catalog.models import JobState, MediaJob, MediaKind, MediaState, Product, ProductMedia
from api.catalog.products import owned_product
from api.catalog.schemas import MediaOut
from api.catalog.video_jobs import CONTENT_TYPES
from api.identity.models import Role
from api.web.context import Context
from api.web.errors import ApiError, forbidden, not_found, within_limit
from api.web.metrics import METRICS, after_commit
from api.web.openapi import operation
from api.web.routing import Api
from api.web.schemas import Input, Output
from twins.objectstore import LocalStorage, ObjectStore, UploadRefused
from twins.ratelimit import Limit

api = Api()

IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
VIDEO_TYPES = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}
MAX_IMAGES, MAX_VIDEOS = 10, 1
UPLOAD_PATH = "/api/v1/media/uploads"
UPLOAD_LIMIT = Limit(rate=1, burst=30)  # upload forms per seller: a catalogue session's worth
_FIELD_BYTES = 8192
# A POST policy form has a dozen short fields: an anonymous client gets that much memory, no more.
_FORM_FIELDS = 32
_FORM_BYTES = 64 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int
    max_video_bytes: int
    expiry_seconds: int
    job_attempts: int


@dataclass(frozen=True)
class MediaUploads:
    """What the media endpoints need from the composition root."""

    store: ObjectStore
    limits: MediaLimits


MEDIA_UPLOADS = web.AppKey("media_uploads", MediaUploads)


class UploadUrlIn(Input):
    product_id: str = Field(max_length=64)
    kind: Literal["image", "video"]
    content_type: str = Field(
        max_length=64, description="image/jpeg|png|webp, video/mp4|quicktime|webm"
    )
    size: int = Field(gt=0, description="The file's size in bytes")


class UploadUrlOut(BaseModel):
    upload_key: str
    url: str = Field(description="POST a multipart form here: `fields`, then `file`")
    fields: dict[str, str]
    max_bytes: int
    expires_in: int


class UploadKeyIn(Input):
    upload_key: str = Field(max_length=1024)


class VideoProcessIn(UploadKeyIn):
    thumbnail_at: float | None = Field(
        None, ge=0, description="Second of the video the thumbnail shows (default: 10 % in)"
    )


class JobOut(Output):
    id: str
    media_id: str
    state: Literal["queued", "running", "done", "failed"]
    progress: int = Field(description="Percent done of the current try")
    attempts: int
    error: str | None = Field(description="Why the job failed (or why the last try did)")
    outputs: dict[str, Any] | None = Field(
        description="When done: master_url (HLS), dash_url (the DASH MPD), thumbnail_url, "
        "metadata, renditions"
    )
    created_at: datetime
    updated_at: datetime


def _uploads(ctx: Context) -> MediaUploads:
    return ctx.request.app[MEDIA_UPLOADS]


async def _media_count(ctx: Context, product_id: str, kind: MediaKind) -> int:
    count = await ctx.session.scalar(
        select(func.count())
        .select_from(ProductMedia)
        .where(
            ProductMedia.product_id == product_id,
            ProductMedia.kind == kind,
            ProductMedia.state != MediaState.FAILED,
        )
    )
    return int(count or 0)


async def _check_room(ctx: Context, product_id: str, kind: MediaKind) -> None:
    limit = MAX_IMAGES if kind is MediaKind.IMAGE else MAX_VIDEOS
    # The product's row lock makes concurrent attaches count one after the other (PostgreSQL;
    # SQLite's single writer already does).
    await ctx.session.execute(select(Product.id).where(Product.id == product_id).with_for_update())
    if await _media_count(ctx, product_id, kind) >= limit:
        raise ApiError(
            409, "media_limit", f"A product has at most {limit} {kind.value}(s); remove one first"
        )


@api.route(
    "POST",
    "/api/v1/media/upload-url",
    summary="A presigned form to upload a product photo or video straight to storage",
    tag="media",
    body=UploadUrlIn,
    response=UploadUrlOut,
    errors=(401, 403, 404, 409, 413, 415, 422, 429),
)
async def upload_url(ctx: Context, body: UploadUrlIn) -> UploadUrlOut:
    uploads = _uploads(ctx)
    product = await owned_product(ctx, body.product_id)
    await within_limit(
        ctx.services.limiter, f"upload:{product.owner_id}", UPLOAD_LIMIT, "Too many uploads at once"
    )
    kind = MediaKind(body.kind)
    types, limit = (
        (IMAGE_TYPES, uploads.limits.max_image_bytes)
        if kind is MediaKind.IMAGE
        else (VIDEO_TYPES, uploads.limits.max_video_bytes)
    )
    extension = types.get(body.content_type)
    if extension is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"A product {kind.value} must be one of: {', '.join(types)}",
        )
    if body.size > limit:
        raise ApiError(413, "payload_too_large", f"A product {kind.value} is at most {limit} bytes")
    await _check_room(ctx, product.id, kind)
    key = f"uploads/{product.owner_id}/{product.id}/{uuid.uuid4().hex}.{extension}"
    expires = uploads.limits.expiry_seconds
    form = await uploads.store.presigned_post(key, body.content_type, body.size, expires)
    ctx.request.app[METRICS].upload_forms.labels(kind.value).inc()
    return UploadUrlOut(
        upload_key=key, url=form.url, fields=form.fields, max_bytes=body.size, expires_in=expires
    )


_UPLOAD_KEY = re.compile(
    r"^uploads/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})/[0-9a-f]{32}\.([a-z0-9]{3,4})$"
)


async def _own_upload(ctx: Context, key: str) -> tuple[Product, str]:
    """The product an upload key was issued for, and its extension, if the caller may use it.

    Only keys this API hands out parse: `..`, absolute paths and other users' keys do not.
    """
    match = _UPLOAD_KEY.match(key)
    if match is None:
        raise ApiError(422, "invalid_upload_key", "Use the upload_key that upload-url returned")
    owner_id, product_id, extension = match.groups()
    product = await owned_product(ctx, product_id)
    if product.owner_id != owner_id:
        raise forbidden("This upload is not for one of your products")
    if await ctx.session.scalar(select(ProductMedia.id).where(ProductMedia.upload_key == key)):
        raise ApiError(409, "already_used", "This upload is already attached")
    return product, extension


async def _add_media(ctx: Context, media: ProductMedia) -> None:
    ctx.session.add(media)
    try:
        await ctx.session.flush()
    except IntegrityError:
        # The same key attached by a concurrent request a moment ago.
        raise ApiError(409, "already_used", "This upload is already attached") from None
    after_commit(ctx, ctx.request.app[METRICS].media_attached, MediaKind(media.kind).value)


@api.route(
    "POST",
    "/api/v1/media/image",
    summary="Attach an uploaded photo to its product, once its bytes prove it is one",
    tag="media",
    status=201,
    body=UploadKeyIn,
    response=MediaOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
)
async def attach_image(ctx: Context, body: UploadKeyIn) -> MediaOut:
    uploads = _uploads(ctx)
    product, extension = await _own_upload(ctx, body.upload_key)
    declared = next((t for t, e in IMAGE_TYPES.items() if e == extension), None)
    if declared is None:
        raise ApiError(422, "invalid_upload_key", "This upload is not a photo")
    await _check_room(ctx, product.id, MediaKind.IMAGE)
    size = await uploads.store.size(body.upload_key)
    if size is None:
        raise ApiError(409, "not_uploaded", "Nothing was uploaded with this key yet")
    if size > uploads.limits.max_image_bytes:
        raise ApiError(413, "payload_too_large", "The uploaded photo is too large")
    data = await uploads.store.get_bytes(body.upload_key)
    found = filetype.guess_mime(data)
    if found != declared:
        await uploads.store.delete(body.upload_key)
        raise ApiError(
            415,
            "not_an_image",
            f"The upload was declared {declared} but its bytes are {found or 'unknown data'}",
        )
    media = ProductMedia(
        product_id=product.id,
        kind=MediaKind.IMAGE,
        state=MediaState.READY,
        upload_key=body.upload_key,
        details={"content_type": declared, "bytes": size},
    )
    await _add_media(ctx, media)
    served = f"photos/{product.id}/{media.id}.{extension}"
    await uploads.store.put_bytes(served, data, declared)
    await uploads.store.delete(body.upload_key)
    media.url = await uploads.store.url_for(served)
    return MediaOut.model_validate(media)


@api.route(
    "POST",
    "/api/v1/media/video/process",
    summary="Turn an uploaded video into HLS (a job; follow it with media/status)",
    tag="media",
    status=202,
    body=VideoProcessIn,
    response=JobOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
)
async def process_video(ctx: Context, body: VideoProcessIn) -> JobOut:
    uploads = _uploads(ctx)
    user = require_user(ctx)
    product, extension = await _own_upload(ctx, body.upload_key)
    if extension not in VIDEO_TYPES.values():
        raise ApiError(422, "invalid_upload_key", "This upload is not a video")
    await _check_room(ctx, product.id, MediaKind.VIDEO)
    size = await uploads.store.size(body.upload_key)
    if size is None:
        raise ApiError(409, "not_uploaded", "Nothing was uploaded with this key yet")
    if size > uploads.limits.max_video_bytes:
        raise ApiError(413, "payload_too_large", "The uploaded video is too large")
    media = ProductMedia(
        product_id=product.id,
        kind=MediaKind.VIDEO,
        state=MediaState.PROCESSING,
        upload_key=body.upload_key,
        details={},
    )
    await _add_media(ctx, media)
    job = MediaJob(
        media_id=media.id,
        owner_id=user.id,
        upload_key=body.upload_key,
        thumbnail_at=body.thumbnail_at,
        state=JobState.QUEUED,
        progress=0,
        attempts=0,
        max_attempts=uploads.limits.job_attempts,
    )
    ctx.session.add(job)
    await ctx.session.flush()
    return JobOut.model_validate(job)


@api.route(
    "GET",
    "/api/v1/media/status/{job_id}",
    summary="A video job: queued, running (with progress), done (with outputs) or failed",
    tag="media",
    response=JobOut,
    errors=(401, 403, 404),
)
async def job_status(ctx: Context, job_id: str) -> JobOut:
    user = require_user(ctx)
    job = await ctx.session.get(MediaJob, job_id)
    if job is None:
        raise not_found("Job")
    if job.owner_id != user.id and user.role != Role.ADMIN:
        raise forbidden("Only the seller who started this job can follow it")
    return JobOut.model_validate(job)


async def store_file_types(request: web.Request, response: web.StreamResponse) -> None:
    """The local store's files go out with the types S3 gives them: the static route asks the
    system's MIME table, which a slim image lacks (a DASH manifest would be octet-stream)."""
    if isinstance(response, web.FileResponse) and request.path.startswith("/media/"):
        kind = CONTENT_TYPES.get(Path(request.path).suffix)
        if kind is not None and response.status in (200, 206):
            response.content_type = kind


async def local_upload(request: web.Request) -> web.Response:
    """The local store's stand-in for an S3 POST upload: the same form, the same checks."""
    store = request.app[MEDIA_UPLOADS].store
    if not isinstance(store, LocalStorage):
        raise web.HTTPNotFound()
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Post the upload as multipart/form-data")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    parts = read = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > _FORM_FIELDS or read > _FORM_BYTES:
            raise ApiError(400, "form_too_large", "The form has more fields than an upload")
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name != "file":
            fields[part.name] = await _field(part)
            read += len(fields[part.name])
            continue
        try:
            policy = store.check_upload(fields)
        except (UploadRefused, ValueError) as refused:
            raise ApiError(403, "upload_refused", str(refused)) from None
        if await store.exists(policy.key):
            raise ApiError(409, "already_uploaded", "This upload form was used; ask for a new one")
        try:
            with tempfile.NamedTemporaryFile(dir=store.root, prefix=".upload-") as spool:
                size = await _spool(part, spool, policy.max_bytes)
                if size == 0:
                    raise ApiError(400, "empty_upload", "The file is empty")
                spool.flush()
                await store.put_file(policy.key, Path(spool.name), policy.content_type)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # The spool and the half-written copy are gone with the context managers.
            raise ApiError(
                507,
                "insufficient_storage",
                "The media store is full; retry later",
                headers={"Retry-After": "60"},
            ) from None
        return web.Response(status=204)
    raise ApiError(400, "no_file", "The form has no `file` field (send it last)")


async def _field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_FIELD_BYTES):
        data += chunk
        if len(data) > _FIELD_BYTES:
            raise ApiError(400, "field_too_large", f"Form field {part.name} is too large")
    return data.decode("utf-8", errors="replace")


async def _spool(part: BodyPartReader, spool: Any, max_bytes: int) -> int:
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", f"The upload is limited to {max_bytes} bytes")
        await asyncio.to_thread(spool.write, chunk)
    return size


def routes() -> list[web.RouteDef]:
    return [web.post(UPLOAD_PATH, local_upload)]


UPLOAD_PATHS: dict[str, dict[str, Any]] = {
    UPLOAD_PATH: {
        "post": operation(
            "local_upload",
            "The local store's upload target: the form an upload-url answer gave, file last",
            tag="media",
            status=204,
            success="Stored",
            consumes="multipart/form-data",
            errors={
                400: "Not an upload form, or an empty file",
                403: "The form's policy is expired, forged or does not match",
                404: "The store is S3: upload to the bucket instead",
                409: "This form was used already",
                413: "Over the form's size limit",
                415: "Not multipart/form-data",
                507: "The media store is full; see Retry-After",
            },
        )
    }
}
