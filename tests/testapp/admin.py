from django.contrib import admin

from liveops.admin import LiveOperationAdmin
from tests.testapp.models import Endless, Scripted

admin.site.register([Scripted, Endless], LiveOperationAdmin)
