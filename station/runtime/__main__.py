"""``python -m station.runtime``: the station program, as ``examkiosk-station`` runs it."""
import sys

from station.runtime.main import main

sys.exit(main())
