"""The application: the CLIs (:mod:`.cli`), the export pipeline and its stages
(:mod:`.export`), serving (:mod:`.serve`) and Ray jobs (:mod:`.ray_jobs`).
It imports everything below it: ``calibration``, ``exporters``, ``engines``,
the model domain and the core."""
