"""API tokens: random secrets shown once, stored only as salted hashes, revocable at once.

Why this module exists: TCP clients (and scripts that want a role other than their Unix user's)
authenticate with a bearer token. A token reads ``migctl_<id>_<secret>``: the id finds the row
without scanning, the secret (``secrets.token_urlsafe(32)``, 256 bits) is checked against
``sha256(salt + secret)`` with a constant-time compare. A slow hash (scrypt) buys nothing for a
256-bit random secret and would cost every request. Nothing is cached: a revoked token is
refused on its very next request. ``last_used_at`` is refreshed at most every
``LAST_USED_RESOLUTION_S`` to keep reads from becoming writes.

Only ``migctl.server`` and ``migctl.cli.token_cmd`` import it; it imports the state database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from migctl.errors import InUseError, InvalidInputError, NotFoundError
from migctl.server.statedb import StateDB

PREFIX = "migctl"
ROLES = ("user", "admin")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
LAST_USED_RESOLUTION_S = 10.0


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's public facts (never its secret or hash)."""

    token_id: str
    name: str
    role: str
    owner: str
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "name": self.name,
            "role": self.role,
            "owner": self.owner,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


_COLUMNS = (
    "token_id, name, role, owner, created_at, created_by, last_used_at, revoked_at, revoked_by"
)


def _info(row: Any) -> TokenInfo:
    return TokenInfo(*(row[i] for i in range(9)))


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode()).hexdigest()


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name) or name.isdigit():
        raise InvalidInputError(
            f"token name {name!r} is not allowed",
            hint="1-64 characters: letters, digits, '.', '_', '-', '@'; not all digits",
            context={"name": name},
        )


class TokenStore:
    """Create, verify, list and revoke tokens in the daemon's state database."""

    def __init__(self, db: StateDB, clock: Any = time.time) -> None:
        self._db = db
        self._clock = clock

    def create(self, *, name: str, role: str, owner: str, created_by: str) -> tuple[str, TokenInfo]:
        """A new token; returns (the token text, shown only now; its info)."""
        check_name(name)
        check_name(owner)
        if role not in ROLES:
            raise InvalidInputError(f"role {role!r} is not user or admin", hint="--role user|admin")
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), os_salt()
        with self._db.write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if taken:
                raise InUseError(
                    f"an active token named {name!r} exists",
                    hint=f"revoke it first (`migctl token revoke {name}`) or choose another name",
                    context={"name": name},
                )
            conn.execute(
                "INSERT INTO tokens (token_id, name, role, owner, salt, secret_hash, created_at,"
                " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    name,
                    role,
                    owner,
                    salt,
                    _digest(salt, secret),
                    self._clock(),
                    created_by,
                ),
            )
        return f"{PREFIX}_{token_id}_{secret}", self.get(token_id)

    def verify(self, token: str) -> TokenInfo | None:
        """The active token this text proves, or None (malformed, unknown, wrong, revoked)."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not token_id or not secret or len(token) > 200:
            return None
        rows = self._db.read(
            f"SELECT {_COLUMNS}, salt, secret_hash FROM tokens WHERE token_id = ?", (token_id,)
        )
        if not rows:
            return None
        row = rows[0]
        if not hmac.compare_digest(_digest(row["salt"], secret), row["secret_hash"]):
            return None
        info = _info(row)
        if not info.active:
            return None
        self._touch(info)
        return info

    def _touch(self, info: TokenInfo) -> None:
        now = self._clock()
        if info.last_used_at is not None and now - info.last_used_at < LAST_USED_RESOLUTION_S:
            return
        with self._db.write() as conn:
            conn.execute(
                "UPDATE tokens SET last_used_at = ? WHERE token_id = ?", (now, info.token_id)
            )

    def get(self, token_id: str) -> TokenInfo:
        rows = self._db.read(f"SELECT {_COLUMNS} FROM tokens WHERE token_id = ?", (token_id,))
        if not rows:
            raise NotFoundError(f"no token with id {token_id}", hint="see `migctl token list`")
        return _info(rows[0])

    def list_tokens(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        rows = self._db.read(f"SELECT {_COLUMNS} FROM tokens {where} ORDER BY created_at, name")
        return [_info(row) for row in rows]

    def revoke(self, name_or_id: str, *, revoked_by: str) -> TokenInfo:
        """Revoke the active token with this name, or the token with this id."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT token_id FROM tokens WHERE revoked_at IS NULL AND (name = ? OR token_id = ?)"
                " ORDER BY name = ? DESC LIMIT 1",
                (name_or_id, name_or_id, name_or_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"no active token named or with id {name_or_id!r}",
                    hint="see `migctl token list` (revoked tokens stay listed as revoked)",
                    context={"token": name_or_id},
                )
            conn.execute(
                "UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE token_id = ?",
                (self._clock(), revoked_by, row[0]),
            )
        return self.get(str(row[0]))


def os_salt() -> bytes:
    return secrets.token_bytes(16)
