"""The WSGI application gunicorn serves: `gunicorn invoicing.wsgi:application`."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invoicing.settings")

application = get_wsgi_application()
