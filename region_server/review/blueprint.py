"""The review blueprint (under /review), which the review modules add their routes to. Its pages
are ``templates/review/``; the player's script and style are ``static/review/``."""
from flask import Blueprint

bp = Blueprint("review", __name__, url_prefix="/review", template_folder="../templates")
