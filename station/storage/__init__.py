"""Storage on the station: the SQLite ``journal`` that makes a crash or a power cut resumable (flow
state and every closed segment with its upload progress), the tus ``uploader`` that hands segments
to the edge in order, and the ``retention`` that deletes a segment's file once the edge verified it.
"""
