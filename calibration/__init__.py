"""Speech sets for calibration and evaluation, and activation statistics.

Import submodules explicitly (``calibration.datasets``); this package stays
free of heavy imports.
"""
