"""Sign-in, sign-out and switching between the brands a user belongs to."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.decorators import ConsoleRequest, console_view
from siyu.console.forms import BrandSwitchForm
from siyu.console.middleware import SESSION_TENANT
from siyu.core.selectors import membership_for


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@require_POST
@console_view
def brand_switch(request: ConsoleRequest) -> HttpResponse:
    form = BrandSwitchForm(request.POST)
    membership = (
        membership_for(user_id=request.user.pk, tenant_id=form.cleaned_data["tenant"]) if form.is_valid() else None
    )
    if membership is None:
        # Not one of the user's brands: say so rather than silently staying on the current one.
        messages.error(request, _("Brand: you are not a member of that brand."))
    else:
        request.session[SESSION_TENANT] = membership.tenant_id
        messages.success(request, _("Switched to %(brand)s.") % {"brand": membership.tenant.name})
    return HttpResponseRedirect(reverse("console:home"))
