"""What crosses between the programs (edge server, station, provisioning) and both ends must read alike.

Imports no other project package; every program may import it.
"""
