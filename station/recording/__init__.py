"""Recording: the ``Recorder`` base the agent drives (``base``), the PyAV/libx264 recorder
(``pyav``, with its per-segment encoder in ``segment``), the picamera2 hardware-encoder recorder
(``picamera``), and the choice of recorder for a camera (``choose``). Each records one camera of
one attempt into crash-safe Matroska segments and reports every sealed one as a ``SegmentInfo``.
"""
