"""``liteasr-serve``: OpenAI's audio transcription API on Ray Serve.

:mod:`.openai_api` is the HTTP contract (form fields, errors, response
formats) and imports no Ray; :mod:`.service` is the Ray Serve deployment
(dynamic batching across clients) and the command's runner.
"""
