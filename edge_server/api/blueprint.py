"""The station API's blueprint, which every module of the API adds its routes to."""
from flask import Blueprint

from examkiosk_wire.api import API_PREFIX

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
