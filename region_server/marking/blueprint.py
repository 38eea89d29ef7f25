"""The marking blueprint (under /marking), which the marking modules add their routes to; its pages
are ``templates/marking/``."""
from flask import Blueprint

bp = Blueprint("marking", __name__, url_prefix="/marking", template_folder="../templates")
