from django.urls import path

from siyu.console.navigation import UPCOMING
from siyu.console.views import auth, customers, overview, pages

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
    *(path(u.path, pages.upcoming, {"key": u.key}, name=u.key) for u in UPCOMING.values()),
]
