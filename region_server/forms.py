"""Forms of the regional pages (CSRF through Flask-WTF)."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("用户名 Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("密码 Password", validators=[DataRequired(), Length(max=200)])
    submit = SubmitField("登录 Sign in")


class LogoutForm(FlaskForm):
    submit = SubmitField("退出 Sign out")
