"""The regional pages' blueprint (regional admins and reviewers; markers do not see these pages)."""
from flask import Blueprint

bp = Blueprint("region", __name__, url_prefix="/region", template_folder="../templates")
