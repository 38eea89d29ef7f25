"""Vision on camera frames: ``face_quality`` (is the face usable for login, with guidance for the
candidate), ``liveness`` (the head-turn challenge against a photo held up), ``qr`` (admission
tickets read from the camera) and ``snapshot`` (small JPEG previews for the staff dashboard).
"""
