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
