"""Tag groups, tags and the tags applied to customers, each with the source that applied it."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned
from siyu.customers.models import Customer
from siyu.tags import keywords as matching


class TagGroup(TenantOwned):
    """A tag group (标签组), mirrored to a WeCom corp tag group when connected."""

    name = models.CharField(max_length=30)
    order = models.PositiveIntegerField(default=0)
    wecom_group_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tag_group_name_unique")]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class Tag(TenantOwned):
    """A customer tag (标签), mirrored to a WeCom corp tag (names ≤ 30 characters, as WeCom requires)."""

    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=30)
    order = models.PositiveIntegerField(default=0)
    wecom_tag_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_name_unique_in_group")]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    CHANNEL = "channel", _("Channel code")
    KEYWORD = "keyword", _("Chat keyword")
    BEHAVIOUR = "behaviour", _("Behaviour")
    PURCHASE = "purchase", _("Purchase")
    RFM = "rfm", _("RFM")
    TIER = "tier", _("Member tier")
    WECOM = "wecom", _("WeCom")
    IMPORT = "import", _("Import")


class CustomerTag(TenantOwned):
    """A tag on a customer (客户标签): which source applied it, by which rule or guide, and when."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="customer_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="customer_tags")
    source = models.CharField(max_length=16, choices=TagSource.choices, default=TagSource.MANUAL)
    rule = models.CharField(max_length=64, blank=True, default="")
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")]
        indexes = [models.Index(fields=["tenant", "tag"], name="customer_tag_tenant_tag")]


class KeywordRule(TenantOwned):
    """A chat keyword rule (关键词打标规则): customers who say its keywords in a chat get its tags.

    Matched by `siyu.tags.keywords` over the messages of the session archive; `keywords` and `exclusions` are lists
    of words as the operator typed them (matching folds case and full-width forms).
    """

    class Mode(models.TextChoices):
        ANY = matching.ANY, _("Contains any keyword")
        ALL = matching.ALL, _("Contains every keyword")
        EXACT = matching.EXACT, _("A keyword as a word of its own")
        WHOLE = matching.WHOLE, _("The whole message is a keyword")

    class Scope(models.TextChoices):
        BOTH = matching.BOTH, _("One-to-one and group chats")
        DIRECT = matching.DIRECT, _("One-to-one chats")
        GROUP = matching.GROUP, _("Group chats")

    name = models.CharField(max_length=50)
    keywords = models.JSONField(default=list)
    exclusions = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ANY)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.BOTH)
    # Only what customers say; otherwise a guide's words in a one-to-one chat tag the customer they talk to.
    customer_only = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    tags = models.ManyToManyField(Tag, related_name="keyword_rules")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="keyword_rule_name_unique")]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """What a customer tag it applied records as its rule."""
        return f"keyword_rule:{self.id}"


class ChatArchiveCursor(TenantOwned):
    """How far keyword tagging has read a corp's session archive (会话存档): the last seq done, and what it did.

    One row per (brand, corp): a brand connected to another corp starts that corp's archive from the beginning.
    `seq` moves in the same transaction as the tags of the messages up to it, so a pull that dies is resumed
    from the last committed page and tags nothing twice.
    """

    corp_id = models.CharField(max_length=64)
    seq = models.BigIntegerField(default=0)
    messages = models.PositiveBigIntegerField(default=0)  # messages read
    matched = models.PositiveBigIntegerField(default=0)  # messages that matched a rule for a known customer
    tagged = models.PositiveBigIntegerField(default=0)  # customer tags applied
    pulled_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "corp_id"], name="chat_archive_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.corp_id}@{self.seq}"


class TagPush(TenantOwned):
    """An outbox row (标签推送): a change in siyu's tag catalogue or on a customer's tags that WeCom must learn.

    Written in the same transaction as the change, so a change is pushed if and only if it committed; delivered by
    `siyu.tags.push` (a job after commit, and the worker's sweep for rows whose job was lost or that wait out a
    backoff). `catalogue`: make WeCom's corp tag group match the siyu group (creating, renaming, reordering);
    `delete`: delete corp tags/groups by WeCom id; `mark`: mark/unmark tags on a customer for each active follow
    relation. While a row is pending, WeCom's view of that group or customer is older than siyu's, so inbound sync
    leaves them alone (the echo guard).
    """

    class Kind(models.TextChoices):
        CATALOGUE = "catalogue", _("Tag group")
        DELETE = "delete", _("Delete")
        MARK = "mark", _("Customer tags")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    group = models.ForeignKey(TagGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    add_tag_ids = models.JSONField(default=list, blank=True)  # siyu tag ids to mark
    remove_wecom_ids = models.JSONField(default=list, blank=True)  # WeCom tag ids to unmark (kept: the tag may go)
    wecom_group_ids = models.JSONField(default=list, blank=True)  # delete: WeCom group ids
    wecom_tag_ids = models.JSONField(default=list, blank=True)  # delete: WeCom tag ids
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_try_at = models.DateTimeField()
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_try_at"], name="tag_push_due")]
        ordering = ["id"]


class TagRule(TenantOwned):
    """An automatic tagging rule (自动打标规则): customers who match it carry its tag(s), recorded with its label.

    Kinds: behaviour (an event type at least n times within d days), purchase (a product series bought), RFM
    (recency / frequency / monetary bands, one tag per band) and member tier (the latest member.tier_changed event).
    A run adds its tags to customers who now match and removes from those who no longer do only the tags it
    applied itself. `next_run_at` is when the nightly recompute is due: the worker's sweep runs rules past it, so a
    restart loses no night.
    """

    class Kind(models.TextChoices):
        BEHAVIOUR = "behaviour", _("Behaviour")
        PURCHASE = "purchase", _("Purchase")
        RFM = "rfm", _("RFM")
        TIER = "tier", _("Member tier")

    name = models.CharField(max_length=50)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, null=True, blank=True, related_name="tag_rules")
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_matched = models.PositiveIntegerField(default=0)
    last_added = models.PositiveIntegerField(default=0)
    last_removed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tag_rule_name_unique")]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="tag_rule_due")]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """What a customer tag it applied records as its rule."""
        return f"tag_rule:{self.id}"
