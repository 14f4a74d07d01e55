"""Chromium uploads a product photo with the presigned form: to SeaweedFS, and to Shopcast."""

from typing import Any

import pytest
from playwright.async_api import Browser
from pydantic import SecretStr

from server.settings import Settings
from tests.browser.conftest import serve
from tests.conftest import Shop
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, seaweed
from twins.objectstore import S3Storage

__all__ = ["seaweed"]

PNG = list(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))

# What a seller's page does: ask for a form, post the file to wherever it says, attach.
UPLOAD = """async ({token, productId, bytes}) => {
  const auth = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'};
  const grant = await (await fetch('/api/v1/media/upload-url', {method: 'POST', headers: auth,
    body: JSON.stringify({product_id: productId, kind: 'image', content_type: 'image/png',
                          size: bytes.length})})).json();
  const form = new FormData();
  for (const [name, value] of Object.entries(grant.fields)) form.append(name, value);
  form.append('file', new Blob([new Uint8Array(bytes)], {type: 'image/png'}), 'photo.png');
  const upload = await fetch(grant.url, {method: 'POST', body: form});
  const attach = await fetch('/api/v1/media/image', {method: 'POST', headers: auth,
    body: JSON.stringify({upload_key: grant.upload_key})});
  return {url: grant.url, upload: upload.status, attach: attach.status,
          image: (await attach.json()).url};
}"""


@pytest.mark.parametrize("store", ["s3", "local"])
async def test_browser_uploads_a_photo(
    store: str,
    browser: Browser,
    settings: Settings,
    aiohttp_client: Any,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    if store == "s3":
        weed: Seaweed = request.getfixturevalue("seaweed")
        await S3Storage(
            bucket="shopcast-media",
            endpoint_url=weed.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
        ).create_bucket()
        settings.s3_bucket = "shopcast-media"
        settings.s3_endpoint_url = weed.endpoint
        settings.s3_access_key = ACCESS_KEY
        settings.s3_secret_key = SecretStr(SECRET_KEY)
    settings.media_worker = False
    client = await serve(settings, aiohttp_client)
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    page = await browser.new_page()
    await page.goto(f"{settings.resolved_public_url}/")
    result = await page.evaluate(
        UPLOAD, {"token": seller.token, "productId": product["id"], "bytes": PNG}
    )
    expected = (
        f"{settings.s3_endpoint_url}/shopcast-media"
        if store == "s3"
        else f"{settings.resolved_public_url}/api/v1/media/uploads"
    )
    assert (result["url"], result["upload"], result["attach"]) == (expected, 204, 201)
    photo = await page.evaluate("async (url) => (await fetch(url)).status", result["image"])
    assert photo == 200
    listed = await (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert [m["url"] for m in listed["media"]] == [result["image"]]
