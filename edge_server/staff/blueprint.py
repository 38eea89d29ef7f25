"""The staff blueprint, which every module of the staff pages adds its routes to."""
from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="../templates")
