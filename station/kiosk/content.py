"""What the candidate reads before the exam: the flow, the integrity pledge and the notice."""

READING = {
    "read_flow": {
        "title": {"zh": "考试流程", "en": "How the exam works"},
        "paragraphs": [
            {"zh": "本次面谈在考点工作站上完成，流程为：身份识别、人脸登录、阅读流程、阅读诚信承诺书和考试须知、抽签、设备检测、信息确认、候考、答题、上传。",
             "en": "The interview runs on this station: identification, face login, reading the flow, the pledge and the notice, drawing a lot, device check, confirming your details, waiting room, answering, upload."},
            {"zh": "进入候考页面后系统即开始录像录音，候考即代表考试已经开始，请不要离开座位。",
             "en": "Recording starts when you enter the waiting room; from then on the exam has begun. Please stay seated."},
            {"zh": "开考时间到达时，所有考位同时显示题目并开始答题倒计时。倒计时结束后系统自动进入下一题或结束答题。",
             "en": "At the start time every station shows the questions at once and the countdown begins. When it ends the next question follows, or answering ends."},
            {"zh": "请用普通话按照题序逐一作答，每回答完一题，请说“回答完毕”。作答期间不得以任何方式透露姓名等个人信息。",
             "en": "Answer in Mandarin, in order; after each answer say “回答完毕”. Never reveal your name or other personal details."},
            {"zh": "答题结束后录像自动上传，务必等待页面提示“上传成功”后再离开座位。",
             "en": "When answering ends the recording uploads by itself; wait for “上传成功” (upload successful) before you leave."},
            {"zh": "如遇设备故障或意外中断，请举手示意监考老师。系统重新启动后点击“继续录制”即可继续作答，已答题目不会丢失，考试时间不做延长。中断次数最多 1 次，每次不超过 2 分钟，否则考试提前结束。",
             "en": "If the station fails, raise your hand. After a restart press “继续录制” (continue) to go on: answered questions are kept and time is not extended. At most one interruption of at most 2 minutes is allowed; beyond that the exam ends early."},
        ],
    },
    "read_pledge": {
        "title": {"zh": "考生诚信承诺书", "en": "Integrity pledge"},
        "paragraphs": [
            {"zh": "本人已认真阅读考试相关规定，自觉遵守考试纪律，诚信应考。",
             "en": "I have read the exam regulations and will follow them honestly."},
            {"zh": "本人保证由本人亲自参加考试，不由他人替考，也不替他人考试。",
             "en": "I take this exam myself; nobody sits it for me and I sit it for nobody else."},
            {"zh": "本人保证考试过程中不查阅任何资料，不向他人求助，不使用手机、耳机等任何电子设备。",
             "en": "I will not consult any material, ask anyone for help, or use a phone, earphones or any other device."},
            {"zh": "本人保证不拍摄、抄录、传播试题内容，不在网络上发布任何与考试相关的信息。",
             "en": "I will not photograph, copy or share the questions, nor post anything about the exam online."},
            {"zh": "如有违反，本人自愿接受取消考试成绩等处理，并记入诚信档案。",
             "en": "If I break this pledge I accept that my result may be cancelled and recorded in my integrity file."},
        ],
    },
    "read_notice": {
        "title": {"zh": "考试须知", "en": "Exam notice"},
        "paragraphs": [
            {"zh": "考试全程监控，全程录像录音。请保持正面面对摄像头就坐，头部到桌面始终完整地处于画面中，不要用手或其他物品遮挡面部。",
             "en": "The whole exam is monitored and recorded. Sit facing the camera with your head and shoulders in view; never cover your face."},
            {"zh": "不得佩戴口罩、墨镜、帽子等遮挡面部的物品，不得佩戴耳机。",
             "en": "No masks, sunglasses, hats or anything else that covers your face; no earphones."},
            {"zh": "考试期间不得离开座位，不得有进食、进水等与考试无关的行为，考场内不得出现其他人员。",
             "en": "Do not leave your seat, eat or drink; no other person may be in view."},
            {"zh": "候考时间结束（开考后 3 分钟）前未进入候考页面的考生，将不能进入答题页面。",
             "en": "Candidates who have not entered the waiting room by the entry cutoff (3 minutes after the start) cannot answer."},
            {"zh": "题目未加载时请点击“刷新题目”，或点击页面底部中间的“求助”按钮，通过文字与监考老师沟通；也可举手示意。",
             "en": "If a question does not appear, press “刷新题目” (refresh question), or press “求助” (Help) at the bottom of the screen to write to a proctor; you may also raise your hand."},
            {"zh": "录像按抽签号归档，评委看不到考生姓名。",
             "en": "Recordings are filed under your lot number; markers never see your name."},
        ],
    },
}
