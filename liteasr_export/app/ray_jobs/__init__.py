"""Ray jobs: the local or remote cluster, calibration statistics on Ray Data,
and batch transcription. Ray is imported only here and in serving."""
