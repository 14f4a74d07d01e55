"""Object storage: local files for one machine, any S3-compatible service for several.

Both twins satisfy `ObjectStore`; the composition root picks one from settings. Keys are
relative, slash-separated names (`recordings/<stream>/segment-00001.m4s`), validated the
same way for both so a key that works locally also works on S3 and never escapes the root.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,1023}$")


class ObjectNotFound(Exception):
    """The key does not exist in the store."""


class UploadRefused(Exception):
    """A browser upload whose policy is forged, expired or not kept (type, size, key)."""


@dataclass(frozen=True)
class PresignedPost:
    """An HTML form upload (S3 POST policy): POST `fields` then `file` as multipart to `url`."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class UploadPolicy:
    """What a signed upload may write: one key, one content type, at most `max_bytes`."""

    key: str
    content_type: str
    max_bytes: int
    expires_at: int


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object name; raise ValueError otherwise."""
    if not _KEY.match(key) or key.endswith("/"):
        raise ValueError(f"invalid object key: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key: {key!r}")
    return key


class ObjectStore(Protocol):
    """Where finished recordings (and uploaded media) live."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None if it does not exist."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def url_for(self, key: str, expires: int = 3600) -> str:
        """A URL a browser can GET: presigned (S3) or public (local, served by the API)."""
        ...

    async def download(self, key: str, path: Path) -> None:
        """Copy the object to a local file (raise ObjectNotFound if it is missing)."""
        ...

    async def presigned_post(
        self, key: str, content_type: str, max_bytes: int, expires: int
    ) -> PresignedPost:
        """A form a browser posts the file with, straight to the store: the store itself
        refuses another key, another content type, more than `max_bytes` or a late upload."""
        ...


class LocalStorage:
    """Objects as files under `root`; URLs under `base_url` (served by the HTTP layer).

    Writes go to a temporary file renamed into place, so readers never see half a file.
    File work runs in a thread so the event loop never waits on the disk.
    """

    def __init__(
        self,
        root: Path,
        base_url: str = "/media",
        *,
        upload_url: str = "/media-upload",
        upload_secret: bytes = b"",
    ) -> None:
        self.root = root
        self._base_url = base_url.rstrip("/")
        self._upload_url = upload_url
        # An empty secret signs nothing anyone could check: uploads stay off.
        self._upload_secret = upload_secret

    def path_for(self, key: str) -> Path:
        return self.root / validate_key(key)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self.path_for(key)
        await asyncio.to_thread(self._replace, target, lambda tmp: shutil.copyfile(path, tmp))

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path_for(key)
        await asyncio.to_thread(self._replace, target, lambda tmp: tmp.write_bytes(data))

    @staticmethod
    def _replace(target: Path, write: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    async def get_bytes(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as error:
            raise ObjectNotFound(key) from error

    async def size(self, key: str) -> int | None:
        path = self.path_for(key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(path.unlink, True)

    async def url_for(self, key: str, expires: int = 3600) -> str:
        return f"{self._base_url}/{quote(validate_key(key))}"

    async def download(self, key: str, path: Path) -> None:
        source = self.path_for(key)
        try:
            await asyncio.to_thread(shutil.copyfile, source, path)
        except FileNotFoundError as error:
            raise ObjectNotFound(key) from error

    async def presigned_post(
        self, key: str, content_type: str, max_bytes: int, expires: int
    ) -> PresignedPost:
        """The same form shape as S3's, posted to this server's own upload endpoint."""
        policy = {
            "key": validate_key(key),
            "content_type": content_type,
            "max_bytes": max_bytes,
            "expires_at": int(time.time()) + expires,
        }
        encoded = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode()
        fields = {
            "key": key,
            "Content-Type": content_type,
            "policy": encoded,
            "signature": self._sign(encoded),
        }
        return PresignedPost(self._upload_url, fields)

    def check_upload(self, fields: dict[str, str]) -> UploadPolicy:
        """The policy of a posted form, if its signature, expiry, key and type hold."""
        encoded, signature = fields.get("policy", ""), fields.get("signature", "")
        if not self._upload_secret or not hmac.compare_digest(self._sign(encoded), signature):
            raise UploadRefused("the upload signature does not match its policy")
        policy = UploadPolicy(**json.loads(base64.urlsafe_b64decode(encoded)))
        if policy.expires_at < time.time():
            raise UploadRefused("the upload URL has expired")
        if fields.get("key") != policy.key:
            raise UploadRefused("the key is not the one the policy allows")
        if fields.get("Content-Type") != policy.content_type:
            raise UploadRefused("the content type is not the one the policy allows")
        return policy

    def _sign(self, encoded: str) -> str:
        return hmac.new(self._upload_secret, encoded.encode(), hashlib.sha256).hexdigest()


class S3Storage:
    """Objects in an S3 bucket (AWS S3, Backblaze B2, SeaweedFS, MinIO) through boto3.

    boto3 is synchronous: every call runs in a worker thread. Path-style addressing works
    with every S3-compatible server; short timeouts and few retries let the caller (the
    upload queue) own the retry policy instead of blocking inside botocore.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        public_base_url: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 20.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self._public = public_base_url.rstrip("/") if public_base_url else None
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            signature_version="s3v4",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    async def create_bucket(self) -> None:
        """Create the bucket if it is missing (for development and tests)."""
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except ClientError:
            await asyncio.to_thread(self._client.create_bucket, Bucket=self.bucket)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        validate_key(key)
        extra = {"ContentType": content_type}
        await asyncio.to_thread(
            self._client.upload_file, str(path), self.bucket, key, ExtraArgs=extra
        )

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    async def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except self._client.exceptions.NoSuchKey as error:
            raise ObjectNotFound(key) from error
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    async def size(self, key: str) -> int | None:
        validate_key(key)
        return await asyncio.to_thread(self._head, key)

    def _head(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(response["ContentLength"])

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def delete(self, key: str) -> None:
        validate_key(key)
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def url_for(self, key: str, expires: int = 3600) -> str:
        validate_key(key)
        if self._public is not None:
            return f"{self._public}/{quote(key)}"
        params = {"Bucket": self.bucket, "Key": key}
        url = await asyncio.to_thread(
            self._client.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires
        )
        return str(url)

    async def download(self, key: str, path: Path) -> None:
        validate_key(key)
        await asyncio.to_thread(self._download, key, path)

    def _download(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.download_file(self.bucket, key, str(path))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(key) from error
            raise

    async def presigned_post(
        self, key: str, content_type: str, max_bytes: int, expires: int
    ) -> PresignedPost:
        validate_key(key)
        post = await asyncio.to_thread(
            self._client.generate_presigned_post,
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires,
        )
        return PresignedPost(str(post["url"]), {k: str(v) for k, v in post["fields"].items()})
