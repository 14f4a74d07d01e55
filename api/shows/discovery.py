"""Finding shows: search over shows and products, by words, on either engine.

PostgreSQL matches ``to_tsvector('simple', title || ' ' || description)`` (the expression its
GIN index holds) against a prefix query of the words; SQLite matches its FTS5 tables
(``search_streams``, ``search_products``, kept by triggers) and ranks by bm25. Both take the
caller's words as prefixes ("dres" finds "dress") that must all match, folding case in any
script, with no stemming, no stop words and no accent folding ('simple' and unicode61 with
``remove_diacritics 0`` alike), so the two engines find the same rows.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from sqlalchemy import Float, Integer, Select, func, literal_column, select, text
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.elements import ColumnClause

from api.catalog.models import Product
from api.catalog.schemas import ProductOut
from api.shows.access import visible_to
from api.shows.models import Stream
from api.shows.schemas import SearchOut, SearchQuery
from api.shows.streams import streams_out
from api.web.context import Context
from api.web.routing import Api, Auth

api = Api()

MAX_WORDS = 8
_WORD = re.compile(r"\w+")
Row = TypeVar("Row")


def words_of(query: str) -> list[str]:
    """The words searched for: letters and digits, lower-case, at most :data:`MAX_WORDS`."""
    return _WORD.findall(query.lower())[:MAX_WORDS]


def matching(
    statement: Select[Row],
    table: Literal["streams", "products"],
    words: list[str],
    dialect: str,
) -> Select[Row]:
    """``statement`` over ``table`` narrowed to rows with every word, best match first. The
    words are bound as a parameter; only our own table names are written into the SQL."""
    if dialect == "postgresql":
        # Written as the index is (migration 0012), so that the planner can use it.
        columns = f"{table}.title || ' ' || {table}.description"
        vector: ColumnClause[str] = literal_column(f"to_tsvector('simple', {columns})")
        query = func.to_tsquery("simple", " & ".join(f"{word}:*" for word in words))
        return statement.where(vector.op("@@")(query)).order_by(func.ts_rank(vector, query).desc())
    hits = (
        text(
            f"SELECT rowid AS hit, bm25(search_{table}) AS score FROM search_{table} "  # noqa: S608
            f"WHERE search_{table} MATCH :search_words"
        )
        .columns(hit=Integer, score=Float)
        .subquery()
    )
    return (
        statement.join(hits, literal_column(f"{table}.rowid") == hits.c.hit)
        .order_by(hits.c.score)
        .params(search_words=" ".join(f'"{word}"*' for word in words))
    )


@api.route(
    "GET",
    "/api/v1/search",
    summary="Shows and products by words",
    tag="streams",
    auth=Auth.OPTIONAL,
    query=SearchQuery,
    response=SearchOut,
    errors=(401, 422),
    description="Every word must match the title or the description, as a prefix. Shows are "
    "those the caller may watch (live, planned and past); products are every seller's.",
)
async def search(ctx: Context, query: SearchQuery) -> SearchOut:
    words = words_of(query.q)
    if not words:
        return SearchOut(shows=[], products=[])
    dialect = ctx.session.get_bind().dialect.name
    shows = select(Stream).options(joinedload(Stream.owner)).where(visible_to(ctx.user))
    shows = matching(shows, "streams", words, dialect).limit(query.limit).offset(query.offset)
    products = matching(select(Product), "products", words, dialect)
    products = products.limit(query.limit).offset(query.offset)
    return SearchOut(
        shows=await streams_out(ctx, list(await ctx.session.scalars(shows))),
        products=[ProductOut.model_validate(p) for p in await ctx.session.scalars(products)],
    )
