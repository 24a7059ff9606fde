"""Who a directory account is, as the enterprise server and its clients see it (never its
password)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ADMIN_GROUP = "NES Administrators"
"""The directory group whose members administer the NES."""


@dataclass(frozen=True)
class DirectoryUser:
    domain: str
    username: str
    first_name: str = ""
    last_name: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)
    password_hash: str = field(default="", repr=False)

    @property
    def account(self) -> str:
        return f"{self.domain}\\{self.username}"

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    def to_json(self) -> dict[str, Any]:
        """The public fields (never the password hash)."""
        return {"account": self.account, "domain": self.domain, "username": self.username,
                "first_name": self.first_name, "last_name": self.last_name,
                "groups": sorted(self.groups)}
