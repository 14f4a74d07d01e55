"""What request and response bodies are built from (pydantic): validated in, documented out."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError


def email_address(value: str) -> str:
    """An account's email address, normalized: the one rule for sign-up, sign-in and
    ``shopcast create-admin``. Its syntax is checked, not its domain's DNS; names reserved from
    mail (``.test``, ``.local``, ``localhost``) are refused, since Shopcast mails its users.
    Raises a ValueError whose text a person can read."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise PydanticCustomError("invalid_email", str(error)) from None


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(email_address),
    Field(json_schema_extra={"format": "email"}),
]

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


Neighborhood = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]


Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


PriceCents = Annotated[
    StrictInt, Field(gt=0, le=100_000_000, description="Minor units, e.g. cents")
]


Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]


Unit = Annotated[float, Field(ge=0, le=1, description="Normalised 0-1 position on the video")]


ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


ProductIds = Annotated[list[ResourceId], Field(max_length=100)]


HTTP_URL = TypeAdapter(HttpUrl)


def http_url(value: str) -> str:
    return str(HTTP_URL.validate_python(value))


ImageUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(http_url),
    Field(json_schema_extra={"format": "uri"}),
]


ImageUrls = Annotated[list[ImageUrl], Field(max_length=10)]


Minutes = Annotated[StrictInt, Field(gt=0, le=24 * 60)]


def plain_text(value: Any) -> Any:
    """Refuse NUL and unpaired surrogates in any text, however nested: neither database can
    store them, and no name, title or chat line needs them (pydantic's strict mode, which the
    socket payloads use, lets surrogates through)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be Unicode text (an unpaired surrogate is not)") from None
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            plain_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            plain_text(key)
            plain_text(item)
    return value


class Input(BaseModel):
    """Bodies we accept: unknown fields and non-finite numbers are refused, not ignored, and
    text holds no NUL."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        return plain_text(value)


class Patch(Input):
    """A partial update: fields left out stay; ``null`` only clears what may be empty."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self.model_fields_set - self.nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if not self.model_fields_set:
            raise ValueError("nothing to change: send at least one field")
        return self

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True, mode="python")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Error(BaseModel):
    error: str = Field(description="Stable machine-readable code")
    message: str = Field(description="What went wrong, for people")
    details: dict[str, object] = Field(default_factory=dict)


class Health(BaseModel):
    status: Literal["ok"]
