"""`siyu api-token create|list|revoke`: issue and manage a brand's REST API tokens from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.api.selectors import api_token_list, membership_by_username, tenant_by_slug
from siyu.api.services import api_token_create, api_token_revoke
from siyu.core.errors import SiyuError
from siyu.core.scopes import Actor


class Command(BaseCommand):
    help = "Create, list or revoke REST API tokens of a brand. A token acts with its member's role and data scope."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="issue a token for a member; the secret is printed once")
        create.add_argument("--tenant", required=True, help="the brand's slug")
        create.add_argument("--user", required=True, help="username of a member of the brand")
        create.add_argument("--name", default="", help="what the token is for (default: '<user> API token')")
        listing = sub.add_parser("list", help="list the brand's tokens (prefixes only, never secrets)")
        listing.add_argument("--tenant", required=True)
        listing.add_argument("--active", action="store_true", help="hide revoked tokens")
        revoke = sub.add_parser("revoke", help="revoke a token at once")
        revoke.add_argument("--tenant", required=True)
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", type=int, dest="token_id")
        which.add_argument("--prefix", help="the 8 characters shown by `list`")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_by_slug(slug=options["tenant"])
            # An operator at the shell acts as the brand's system actor; the audit row records no person.
            actor = Actor.system(tenant.id)
            match options["action"]:
                case "create":
                    self._create(actor, options["user"], options["name"])
                case "list":
                    self._list(actor, active_only=options["active"])
                case "revoke":
                    self._revoke(actor, options["token_id"], options["prefix"])
        except SiyuError as exc:
            raise CommandError(exc.message) from exc

    def _create(self, actor: Actor, username: str, name: str) -> None:
        membership = membership_by_username(tenant_id=actor.tenant_id, username=username)
        issued = api_token_create(actor=actor, membership_id=membership.id, name=name or f"{username} API token")
        self.stdout.write(f"Token {issued.token.id} for {username} ({membership.role}), named {issued.token.name!r}:")
        self.stdout.write(issued.secret)
        self.stdout.write("Store it now: it is shown only this once. Send it as 'Authorization: Bearer <token>'.")

    def _list(self, actor: Actor, *, active_only: bool) -> None:
        tokens = api_token_list(actor=actor, include_revoked=not active_only)
        self.stdout.write(f"{'id':>6}  {'prefix':8}  {'user':16}  {'role':15}  {'last used':20}  {'revoked':20}  name")
        for t in tokens:
            last = t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "never"
            revoked = t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "-"
            user = t.membership.user.get_username()
            self.stdout.write(
                f"{t.id:>6}  {t.prefix:8}  {user:16}  {t.membership.role:15}  {last:20}  {revoked:20}  {t.name}"
            )

    def _revoke(self, actor: Actor, token_id: int | None, prefix: str | None) -> None:
        if token_id is None:
            matches = list(api_token_list(actor=actor).filter(prefix=prefix).values_list("id", flat=True))
            if len(matches) != 1:
                raise CommandError(f"{len(matches)} tokens have prefix {prefix!r}; revoke by --id instead")
            token_id = matches[0]
        token = api_token_revoke(actor=actor, token_id=token_id)
        self.stdout.write(f"Revoked token {token.id} ({token.prefix}…, {token.name!r}).")
