"""Request and response bodies of accounts: sign-up, sign-in, users and profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
)

from api.identity.models import Role
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


class UserOut(Output):
    id: str
    email: str
    display_name: str
    role: Role
    neighborhood: str | None
    created_at: datetime


class PublicUserOut(Output):
    id: str
    display_name: str
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
