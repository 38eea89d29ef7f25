"""Chinese-first labels of the statuses the regional pages show (a template global, ``label``)."""
from __future__ import annotations

from region_server.pages.blueprint import bp

LABELS = {
    # attempts
    "verified": "已校验 verified", "present": "已到达·待复算 present", "pending": "待校验 pending",
    "damaged": "损坏或缺失 damaged", "missing": "中心缺失 missing in central", "not_synced": "未同步 not synced",
    # objects
    "ok": "正常 ok", "unchecked": "未检查 unchecked", "size_mismatch": "大小不符 size mismatch",
    "sha_mismatch": "校验和不符 SHA-256 mismatch", "unlisted": "清单外 not in manifest",
    # chain
    "broken": "链断裂 broken", "unsigned": "无签名 unsigned",
    # problems
    "malformed_manifest": "清单格式错误 malformed manifest", "truncated_manifest": "清单不完整 truncated manifest",
    "foreign_manifest": "外来清单 foreign manifest", "key_outside_prefix": "键越界 key outside its prefix",
    "missing_object": "对象缺失 missing object", "inserted_object": "多出的对象 inserted object",
    "chain": "签名链问题 chain", "unreadable": "无法读取 unreadable",
    # object kinds
    "segment": "分段 segment", "question": "题目录像 question", "face_frame": "人脸登录帧 face frame",
    "manifest": "清单 manifest",
}
GOOD = {"verified", "ok"}
BAD = {"damaged", "missing", "size_mismatch", "sha_mismatch", "unlisted", "broken", "unsigned"}


@bp.app_template_global()
def label(value: object) -> str:
    """The Chinese and English label of a status (the value itself if it has none)."""
    return LABELS.get(str(value), str(value))


@bp.app_template_global()
def tone(value: object) -> str:
    """The CSS class a status is shown in: good, bad or nothing."""
    text = str(value)
    return "good" if text in GOOD else "bad" if text in BAD else ""
