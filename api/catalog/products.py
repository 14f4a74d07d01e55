"""The product catalogue: each seller's products, with price in minor units and stock."""

from __future__ import annotations

from sqlalchemy import select

from api.accounts.users import require_role, require_user
from api.catalog.models import MediaKind, MediaState, Product
from api.catalog.schemas import ProductIn, ProductOut, ProductPatch
from api.identity.models import Role
from api.web.context import Context
from api.web.errors import forbidden, not_found
from api.web.routing import Api, Auth

api = Api()

SELLERS = frozenset({Role.SELLER, Role.ADMIN})


def photo_url(product: Product) -> str | None:
    """The product's picture: its first checked upload, else the first URL it was given (the
    pages' ``thumbnail()`` in static/js/common.js picks the same)."""
    uploaded = (
        m.url
        for m in product.media
        if m.kind == MediaKind.IMAGE and m.state == MediaState.READY and m.url
    )
    return next(uploaded, None) or next(iter(product.image_urls), None)


async def owned_product(ctx: Context, product_id: str) -> Product:
    """The product, if the caller may change it: its owner or an admin."""
    user = require_user(ctx)
    product = await ctx.session.get(Product, product_id)
    if product is None:
        raise not_found("Product")
    if product.owner_id != user.id and user.role != Role.ADMIN:
        raise forbidden("Only the product's seller can change it")
    return product


@api.route(
    "POST",
    "/api/v1/products",
    summary="Add a product to your catalogue",
    tag="products",
    status=201,
    body=ProductIn,
    response=ProductOut,
    errors=(401, 403, 413, 415, 422),
)
async def create_product(ctx: Context, body: ProductIn) -> ProductOut:
    seller = require_role(ctx, SELLERS, "Only sellers have a catalogue")
    product = Product(owner_id=seller.id, media=[], **body.model_dump())
    ctx.session.add(product)
    await ctx.session.flush()
    return ProductOut.model_validate(product)


@api.route(
    "GET",
    "/api/v1/products",
    summary="Your catalogue",
    tag="products",
    response=list[ProductOut],
    errors=(401,),
)
async def list_products(ctx: Context) -> list[ProductOut]:
    user = require_user(ctx)
    products = await ctx.session.scalars(
        select(Product).where(Product.owner_id == user.id).order_by(Product.created_at, Product.id)
    )
    return [ProductOut.model_validate(p) for p in products]


@api.route(
    "GET",
    "/api/v1/products/{product_id}",
    summary="One product",
    tag="products",
    auth=Auth.OPTIONAL,
    response=ProductOut,
    errors=(404,),
)
async def get_product(ctx: Context, product_id: str) -> ProductOut:
    product = await ctx.session.get(Product, product_id)
    if product is None:
        raise not_found("Product")
    return ProductOut.model_validate(product)


@api.route(
    "PATCH",
    "/api/v1/products/{product_id}",
    summary="Change a product",
    tag="products",
    body=ProductPatch,
    response=ProductOut,
    errors=(401, 403, 404, 413, 415, 422),
)
async def update_product(ctx: Context, product_id: str, body: ProductPatch) -> ProductOut:
    product = await owned_product(ctx, product_id)
    for name, value in body.changes().items():
        setattr(product, name, value)
    await ctx.session.flush()
    return ProductOut.model_validate(product)


@api.route(
    "DELETE",
    "/api/v1/products/{product_id}",
    summary="Remove a product",
    tag="products",
    status=204,
    errors=(401, 403, 404),
)
async def delete_product(ctx: Context, product_id: str) -> None:
    await ctx.session.delete(await owned_product(ctx, product_id))
