from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from edge_server.services.centres import MAX_FACE_THRESHOLD, MIN_FACE_THRESHOLD


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


class FallbackCodeForm(FlaskForm):
    submit = SubmitField("签发备用码 Issue fallback code")


class WaiveHandoverForm(FlaskForm):
    station = StringField(validators=[DataRequired(), Length(max=64)])
    reason = StringField("原因 Reason", validators=[DataRequired("请写明原因 · A reason is required"), Length(max=500)])


class CentreSettingsForm(FlaskForm):
    face_threshold = FloatField(
        "人脸比对阈值 Face match threshold",
        validators=[InputRequired("请填写阈值 · Enter a threshold"),
                    NumberRange(MIN_FACE_THRESHOLD, MAX_FACE_THRESHOLD,
                                f"阈值须在 {MIN_FACE_THRESHOLD} 与 {MAX_FACE_THRESHOLD} 之间 · "
                                f"The threshold must be between {MIN_FACE_THRESHOLD} and {MAX_FACE_THRESHOLD}")],
    )
    voice_prompts = BooleanField("语音提示 Voice prompts")
    submit = SubmitField("保存 Save")
