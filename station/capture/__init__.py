"""Capture: cameras and microphones behind small abstract bases. ``frames`` holds what they
deliver (``VideoFrame``, ``AudioChunk``) and ``DeviceError``; ``camera`` the video-file and OpenCV
cameras, ``picamera`` the Raspberry Pi camera (picamera2, optional), ``audio`` the WAV and PyAudio
microphones and the mic ``level``, and ``backends`` picks and opens the backend the config names.
"""
