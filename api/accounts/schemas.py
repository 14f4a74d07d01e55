"""Request and response bodies of accounts: sign-up, sign-in, users and profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
)

from api.identity.models import Checkout, Role
from api.web.schemas import DisplayName, Email, Input, Neighborhood, Output, Password


class RegisterIn(Input):
    email: Email
    password: Password
    display_name: DisplayName
    role: Literal[Role.VIEWER, Role.SELLER] = Role.VIEWER
    neighborhood: Neighborhood | None = None


class LoginIn(Input):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Delivery(Input):
    """Where a buyer's orders go and how the seller reaches them: kept on the account and
    copied onto each order when it is placed (a later change does not move a shipped one)."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    phone: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()./-]{6,32}$")]
        | None
    ) = None
    line1: Line
    line2: Line | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] | None = None
    country: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$"),
        Field(description="ISO 3166-1 alpha-2 code, e.g. DE"),
    ]


class UserOut(Output):
    id: str
    email: str
    display_name: str
    role: Role
    neighborhood: str | None
    home_cell: str | None = Field(
        None, description="Where you are, as an H3 cell of about 36 km² (PUT /me/location)"
    )
    delivery: Delivery | None = Field(None, description="Contact and shipping address")
    checkout: Checkout = Field(Checkout.PAY_LATER, description="How this seller takes payment")
    created_at: datetime


class LocationIn(Input):
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]


class PublicUserOut(Output):
    id: str
    display_name: str
    handle: str = Field(description="The seller page's address: /s/<handle>")
    role: Role


class ProfileOut(PublicUserOut):
    followers: int
    following: bool = Field(description="Whether the caller follows this user")


class AuthOut(BaseModel):
    user: UserOut
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires")


class UserPatch(Input):
    role: Role


class UsersQuery(Input):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0)] = 0
