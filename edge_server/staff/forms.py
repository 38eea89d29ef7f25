from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("用户名 Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("密码 Password", validators=[DataRequired(), Length(max=200)])
    submit = SubmitField("登录 Sign in")


class ReviewForm(FlaskForm):
    reason = StringField("理由 Reason", validators=[Length(max=500)])
    approve = SubmitField("通过 Approve")
    reject = SubmitField("拒绝 Reject")


class LogoutForm(FlaskForm):
    submit = SubmitField("退出 Sign out")
