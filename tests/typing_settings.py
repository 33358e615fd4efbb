"""Settings for the type checker: the test settings without Django's own test app."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _APPS

INSTALLED_APPS = [app for app in _APPS if app != "sessions_tests"]
