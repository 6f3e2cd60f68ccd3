import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
django_application = get_wsgi_application()

from siyu.wecom.fastpath import with_callback_route  # noqa: E402 - needs the app registry get_wsgi_application loads

# WeCom's event pushes skip Django's request stack (sessions, auth, locale, CSRF): see siyu.wecom.fastpath.
application = with_callback_route(django_application)
