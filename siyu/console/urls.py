from django.urls import path

from siyu.console.navigation import UPCOMING
from siyu.console.views import (
    auth,
    campaigns,
    channels,
    customers,
    group_codes,
    inheritance,
    keyword_rules,
    overview,
    pages,
    storecodes,
    wecom,
)

app_name = "console"

urlpatterns = [
    path("", overview.home, name="home"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("brand/", auth.brand_switch, name="brand_switch"),
    path("customers/", customers.customer_list, name="customer_list"),
    path("customers/total/", customers.customer_total, name="customer_total"),
    path("customers/export/", customers.customer_export, name="customer_export"),
    path("customers/export/<int:export_id>/", customers.customer_export_status, name="customer_export_status"),
    path("customers/export/<int:export_id>/file/", customers.customer_export_file, name="customer_export_file"),
    path("customers/<int:customer_id>/", customers.customer_detail, name="customer_detail"),
    path("customers/<int:customer_id>/timeline/", customers.customer_timeline, name="customer_timeline"),
    path("customers/<int:customer_id>/reveal/", customers.customer_reveal_view, name="customer_reveal"),
    path("tags/", pages.tag_list, name="tag_list"),
    path("orders/", pages.order_list, name="order_list"),
    path("org/", pages.org, name="org"),
    path("analytics/", pages.analytics, name="analytics"),
    path("audit/", pages.audit, name="audit_list"),
    path("settings/wecom/", wecom.connection, name="wecom"),
    path("settings/wecom/test/", wecom.connection_test_view, name="wecom_test"),
    path("settings/wecom/generate/<str:field>/", wecom.generate, name="wecom_generate"),
    path("settings/wecom/sync/", wecom.sync, name="wecom_sync"),
    path("settings/wecom/sync/status/", wecom.sync_panel, name="wecom_sync_status"),
    path("settings/wecom/sync/start/", wecom.sync_start, name="wecom_sync_start"),
    path("settings/wecom/callbacks/", wecom.callbacks, name="wecom_callbacks"),
    path("settings/wecom/callbacks/<int:raw_callback_id>/", wecom.callback_detail, name="wecom_callback_detail"),
    path("settings/wecom/callbacks/<int:raw_callback_id>/retry/", wecom.callback_retry, name="wecom_callback_retry"),
    path("settings/inheritance/", inheritance.inheritance, name="inheritance"),
    path("settings/inheritance/new/", inheritance.inheritance_new, name="inheritance_new"),
    path("settings/inheritance/customers/", inheritance.inheritance_customers, name="inheritance_customers"),
    path("settings/inheritance/brand-ip/", inheritance.inheritance_brand_ip, name="inheritance_brand_ip"),
    path("settings/inheritance/unassigned/", inheritance.inheritance_unassigned, name="inheritance_unassigned"),
    path(
        "settings/inheritance/unassigned/refresh/",
        inheritance.inheritance_unassigned_refresh,
        name="inheritance_unassigned_refresh",
    ),
    path("settings/inheritance/<int:transfer_id>/", inheritance.inheritance_detail, name="inheritance_detail"),
    path(
        "settings/inheritance/<int:transfer_id>/refresh/", inheritance.inheritance_refresh, name="inheritance_refresh"
    ),
    # Each acquisition context lists its own pages (siyu/console/views/<context>.py: urlpatterns).
    *channels.urlpatterns,
    *group_codes.urlpatterns,
    *storecodes.urlpatterns,
    *campaigns.urlpatterns,
    *keyword_rules.urlpatterns,
    *customers.urlpatterns,
    *(path(u.path, pages.upcoming, {"key": u.key}, name=u.key) for u in UPCOMING.values()),
]
