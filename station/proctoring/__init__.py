"""Proctoring while the candidate answers: ``monitor`` turns low-rate observations of the camera
and the microphone (faces seen, who they are, mic level) into integrity flags with a start and an
end, which the agent reports to the edge.
"""
